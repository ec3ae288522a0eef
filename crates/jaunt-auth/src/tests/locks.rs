//! Locks at auth: what each target refuses (logins, SSH logins on nodes),
//! what it leaves alone, how another instance on the same store learns of
//! it, and the long poll nodes follow them with.

use super::nodes::joined_node;
use super::*;
use jaunt_types::api::{AuthorizeRequest, AuthorizeResponse};
use jaunt_types::resources::LockTarget;
use std::time::Duration;

fn authz(user: &str, login: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        user: user.into(),
        login: login.into(),
        remote: None,
    }
}

async fn allowed(auth: &AuthServer, user: &str, login: &str, node: &str) -> AuthorizeResponse {
    auth.authorize_login(node, &authz(user, login))
        .await
        .expect("authorize")
}

#[tokio::test]
async fn a_lock_refuses_what_its_target_names_and_nothing_else() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "alice", &["root", "ubuntu"]).await;
    signed_up(&auth, "bob", &["ubuntu"]).await;
    let web = joined_node(&auth, "web").await;
    let db = joined_node(&auth, "db").await;
    assert!(allowed(&auth, "alice", "root", &web).await.allowed);

    // A login on one node, named by its name: only that pair is refused,
    // with the lock's words; a certificate is still issued (no login in it).
    let lock = auth
        .add_lock(
            LockTarget::of(None, None, Some("root"), Some("web")),
            Some("disk replacement".into()),
            None,
        )
        .await
        .expect("lock");
    assert_eq!(
        lock.target.node.as_deref(),
        Some(web.as_str()),
        "kept by UUID"
    );
    let refused = allowed(&auth, "alice", "root", &web).await;
    assert!(!refused.allowed);
    assert_eq!(
        refused.reason,
        format!(r#"lock targeting login:"root", node:"web ({web})" is in force: disk replacement"#)
    );
    assert!(allowed(&auth, "alice", "ubuntu", &web).await.allowed);
    assert!(allowed(&auth, "alice", "root", &db).await.allowed);
    auth.login(login_request("alice", PASSWORD, None).0, "10.0.0.1:1")
        .await
        .expect("a login lock does not stop certificates");
    auth.remove_lock(&lock.id).await.expect("remove");
    assert!(allowed(&auth, "alice", "root", &web).await.allowed);

    // A role: every holder, everywhere, and their logins; the answer to
    // an allowed login carries the roles a node matches locks against.
    let ok = allowed(&auth, "bob", "ubuntu", &db).await;
    assert_eq!(ok.roles, ["access"]);
    let lock = auth
        .add_lock(LockTarget::of(None, Some("access"), None, None), None, None)
        .await
        .expect("lock");
    assert!(!allowed(&auth, "bob", "ubuntu", &db).await.allowed);
    let err = auth
        .login(login_request("bob", PASSWORD, None).0, "10.0.0.1:2")
        .await
        .expect_err("locked");
    assert_eq!(
        err.to_string(),
        r#"access denied: lock targeting role:"access" is in force"#
    );
    // Only after the password: a wrong one is told nothing of the lock.
    let err = auth
        .login(login_request("bob", "wrong", None).0, "10.0.0.1:3")
        .await
        .expect_err("wrong password");
    assert!(matches!(err, AuthError::InvalidCredentials), "{err}");
    auth.remove_lock(&lock.id).await.expect("remove");

    // Audited, with the lock's ID and target.
    let events = auth
        .search_events(&jaunt_types::audit::AuditQuery::default())
        .await
        .expect("search");
    let made: Vec<_> = events
        .iter()
        .filter(|e| e.event == "lock.created")
        .collect();
    assert_eq!(made.len(), 2);
    assert_eq!(made[0].code, "TLK00I");
    assert_eq!(made[0].fields["message"], "disk replacement");
    let gone: Vec<_> = events
        .iter()
        .filter(|e| e.event == "lock.deleted")
        .collect();
    assert_eq!(gone.len(), 2);
    assert_eq!(gone[1].code, "TLK01I");
    assert_eq!(gone[1].fields["lock"], lock.id.as_str());
}

#[tokio::test]
async fn bad_locks_are_refused() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let now = jaunt_sys::clock::now();
    for (t, message, expires, want) in [
        (LockTarget::default(), None, None, "needs a target"),
        (
            LockTarget::of(None, None, None, Some("nowhere")),
            None,
            None,
            "not found",
        ),
        (
            LockTarget::of(Some("a"), None, None, None),
            None,
            Some(now - 1),
            "expire at once",
        ),
        (
            LockTarget::of(Some("a"), None, None, None),
            Some("two\nlines".to_string()),
            None,
            "one line",
        ),
        (
            LockTarget::of(Some("a"), None, None, None),
            Some("x".repeat(600)),
            None,
            "one line",
        ),
    ] {
        let err = auth.add_lock(t, message, expires).await.expect_err(want);
        assert!(err.to_string().contains(want), "{err} (wanted {want})");
    }
    assert!(auth.list_locks().await.expect("list").is_empty());
    let err = auth.remove_lock("no-such").await.expect_err("unknown");
    assert!(matches!(err, AuthError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn another_instance_learns_of_a_lock_and_nodes_wait_for_changes() {
    let f = Fixture::new();
    let a = f.auth(SecondFactor::Off).await;
    let b = f.auth(SecondFactor::Off).await;
    signed_up(&a, "alice", &["root"]).await;

    // A node that has the current set waits; one without it is answered.
    let first = b.locks_after(None, Duration::from_secs(5)).await;
    assert!(first.locks.is_empty());
    let waited = tokio::time::timeout(
        Duration::from_millis(300),
        b.locks_after(Some(&first.version), Duration::from_secs(5)),
    )
    .await;
    assert!(waited.is_err(), "nothing changed: the poll waits");

    let poll = {
        let version = first.version.clone();
        let b = &b;
        async move { b.locks_after(Some(&version), Duration::from_secs(20)).await }
    };
    let made = async {
        let lock = a
            .add_lock(
                LockTarget::of(Some("alice"), None, None, None),
                None,
                Some(jaunt_sys::clock::now() + 3600),
            )
            .await
            .expect("lock");
        // B reads the store again (every second in the daemon).
        b.refresh_locks().await.expect("refresh");
        lock
    };
    let (answer, lock) = tokio::join!(poll, made);
    assert_eq!(answer.locks, vec![lock.clone()]);
    assert_ne!(answer.version, first.version);
    assert_eq!(
        a.locks_after(None, Duration::ZERO).await.version,
        answer.version,
        "the same set has the same version at every instance"
    );
    let err = b
        .login(login_request("alice", PASSWORD, None).0, "10.0.0.1:1")
        .await
        .expect_err("locked at B too");
    assert!(matches!(err, AuthError::AccessDenied(_)), "{err}");
}
