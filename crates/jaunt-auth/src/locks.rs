//! Locks (`jctl lock`): access matching one is refused (logins,
//! certificates, API calls, relays, SSH logins and channels), and live
//! connections matching it end. Locks live in the store (`/locks/<id>`,
//! expiring with the lock); each instance keeps the set in force in a
//! watch channel, read again every second so a lock made through another
//! instance holds here within that, and at once for one made here. Nodes
//! follow the set with a long poll ([`AuthServer::locks_after`]); the
//! proxy's agentless connections watch the channel itself.

use crate::records::{UserRecord, user_key};
use crate::{AuthError, AuthServer, now};
use jaunt_rbac::locks::{LockFeed, LockSubject, in_force};
use jaunt_store::StoreError;
use jaunt_types::api::LocksResponse;
use jaunt_types::resources::{Lock, LockTarget};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const LOCKS: &str = "/locks/";
/// How often an instance reads the locks again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The longest message a lock carries (it is shown in SSH disconnects).
const MAX_MESSAGE: usize = 512;

fn lock_key(id: &str) -> String {
    format!("{LOCKS}{id}")
}

/// The set in force at this instance.
pub(crate) struct LockSet(watch::Sender<Arc<Vec<Lock>>>);

impl Default for LockSet {
    fn default() -> Self {
        LockSet(watch::channel(Arc::new(Vec::new())).0)
    }
}

/// Names a set of locks the same way at every instance (FNV-1a over the
/// IDs in order), so a node's `?after=` means the same wherever it asks.
fn version_of(locks: &[Lock]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for id in locks.iter().map(|l| l.id.as_bytes()) {
        for b in id.iter().chain(b",") {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl AuthServer {
    /// Makes a lock. A node is named by UUID or by a name only one node
    /// has, and kept by UUID.
    pub async fn add_lock(
        &self,
        mut target: LockTarget,
        message: Option<String>,
        expires: Option<i64>,
    ) -> Result<Lock, AuthError> {
        if target.is_empty() {
            return Err(AuthError::BadRequest(
                "a lock needs a target: --user, --role, --login or --node".into(),
            ));
        }
        if let Some(node) = target.node.take() {
            let found = self.find_node(&node).await?;
            target.node = Some(found.uuid.clone());
            target.node_name = Some(found.name.clone());
        }
        let message = message
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty());
        if message
            .as_ref()
            .is_some_and(|m| m.len() > MAX_MESSAGE || m.chars().any(char::is_control))
        {
            return Err(AuthError::BadRequest(format!(
                "a lock's message is one line of at most {MAX_MESSAGE} bytes"
            )));
        }
        if expires.is_some_and(|e| e <= now()) {
            return Err(AuthError::BadRequest(
                "the lock would expire at once".into(),
            ));
        }
        let lock = Lock {
            id: uuid::Uuid::new_v4().to_string(),
            target,
            message,
            expires,
            created: now(),
        };
        self.store
            .create(&lock_key(&lock.id), &lock, lock.expires)
            .await?;
        let mut e = self
            .event("lock.created", true)
            .with("lock", lock.id.as_str())
            .with("target", lock.target.to_string());
        if let Some(m) = &lock.message {
            e = e.with("message", m.as_str());
        }
        if let Some(x) = lock.expires {
            e = e.with("expires", x);
        }
        e.user = lock.target.user.clone();
        e.login = lock.target.login.clone();
        e.node_uuid = lock.target.node.clone();
        self.emit(e).await?;
        self.refresh_locks().await?;
        Ok(lock)
    }

    /// The locks in force, oldest first.
    pub async fn list_locks(&self) -> Result<Vec<Lock>, AuthError> {
        let t = now();
        let mut locks: Vec<Lock> = self
            .store
            .list::<Lock>(LOCKS)
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|l| l.expires.is_none_or(|e| e > t))
            .collect();
        locks.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(locks)
    }

    pub async fn remove_lock(&self, id: &str) -> Result<String, AuthError> {
        let Some(lock) = self.store.get::<Lock>(&lock_key(id)).await? else {
            return Err(AuthError::NotFound(format!("lock {id:?} not found")));
        };
        match self.store.delete(&lock_key(id)).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let mut e = self
            .event("lock.deleted", true)
            .with("lock", id)
            .with("target", lock.value.target.to_string());
        e.user = lock.value.target.user.clone();
        self.emit(e).await?;
        self.refresh_locks().await?;
        Ok(format!("lock {id} has been removed"))
    }

    /// Reads the locks again; run every [`REFRESH_EVERY`].
    pub async fn refresh_locks(&self) -> Result<(), AuthError> {
        let fresh = self.list_locks().await?;
        self.locks.0.send_if_modified(|known| {
            let changed = **known != fresh;
            if changed {
                *known = Arc::new(fresh);
            }
            changed
        });
        Ok(())
    }

    /// The locks in force here, as they change.
    pub fn lock_feed(&self) -> LockFeed {
        self.locks.0.subscribe()
    }

    /// The lock in force that stops this access, if any. The user's roles
    /// are read only when some lock names a role.
    pub async fn lock_on(
        &self,
        user: &str,
        login: Option<&str>,
        node: Option<&str>,
    ) -> Result<Option<Lock>, AuthError> {
        let locks = self.locks.0.borrow().clone();
        if locks.is_empty() {
            return Ok(None);
        }
        let roles = if locks.iter().any(|l| l.target.role.is_some()) {
            self.store
                .get::<UserRecord>(&user_key(user))
                .await?
                .map(|r| r.value.roles)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(self.lock_for(user, roles, login, node))
    }

    /// As [`AuthServer::lock_on`], for a caller that has the user's roles.
    pub fn lock_for(
        &self,
        user: &str,
        roles: Vec<String>,
        login: Option<&str>,
        node: Option<&str>,
    ) -> Option<Lock> {
        let subject = LockSubject {
            user: user.to_string(),
            roles,
            login: login.map(str::to_string),
            node: node.map(str::to_string),
        };
        in_force(&self.locks.0.borrow(), &subject, now()).cloned()
    }

    /// Refuses access a lock stops, with the lock's words.
    pub async fn refuse_locked(
        &self,
        user: &str,
        login: Option<&str>,
        node: Option<&str>,
    ) -> Result<(), AuthError> {
        match self.lock_on(user, login, node).await? {
            Some(lock) => Err(AuthError::AccessDenied(lock.refusal())),
            None => Ok(()),
        }
    }

    /// The locks for a node that has `after`: at once if the set differs,
    /// else when it changes or `wait` has passed.
    pub async fn locks_after(&self, after: Option<&str>, wait: Duration) -> LocksResponse {
        let mut feed = self.lock_feed();
        let answer = |locks: &Arc<Vec<Lock>>| LocksResponse {
            version: version_of(locks),
            locks: locks.as_ref().clone(),
        };
        let now = answer(&feed.borrow_and_update());
        if after != Some(now.version.as_str()) {
            return now;
        }
        match tokio::time::timeout(wait, feed.changed()).await {
            Ok(Ok(())) => answer(&feed.borrow_and_update()),
            _ => now,
        }
    }
}
