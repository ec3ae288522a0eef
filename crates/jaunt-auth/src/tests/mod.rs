use super::*;

mod audit_index;
mod locks;
mod nodes;
mod recordings;
mod retention;
mod rotation;
mod throttle;
mod trust;
use crate::authn::totp_for;
use jaunt_ca::ssh_key::certificate::CertType;
use jaunt_ca::{SshCa, generate_client_csr};
use jaunt_store::SqliteBackend;
use jaunt_types::Secret;
use jaunt_types::admin::{AdminRequest, AdminResponse};
use jaunt_types::api::{LoginRequest, SignupFinishRequest};
use std::sync::Arc;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jaunt.db");
        Fixture { _dir: dir, path }
    }

    async fn auth(&self, second_factor: SecondFactor) -> AuthServer {
        self.auth_named("example", second_factor)
            .await
            .expect("start auth")
    }

    async fn auth_named(
        &self,
        name: &str,
        second_factor: SecondFactor,
    ) -> Result<AuthServer, AuthError> {
        self.auth_with(name, second_factor, |_| {}).await
    }

    /// Auth with the fixture's settings, changed by `change`.
    async fn auth_with(
        &self,
        name: &str,
        second_factor: SecondFactor,
        change: impl FnOnce(&mut AuthConfig),
    ) -> Result<AuthServer, AuthError> {
        let store = Store::new(Arc::new(SqliteBackend::open(&self.path).expect("open")));
        let mut config = AuthConfig {
            client_idle_timeout: None,
            cluster_name: name.to_string(),
            public_addr: "proxy.example.com:3080".into(),
            second_factor,
            max_login_attempts: 3,
            lockout_duration: Ttl::from_secs(600),
            node_offline_after: Ttl::from_secs(60),
            recording: Default::default(),
            audit_retention: None,
            recording_retention: None,
            recordings: Default::default(),
        };
        change(&mut config);
        AuthServer::start(store, config).await
    }
}

const PASSWORD: &str = "correct horse battery";

/// A piece of bob's recording of session `id` on node n1.
fn recording_piece(
    id: &str,
    start: i64,
    offset: u64,
    data: &str,
    complete: bool,
) -> jaunt_types::api::RecordingUpload {
    jaunt_types::api::RecordingUpload {
        meta: jaunt_types::audit::RecordingMeta {
            session_id: id.into(),
            user: "bob".into(),
            login: "bob".into(),
            node: "n1".into(),
            node_uuid: None,
            start,
            end: None,
            size: 0,
            truncated: false,
        },
        offset,
        data: data.into(),
        complete,
    }
}

fn login_request(user: &str, password: &str, otp: Option<String>) -> (LoginRequest, SshCa) {
    let key = SshCa::generate().expect("key");
    let (csr, _) = generate_client_csr(user).expect("csr");
    (
        LoginRequest {
            user: user.to_string(),
            password: Secret::new(password.to_string()),
            otp: otp.map(Secret::new),
            ssh_public_key: key.public_openssh().expect("pub"),
            tls_csr_pem: csr,
            ttl_secs: None,
        },
        key,
    )
}

async fn signed_up(auth: &AuthServer, user: &str, logins: &[&str]) {
    let invite = auth
        .add_user(
            user,
            vec!["access".into()],
            logins.iter().map(|s| s.to_string()).collect(),
            None,
        )
        .await
        .expect("add user");
    assert!(
        invite
            .command
            .starts_with("jsh signup --proxy=proxy.example.com:3080 --token=")
    );
    assert!(invite.command.contains("--ca-pin=sha256:"));
    auth.signup_finish(SignupFinishRequest {
        token: invite.token,
        password: Secret::new(PASSWORD.into()),
        otp: None,
    })
    .await
    .expect("signup");
}

#[tokio::test]
async fn identity_is_created_once_and_reused() {
    let f = Fixture::new();
    let first = f.auth(SecondFactor::Off).await;
    let fp = first.authorities().user.signer().fingerprint();
    let pin = first.authorities().tls.pin().expect("pin");
    drop(first);
    let again = f.auth(SecondFactor::Off).await;
    assert_eq!(again.authorities().user.signer().fingerprint(), fp);
    assert_eq!(again.authorities().tls.pin().expect("pin"), pin);
    assert_ne!(
        again.authorities().host.signer().fingerprint(),
        fp,
        "user and host CAs differ"
    );
    let renamed = f.auth_named("other", SecondFactor::Off).await;
    let err = renamed.err().expect("rename refused").to_string();
    assert!(err.contains("belongs to cluster \"example\""), "{err}");
}

