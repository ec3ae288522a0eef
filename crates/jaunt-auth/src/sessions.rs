//! Running sessions, as their nodes report them, and session recordings:
//! who may see and play which (their own; every one with the `session`
//! or `recording` rule, as `auditor` and `editor` have).

use crate::{AuthError, AuthServer, now};
use jaunt_types::api::RecordingUpload;
use jaunt_types::audit::{ActiveSession, RecordingMeta};

const ACTIVE: &str = "/sessions/active/";
const REC_META: &str = "/recordings/meta/";
const REC_DATA: &str = "/recordings/data/";
/// The largest recording auth keeps (asciicast text).
pub use jaunt_types::audit::MAX_RECORDING_BYTES as MAX_RECORDING;

fn active_key(node: &str, id: &str) -> String {
    format!("{ACTIVE}{node}/{id}")
}

fn check_id(id: &str) -> Result<(), AuthError> {
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
    async fn may(&self, user: &str, resource: &str) -> Result<bool, AuthError> {
        let record = self
            .user_record(user)
            .await?
            .ok_or_else(|| AuthError::AccessDenied(format!("user {user:?} no longer exists")))?;
        let checker = self.access_checker(&record).await?;
        Ok(checker.can(resource, "list") && checker.can(resource, "read"))
    }

    /// Stores a piece of a recording from node `uuid`; returns the size
    /// auth now holds. Each new piece is its own record (keyed by offset),
    /// so appending never rewrites what is held; the metadata's size,
    /// updated with compare-and-swap, says how much of it counts. A piece
    /// auth already has is accepted again (a retry).
    pub async fn put_recording(&self, uuid: &str, up: RecordingUpload) -> Result<u64, AuthError> {
        check_id(&up.meta.session_id)?;
        let node = self
            .node(uuid)
            .await?
            .ok_or_else(|| AuthError::AccessDenied("this node is not in the inventory".into()))?;
        let id = up.meta.session_id.clone();
        let meta_key = format!("{REC_META}{id}");
        let held = self.store.get::<RecordingMeta>(&meta_key).await?;
        let owner = |m: &RecordingMeta| match &m.node_uuid {
            Some(owner) => *owner == node.uuid,
            None => m.node == node.name,
        };
        if let Some(h) = &held
            && !owner(&h.value)
        {
            return Err(AuthError::AccessDenied(
                "this recording belongs to another node".into(),
            ));
        }
        let have = held.as_ref().map_or(0, |h| h.value.size);
        let end = up.offset + up.data.len() as u64;
        // Every piece and the metadata go together, `recording_retention`
        // after the session's start (never later than now: the node says).
        let keep_until = crate::AuthConfig::expiry(
            self.config.recording_retention,
            up.meta.start.min(crate::now()),
        );
        if up.offset > have {
            return Err(AuthError::BadRequest(format!(
                "recording {id}: piece at {} but only {have} bytes held",
                up.offset
            )));
        }
        if end > MAX_RECORDING {
            return Err(AuthError::BadRequest(format!(
                "recording {id} is larger than {MAX_RECORDING} bytes"
            )));
        }
        if end > have {
            let Some(new) = up.data.get((have - up.offset) as usize..) else {
                return Err(AuthError::BadRequest(
                    "a recording piece must start on a character boundary".into(),
                ));
            };
            // Put, not create: a piece whose metadata update failed is
            // written again by the retry (the one node that owns a
            // recording sends the same bytes for the same offset).
            self.store
                .put(
                    &format!("{REC_DATA}{id}/{have:020}"),
                    &new.to_string(),
                    keep_until,
                )
                .await?;
        }
        let mut meta = up.meta;
        meta.node = node.name;
        meta.node_uuid = Some(node.uuid);
        meta.size = end.max(have);
        if !up.complete {
            meta.end = None;
        }
        match held {
            Some(h) => {
                self.store
                    .update_if(&meta_key, h.revision, &meta, keep_until)
                    .await?
            }
            None => self.store.create(&meta_key, &meta, keep_until).await?,
        };
        Ok(meta.size)
    }

    /// The recordings `user` may play, oldest first.
    pub async fn recordings_for(
        &self,
        user: &str,
        since: Option<i64>,
    ) -> Result<Vec<RecordingMeta>, AuthError> {
        let all_visible = self.may(user, "recording").await?;
        let mut out: Vec<RecordingMeta> = self
            .store
            .list::<RecordingMeta>(REC_META)
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|m| all_visible || m.user == user)
            .filter(|m| since.is_none_or(|s| m.start >= s))
            .collect();
        out.sort_by_key(|m| m.start);
        Ok(out)
    }

    /// One recording, if `user` may play it.
    pub async fn recording(
        &self,
        user: &str,
        id: &str,
    ) -> Result<(RecordingMeta, String), AuthError> {
        check_id(id)?;
        let missing = || AuthError::NotFound(format!("no recording of session {id}"));
        let meta = self
            .store
            .get::<RecordingMeta>(&format!("{REC_META}{id}"))
            .await?
            .ok_or_else(missing)?
            .value;
        // Someone else's recording is "not found", not "forbidden".
        if meta.user != user && !self.may(user, "recording").await? {
            return Err(missing());
        }
        // Pieces in offset order (the keys sort so), up to the size the
        // metadata vouches for.
        let mut data = String::with_capacity(meta.size as usize);
        for piece in self
            .store
            .list::<String>(&format!("{REC_DATA}{id}/"))
            .await?
        {
            if data.len() as u64 >= meta.size {
                break;
            }
            data.push_str(&piece.value);
        }
        if data.len() as u64 > meta.size
            && let Some(cut) = data.get(..meta.size as usize)
        {
            data = cut.to_string();
        }
        Ok((meta, data))
    }
}
