//! Running sessions, as their nodes report them: who may see which (their
//! own; every one with the `session` rule, as `auditor` and `editor`
//! have).

use crate::{AuthError, AuthServer, now};
use jaunt_types::audit::ActiveSession;

const ACTIVE: &str = "/sessions/active/";

fn active_key(node: &str, id: &str) -> String {
    format!("{ACTIVE}{node}/{id}")
}

pub(crate) fn check_id(id: &str) -> Result<(), AuthError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| AuthError::BadRequest(format!("{id:?} is not a session ID")))
}

impl AuthServer {
    /// Replaces node `uuid`'s list of running sessions. Each entry expires
    /// when the node would count as offline, so a dead node's sessions
    /// leave the list by themselves.
    pub async fn set_node_sessions(
        &self,
        uuid: &str,
        sessions: Vec<ActiveSession>,
    ) -> Result<(), AuthError> {
        let node = self
            .node(uuid)
            .await?
            .ok_or_else(|| AuthError::AccessDenied("this node is not in the inventory".into()))?;
        let prefix = format!("{ACTIVE}{uuid}/");
        let window = self.offline_window(&node);
        let now = now();
        let old = self.store.list::<ActiveSession>(&prefix).await?;
        for gone in old
            .iter()
            .filter(|o| !sessions.iter().any(|s| s.id == o.value.id))
        {
            self.store.delete(&active_key(uuid, &gone.value.id)).await?;
        }
        for mut s in sessions {
            check_id(&s.id)?;
            s.node = node.name.clone();
            s.node_uuid = uuid.to_string();
            // Nodes report the whole list at every start and end: only
            // what changed, or is past half its time to live, is written
            // (each write is a synced transaction).
            let fresh = old
                .iter()
                .any(|o| o.value == s && o.expires.is_some_and(|e| e - now > window / 2));
            if !fresh {
                self.store
                    .put(&active_key(uuid, &s.id), &s, Some(now + window))
                    .await?;
            }
        }
        Ok(())
    }

    /// One running session of node `uuid`, told by whoever carries it (the
    /// proxy, for an agentless node); it leaves the list by itself unless
    /// told again within the node's offline window. Returns how often to
    /// tell it again.
    pub async fn put_running_session(
        &self,
        uuid: &str,
        mut session: ActiveSession,
    ) -> Result<std::time::Duration, AuthError> {
        check_id(&session.id)?;
        let node = self
            .node(uuid)
            .await?
            .ok_or_else(|| AuthError::AccessDenied("this node is not in the inventory".into()))?;
        let window = self.offline_window(&node);
        session.node = node.name;
        session.node_uuid = uuid.to_string();
        self.store
            .put(
                &active_key(uuid, &session.id),
                &session,
                Some(now() + window),
            )
            .await?;
        Ok(std::time::Duration::from_secs((window / 2).max(1) as u64))
    }

    /// The session has ended.
    pub async fn remove_running_session(&self, uuid: &str, id: &str) -> Result<(), AuthError> {
        match self.store.delete(&active_key(uuid, id)).await {
            Ok(()) | Err(jaunt_store::StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The running sessions `user` may see.
    pub async fn sessions_for(&self, user: &str) -> Result<Vec<ActiveSession>, AuthError> {
        let all_visible = self.may(user, "session").await?;
        let now = now();
        let mut out: Vec<ActiveSession> = self
            .store
            .list::<ActiveSession>(ACTIVE)
            .await?
            .into_iter()
            .filter(|v| v.expires.is_none_or(|e| e > now))
            .map(|v| v.value)
            .filter(|s| all_visible || s.user == user)
            .collect();
        out.sort_by(|a, b| a.start.cmp(&b.start).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Whether `user` may list and read every `resource` (not just their own).
    pub(crate) async fn may(&self, user: &str, resource: &str) -> Result<bool, AuthError> {
        let record = self
            .user_record(user)
            .await?
            .ok_or_else(|| AuthError::AccessDenied(format!("user {user:?} no longer exists")))?;
        let checker = self.access_checker(&record).await?;
        Ok(checker.can(resource, "list") && checker.can(resource, "read"))
    }
}