#[tokio::test]
async fn login_issues_certificates_from_roles() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "alice", &["alice", "ubuntu"]).await;
    let (mut req, key) = login_request("alice", PASSWORD, None);
    req.ttl_secs = Some(3600);
    let resp = auth.login(req, "127.0.0.1:1").await.expect("login");
    let cert = jaunt_ca::ssh_key::Certificate::from_openssh(&resp.ssh_cert).expect("cert");
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.key_id(), "alice");
    assert_eq!(
        cert.valid_principals(),
        ["alice".to_string(), "ubuntu".to_string()]
    );
    assert_eq!(cert.public_key(), key.public_key().key_data());
    assert_eq!(
        cert.signature_key(),
        auth.authorities().user.signer().public_key().key_data()
    );
    assert_eq!(
        cert.valid_before() - cert.valid_after(),
        3600 + jaunt_ca::CLOCK_SKEW_SECS
    );
    let ext: Vec<&String> = cert.extensions().keys().collect();
    assert_eq!(
        ext,
        [
            "jaunt-logins@jaunt",
            "jaunt-roles@jaunt",
            "permit-agent-forwarding",
            "permit-port-forwarding",
            "permit-pty"
        ]
    );
    // What a leaf cluster maps: the roles, and the logins trait.
    assert_eq!(
        cert.extensions()
            .get(jaunt_ca::EXT_ROLES)
            .map(String::as_str),
        Some("access")
    );
    assert_eq!(
        cert.extensions()
            .get(jaunt_ca::EXT_LOGINS)
            .map(String::as_str),
        Some("alice,ubuntu")
    );
    assert_eq!(resp.roles, ["access"]);
    assert_eq!(resp.logins, ["alice", "ubuntu"]);
    assert_eq!(
        resp.host_ca_keys,
        [auth
            .authorities()
            .host
            .signer()
            .public_openssh()
            .expect("pub")]
    );

    // A TTL beyond the role's cap is cut to the cap (12h for `access`).
    let (mut long, _) = login_request("alice", PASSWORD, None);
    long.ttl_secs = Some(48 * 3600);
    let resp = auth.login(long, "127.0.0.1:1").await.expect("login");
    let cert = jaunt_ca::ssh_key::Certificate::from_openssh(&resp.ssh_cert).expect("cert");
    assert_eq!(
        cert.valid_before() - cert.valid_after(),
        12 * 3600 + jaunt_ca::CLOCK_SKEW_SECS
    );
}

#[tokio::test]
async fn failures_look_alike_and_lock_the_account() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "bob", &["bob"]).await;
    let unknown = auth
        .login(login_request("nobody", PASSWORD, None).0, "127.0.0.1:1")
        .await
        .expect_err("unknown");
    let wrong = auth
        .login(
            login_request("bob", "wrong password!", None).0,
            "127.0.0.1:1",
        )
        .await
        .expect_err("wrong");
    assert_eq!(unknown.to_string(), "invalid credentials");
    assert_eq!(wrong.to_string(), "invalid credentials");
    auth.login(
        login_request("bob", "wrong password!", None).0,
        "127.0.0.1:1",
    )
    .await
    .expect_err("2");
    let third = auth
        .login(
            login_request("bob", "wrong password!", None).0,
            "127.0.0.1:1",
        )
        .await
        .expect_err("3");
    assert!(matches!(third, AuthError::Locked { .. }), "{third}");
    // Even the right password is refused while locked, and says so.
    let locked = auth
        .login(login_request("bob", PASSWORD, None).0, "127.0.0.1:1")
        .await
        .expect_err("locked");
    assert!(locked.to_string().contains("locked"), "{locked}");
    assert!(
        locked.to_string().contains("jctl users unlock bob"),
        "{locked}"
    );
    auth.unlock_user("bob").await.expect("unlock");
    auth.login(login_request("bob", PASSWORD, None).0, "127.0.0.1:1")
        .await
        .expect("login after unlock");
    // A success resets the count: two more failures do not lock.
    for _ in 0..2 {
        auth.login(
            login_request("bob", "wrong password!", None).0,
            "127.0.0.1:1",
        )
        .await
        .expect_err("wrong");
    }
    auth.login(login_request("bob", PASSWORD, None).0, "127.0.0.1:1")
        .await
        .expect("still open");
}

