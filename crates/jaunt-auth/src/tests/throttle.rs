//! Failed logins and the password-check queue, per client address: what
//! one address can do to an account and to everyone else's logins.

use super::*;
use crate::throttle::{FAILS_PER_ADDRESS, SHARE_PER_THREAD};

async fn attempt(
    auth: &AuthServer,
    user: &str,
    password: &str,
    addr: &str,
) -> Result<(), AuthError> {
    auth.login(login_request(user, password, None).0, addr)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn failures_from_one_address_lock_the_account_for_that_address_only() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await; // 3 attempts
    signed_up(&auth, "alice", &["alice"]).await;
    for _ in 0..3 {
        let _ = attempt(&auth, "alice", "wrong password!", "203.0.113.7:4000").await;
    }
    let err = attempt(&auth, "alice", PASSWORD, "203.0.113.7:4001")
        .await
        .expect_err("locked for the guessing address");
    assert!(matches!(err, AuthError::Locked { .. }), "{err}");
    // Alice, elsewhere, is not locked out by it.
    attempt(&auth, "alice", PASSWORD, "198.51.100.2:5000")
        .await
        .expect("another address logs in");
    let status = &auth.list_users().await.expect("users")[0].status;
    assert!(
        status.starts_with("locked for 203.0.113.7 until "),
        "{status}"
    );

    // Locks from five addresses lock the account everywhere.
    for i in 1..5 {
        for _ in 0..3 {
            let _ = attempt(&auth, "alice", "wrong password!", &format!("192.0.2.{i}:1")).await;
        }
    }
    let err = attempt(&auth, "alice", PASSWORD, "198.51.100.2:5000")
        .await
        .expect_err("locked everywhere");
    assert!(matches!(err, AuthError::Locked { .. }), "{err}");
    let locked = auth
        .search_events(&jaunt_types::audit::AuditQuery {
            event: Some("user.locked".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(
        locked.len(),
        6,
        "five addresses, then every address: {locked:#?}"
    );
    assert!(locked.iter().any(|e| {
        e.fields["reason"]
            .as_str()
            .is_some_and(|r| r.contains("every address"))
    }));
    auth.unlock_user("alice").await.expect("unlock");
    attempt(&auth, "alice", PASSWORD, "203.0.113.7:4000")
        .await
        .expect("unlocked everywhere");
}

#[tokio::test]
async fn an_address_that_fails_too_often_waits_and_no_account_locks_for_it() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "alice", &["alice"]).await;
    // Guessing across many names (none existing) from one address.
    for i in 0..FAILS_PER_ADDRESS {
        let err = attempt(&auth, &format!("user{i}"), "guess", "203.0.113.9:1")
            .await
            .expect_err("no such user");
        assert!(matches!(err, AuthError::InvalidCredentials), "{err}");
    }
    // Now even a right password from there waits, without a check.
    let err = attempt(&auth, "alice", PASSWORD, "203.0.113.9:2")
        .await
        .expect_err("throttled");
    assert!(matches!(err, AuthError::Throttled(_)), "{err}");
    assert!(
        err.to_string()
            .contains("too many failed logins from 203.0.113.9"),
        "{err}"
    );
    attempt(&auth, "alice", PASSWORD, "198.51.100.3:1")
        .await
        .expect("others are not held up");
    assert_eq!(auth.list_users().await.expect("users")[0].status, "active");
}

#[tokio::test]
async fn a_flood_of_logins_from_one_address_leaves_room_for_others() {
    let f = Fixture::new();
    let auth = Arc::new(f.auth(SecondFactor::Off).await);
    signed_up(&auth, "alice", &["alice"]).await;
    // Far more at once than one address's share of the queue.
    let flood = crate::authn::hasher_threads() * SHARE_PER_THREAD * 3;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..flood {
        let auth = auth.clone();
        tasks.spawn(async move {
            attempt(&auth, &format!("nobody{i}"), "guess", "203.0.113.10:1").await
        });
    }
    // Alice, from her own address, while the flood is queued.
    let mine = attempt(&auth, "alice", PASSWORD, "198.51.100.4:1").await;
    let mut throttled = 0;
    while let Some(r) = tasks.join_next().await {
        if let Err(AuthError::Throttled(m)) = r.expect("task") {
            assert!(
                m.contains("too many logins at once from 203.0.113.10"),
                "{m}"
            );
            throttled += 1;
        }
    }
    mine.expect("a login from another address gets in");
    assert!(throttled > 0, "the flood past its share is turned away");
}
