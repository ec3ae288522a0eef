//! Locks: which one, if any, stops a user's access. A lock matches when
//! every field of its target that it sets matches the access in question;
//! a field the access does not have (a login, when a certificate is
//! issued; a node, when a user logs in to the cluster) does not match, so
//! a lock on `login:root` stops sessions as root but not `jsh login`.

use jaunt_types::resources::{Lock, LockTarget};
use std::sync::Arc;
use tokio::sync::watch;

/// The access a lock may stop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockSubject {
    pub user: String,
    /// The user's roles now.
    pub roles: Vec<String>,
    pub login: Option<String>,
    /// The node's UUID.
    pub node: Option<String>,
}

fn field_matches(want: Option<&String>, have: Option<&String>) -> bool {
    match want {
        None => true,
        Some(w) => have == Some(w),
    }
}

/// Whether `target` stops `subject`. An empty target matches nothing (auth
/// refuses to make one).
pub fn target_matches(target: &LockTarget, subject: &LockSubject) -> bool {
    !target.is_empty()
        && field_matches(target.user.as_ref(), Some(&subject.user))
        && target
            .role
            .as_ref()
            .is_none_or(|r| subject.roles.contains(r))
        && field_matches(target.login.as_ref(), subject.login.as_ref())
        && field_matches(target.node.as_ref(), subject.node.as_ref())
}

/// The first lock of `locks` in force at `now` (Unix seconds) that stops
/// `subject`.
pub fn in_force<'a>(locks: &'a [Lock], subject: &LockSubject, now: i64) -> Option<&'a Lock> {
    locks
        .iter()
        .find(|l| l.expires.is_none_or(|e| e > now) && target_matches(&l.target, subject))
}

/// The locks a process follows, as they change.
pub type LockFeed = watch::Receiver<Arc<Vec<Lock>>>;

/// Waits until a lock that stops `subject` is in the feed, and returns it.
/// A feed whose sender is gone never ends the wait (nothing new can come).
pub async fn until_locked(
    mut feed: LockFeed,
    subject: &LockSubject,
    now: impl Fn() -> i64,
) -> Lock {
    loop {
        if let Some(lock) = in_force(&feed.borrow_and_update(), subject, now()) {
            return lock.clone();
        }
        if feed.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Waits until an open connection's access ends: `expiry` (the caller's
/// timer for the certificate's end) completes, or a lock that stops
/// `subject` comes into the feed.
pub async fn access_end(
    feed: LockFeed,
    subject: &LockSubject,
    now: impl Fn() -> i64,
    expiry: impl std::future::Future<Output = ()>,
) -> AccessEnd {
    tokio::select! {
        () = expiry => AccessEnd::Expired,
        lock = until_locked(feed, subject, now) => AccessEnd::Locked(lock),
    }
}

/// Why a connection's access ended while it was open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessEnd {
    /// Its certificate expired (the reference product's
    /// `disconnect_expired_cert`).
    Expired,
    Locked(Lock),
}

impl AccessEnd {
    /// What the client is told as it is disconnected.
    pub fn told(&self) -> String {
        match self {
            AccessEnd::Expired => "your certificate has expired; run 'jsh login' again".into(),
            AccessEnd::Locked(lock) => lock.refusal(),
        }
    }

    /// The `reason` of the `client.disconnect` event.
    pub fn reason(&self) -> String {
        match self {
            AccessEnd::Expired => "the certificate expired".into(),
            AccessEnd::Locked(lock) => lock.refusal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> LockSubject {
        LockSubject {
            user: "alice".into(),
            roles: vec!["access".into(), "dev".into()],
            login: Some("root".into()),
            node: Some("uuid-1".into()),
        }
    }

    fn lock(target: LockTarget, expires: Option<i64>) -> Lock {
        Lock {
            id: "l1".into(),
            target,
            message: None,
            expires,
            created: 0,
        }
    }

    #[test]
    fn every_field_a_target_sets_must_match() {
        let s = subject();
        for (target, want) in [
            (LockTarget::of(Some("alice"), None, None, None), true),
            (LockTarget::of(Some("bob"), None, None, None), false),
            (LockTarget::of(None, Some("dev"), None, None), true),
            (LockTarget::of(None, Some("admin"), None, None), false),
            (LockTarget::of(None, None, Some("root"), None), true),
            (LockTarget::of(None, None, Some("ubuntu"), None), false),
            (LockTarget::of(None, None, None, Some("uuid-1")), true),
            (LockTarget::of(None, None, None, Some("uuid-2")), false),
            (
                LockTarget::of(Some("alice"), None, Some("root"), None),
                true,
            ),
            (
                LockTarget::of(Some("alice"), None, Some("ubuntu"), None),
                false,
            ),
            (
                LockTarget::of(Some("alice"), Some("dev"), Some("root"), Some("uuid-1")),
                true,
            ),
            (
                LockTarget::of(Some("alice"), Some("dev"), Some("root"), Some("uuid-2")),
                false,
            ),
            // An empty target matches nothing.
            (LockTarget::of(None, None, None, None), false),
        ] {
            assert_eq!(target_matches(&target, &s), want, "{target:?}");
        }
    }

    #[test]
    fn a_field_the_access_lacks_does_not_match() {
        // Issuing a certificate: no login, no node.
        let s = LockSubject {
            login: None,
            node: None,
            ..subject()
        };
        assert!(!target_matches(
            &LockTarget::of(None, None, Some("root"), None),
            &s
        ));
        assert!(!target_matches(
            &LockTarget::of(None, None, None, Some("uuid-1")),
            &s
        ));
        assert!(target_matches(
            &LockTarget::of(Some("alice"), None, None, None),
            &s
        ));
    }

    #[test]
    fn an_expired_lock_is_not_in_force() {
        let s = subject();
        let locks = [lock(
            LockTarget::of(Some("alice"), None, None, None),
            Some(100),
        )];
        assert!(in_force(&locks, &s, 99).is_some());
        assert!(in_force(&locks, &s, 100).is_none());
        let forever = [lock(LockTarget::of(Some("alice"), None, None, None), None)];
        assert!(in_force(&forever, &s, i64::MAX).is_some());
    }

    #[test]
    fn the_refusal_names_the_target_and_the_message() {
        let mut l = lock(
            LockTarget::of(Some("alice"), None, Some("root"), None),
            None,
        );
        assert_eq!(
            l.refusal(),
            r#"lock targeting user:"alice", login:"root" is in force"#
        );
        l.message = Some("laptop stolen".into());
        assert_eq!(
            l.refusal(),
            r#"lock targeting user:"alice", login:"root" is in force: laptop stolen"#
        );
        l.target = LockTarget {
            node: Some("u-1".into()),
            node_name: Some("web".into()),
            ..Default::default()
        };
        assert_eq!(
            l.refusal(),
            r#"lock targeting node:"web (u-1)" is in force: laptop stolen"#
        );
    }

    #[tokio::test]
    async fn a_wait_ends_when_a_matching_lock_arrives() {
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        let s = subject();
        let waiter = tokio::spawn(async move { until_locked(rx, &s, || 0).await });
        // A lock on someone else changes nothing.
        tx.send_replace(Arc::new(vec![lock(
            LockTarget::of(Some("bob"), None, None, None),
            None,
        )]));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        tx.send_replace(Arc::new(vec![lock(
            LockTarget::of(None, Some("dev"), None, None),
            None,
        )]));
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the wait ends")
            .expect("task");
        assert_eq!(got.target.role.as_deref(), Some("dev"));
    }
}