#[tokio::test]
async fn logins_and_lockouts_are_audited() {
    use jaunt_types::audit::AuditQuery;
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "bob", &["bob"]).await;
    for _ in 0..3 {
        let _ = auth
            .login(
                login_request("bob", "wrong password!", None).0,
                "10.0.0.9:4",
            )
            .await;
    }
    auth.unlock_user("bob").await.expect("unlock");
    auth.login(login_request("bob", PASSWORD, None).0, "10.0.0.9:5")
        .await
        .expect("login");
    let events = auth
        .search_events(&AuditQuery {
            user: Some("bob".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    let codes: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.event.as_str(), e.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            ("user.create", "T1002I"),
            ("user.login", "T1000W"),
            ("user.login", "T1000W"),
            ("user.locked", "TLK10I"),
            ("user.login", "T1000W"),
            ("user.update", "T1003I"),
            ("cert.create", "TC000I"),
            ("user.login", "T1000I"),
        ],
        "{events:#?}"
    );
    let refused = &events[1];
    assert_eq!(refused.addr.as_deref(), Some("10.0.0.9:4"));
    assert_eq!(refused.fields["reason"], "invalid credentials");
    assert!(!refused.success);

    // A client-chosen user name of 1 MB is stored capped, with its hash.
    let huge = "\u{1}".repeat(1_000_000);
    let err = auth
        .login(
            login_request(&huge, "wrong password!", None).0,
            "10.0.0.9:6",
        )
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("invalid credentials"), "{err}");
    let stored = auth
        .search_events(&AuditQuery {
            event: Some("user.login".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    let capped = stored
        .iter()
        .find(|e| e.addr.as_deref() == Some("10.0.0.9:6"))
        .and_then(|e| e.user.clone())
        .expect("the refused login's event");
    assert!(
        capped.len() < 2 * jaunt_types::audit::MAX_TEXT_BYTES,
        "{}",
        capped.len()
    );
    assert!(
        capped.contains("[truncated: 1000000 bytes, sha256:"),
        "{capped:?}"
    );
}

#[tokio::test]
async fn otp_signup_and_codes_used_once() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Otp).await;
    let invite = auth
        .add_user("carol", vec!["access".into()], vec!["carol".into()], None)
        .await
        .expect("add");
    let start = auth.signup_start(&invite.token).await.expect("start");
    let uri = start.totp_uri.expect("otp uri");
    assert!(
        uri.expose()
            .starts_with("otpauth://totp/Jaunt:carol%40example?"),
        "{}",
        uri.expose()
    );
    let totp = totp_rs::TOTP::from_url_unchecked(uri.expose()).expect("parse uri");
    let now = crate::now() as u64;
    let short = auth
        .signup_finish(SignupFinishRequest {
            token: invite.token.clone(),
            password: Secret::new("short".into()),
            otp: Some(Secret::new(totp.generate(now))),
        })
        .await
        .expect_err("short password");
    assert!(short.to_string().contains("at least 12"), "{short}");
    let bad_code = auth
        .signup_finish(SignupFinishRequest {
            token: invite.token.clone(),
            password: Secret::new(PASSWORD.into()),
            otp: Some(Secret::new("000000".into())),
        })
        .await;
    if totp.generate(now) != "000000" {
        assert!(bad_code.is_err());
    }
    let code = totp.generate(now);
    auth.signup_finish(SignupFinishRequest {
        token: invite.token.clone(),
        password: Secret::new(PASSWORD.into()),
        otp: Some(Secret::new(code.clone())),
    })
    .await
    .expect("signup");
    // The token is spent.
    assert!(auth.signup_start(&invite.token).await.is_err());
    // The signup code cannot be replayed at login; the next step's code works once.
    let replay = auth
        .login(
            login_request("carol", PASSWORD, Some(code)).0,
            "127.0.0.1:1",
        )
        .await
        .expect_err("replay");
    assert_eq!(replay.to_string(), "invalid credentials");
    let seed_totp = totp_for(&totp.get_secret_base32(), "carol").expect("totp");
    let next = seed_totp.generate(now + 30);
    auth.login(
        login_request("carol", PASSWORD, Some(next.clone())).0,
        "127.0.0.1:1",
    )
    .await
    .expect("login");
    let again = auth
        .login(
            login_request("carol", PASSWORD, Some(next)).0,
            "127.0.0.1:1",
        )
        .await
        .expect_err("reuse");
    assert_eq!(again.to_string(), "invalid credentials");
    let missing = auth
        .login(login_request("carol", PASSWORD, None).0, "127.0.0.1:1")
        .await
        .expect_err("no code");
    assert_eq!(missing.to_string(), "invalid credentials");
}

#[tokio::test]
async fn administration_through_the_admin_protocol() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let status = auth.admin(AdminRequest::Status).await;
    let AdminResponse::Status(s) = status else {
        panic!("{status:?}")
    };
    assert_eq!(s.cluster_name, "example");
    assert_eq!(s.roles, 3);

    let bad_role = auth
        .admin(AdminRequest::UserAdd {
            name: "dave".into(),
            roles: vec!["nope".into()],
            logins: vec![],
            ttl: None,
        })
        .await;
    assert!(
        matches!(&bad_role, AdminResponse::Error { message } if message.contains("role \"nope\" not found")),
        "{bad_role:?}"
    );
    let bad_login = auth
        .admin(AdminRequest::UserAdd {
            name: "dave".into(),
            roles: vec!["access".into()],
            logins: vec!["-x".into()],
            ttl: None,
        })
        .await;
    assert!(matches!(bad_login, AdminResponse::Error { .. }));
    signed_up(&auth, "dave", &["dave"]).await;
    let dup = auth
        .admin(AdminRequest::UserAdd {
            name: "dave".into(),
            roles: vec!["access".into()],
            logins: vec![],
            ttl: None,
        })
        .await;
    assert!(
        matches!(&dup, AdminResponse::Error { message } if message.contains("already exists")),
        "{dup:?}"
    );

    // A role held by a user cannot be removed.
    let held = auth
        .admin(AdminRequest::RoleRemove {
            name: "access".into(),
        })
        .await;
    assert!(
        matches!(&held, AdminResponse::Error { message } if message.contains("dave")),
        "{held:?}"
    );

    // Update, then reset: the old password stops working.
    auth.update_user(
        "dave",
        Some(vec!["access".into(), "editor".into()]),
        Some(vec!["root".into()]),
    )
    .await
    .expect("update");
    let resp = auth
        .login(login_request("dave", PASSWORD, None).0, "127.0.0.1:1")
        .await
        .expect("login");
    assert_eq!(resp.logins, ["root"]);
    let reset = auth
        .admin(AdminRequest::UserReset {
            name: "dave".into(),
            ttl: None,
        })
        .await;
    assert!(matches!(reset, AdminResponse::Signup { .. }));
    auth.login(login_request("dave", PASSWORD, None).0, "127.0.0.1:1")
        .await
        .expect_err("reset clears password");

    let added = auth
        .admin(AdminRequest::TokenAdd {
            kind: jaunt_types::resources::TokenKind::Node,
            ttl: None,
            uses: None,
            labels: None,
        })
        .await;
    let AdminResponse::TokenAdded { token, command } = added else {
        panic!("{added:?}")
    };
    assert!(
        command.starts_with("jaunt start --roles=node --token="),
        "{command}"
    );
    assert!(
        command.contains("--proxy=proxy.example.com:3080 --ca-pin=sha256:"),
        "{command}"
    );
    let AdminResponse::Tokens { tokens } = auth.admin(AdminRequest::TokenList).await else {
        panic!()
    };
    assert!(tokens.iter().any(|t| t.token == token.token));
    auth.remove_token(token.token.expose())
        .await
        .expect("rm token");
    assert!(auth.remove_token(token.token.expose()).await.is_err());
    auth.remove_user("dave").await.expect("rm user");
    assert!(auth.remove_user("dave").await.is_err());
}

#[tokio::test]
async fn users_without_logins_get_an_unusable_principal() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let invite = auth
        .add_user("ed", vec!["editor".into()], vec![], None)
        .await
        .expect("add");
    auth.signup_finish(SignupFinishRequest {
        token: invite.token,
        password: Secret::new(PASSWORD.into()),
        otp: None,
    })
    .await
    .expect("signup");
    let resp = auth
        .login(login_request("ed", PASSWORD, None).0, "127.0.0.1:1")
        .await
        .expect("login");
    let cert = jaunt_ca::ssh_key::Certificate::from_openssh(&resp.ssh_cert).expect("cert");
    assert_eq!(cert.valid_principals(), ["-jaunt-no-login".to_string()]);
    assert!(resp.logins.is_empty());
}
