//! Signup, login, status and logout with the real jsh and jctl against an
//! in-process cluster.

mod support;

use std::time::Duration;
use support::*;

#[test]
fn signup_with_otp_then_login_status_logout() {
    let c = Cluster::start(Options {
        second_factor: "otp",
        ..Default::default()
    });
    let token = c.add_user("alice", "alice,ubuntu");
    let home = c.user_home("alice");
    let totp = signup_with_otp(&home, &c.proxy, &token, &c.ca_pin, "alice");

    // The signup token is spent.
    c.signup(&home, &token, PASSWORD)
        .fails_with("token is invalid or has expired");

    // Wrong code, missing code: the one message.
    c.login(&home, "alice", &["--otp=000000"], &format!("{PASSWORD}\n"))
        .fails_with("invalid credentials");

    // The code of the next time step has not been used yet.
    let code = totp.generate(unix_now() + 30);
    let out = c
        .login(
            &home,
            "alice",
            &[&format!("--otp={code}")],
            &format!("{PASSWORD}\n"),
        )
        .ok();
    assert!(
        out.stdout.contains("Logged in as:       alice"),
        "{}",
        out.stdout
    );
    // The same code again is refused: codes are good once.
    c.login(
        &home,
        "alice",
        &[&format!("--otp={code}")],
        &format!("{PASSWORD}\n"),
    )
    .fails_with("invalid credentials");

    let status = c.jsh(&home, &["status"], "").ok();
    let want = [
        format!("> Profile URL:        https://{}", c.proxy),
        "  Logged in as:       alice".to_string(),
        "  Cluster:            example".to_string(),
        "  Roles:              access".to_string(),
        "  Logins:             alice, ubuntu".to_string(),
        "  Extensions:         permit-agent-forwarding, permit-port-forwarding, permit-pty"
            .to_string(),
    ];
    for line in want {
        assert!(
            status.stdout.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            status.stdout
        );
    }
    assert!(
        status.stdout.contains("[valid for 11h59m") || status.stdout.contains("[valid for 12h]"),
        "{}",
        status.stdout
    );

    // The files of the reference layout, private ones private.
    let jsh = home.join(".jsh");
    let keys = jsh.join("keys/127.0.0.1");
    for (path, mode) in [
        (keys.join("alice"), 0o600),
        (keys.join("alice.ppk"), 0o600),
        (keys.join("alice.key"), 0o600),
        (keys.join("alice.pub"), 0o644),
        (keys.join("alice.crt"), 0o644),
        (keys.join("alice-ssh/example-cert.pub"), 0o644),
        (keys.join("cas/example.pem"), 0o644),
        (jsh.join("known_hosts"), 0o644),
        (jsh.join("127.0.0.1.yaml"), 0o644),
        (jsh.join("current-profile"), 0o644),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "{}",
            path.display()
        );
    }
    let known_hosts = std::fs::read_to_string(jsh.join("known_hosts")).expect("known_hosts");
    assert!(
        known_hosts.starts_with("@cert-authority 127.0.0.1,example,*.example ssh-ed25519 "),
        "{known_hosts}"
    );

    let out = c.jsh(&home, &["logout"], "").ok();
    assert!(
        out.stdout.contains("Logged out all users"),
        "{}",
        out.stdout
    );
    assert!(!keys.exists(), "keys removed");
    let known_hosts = std::fs::read_to_string(jsh.join("known_hosts")).expect("known_hosts");
    assert!(!known_hosts.contains("@cert-authority"), "{known_hosts}");
    c.jsh(&home, &["status"], "")
        .fails_with("No proxy address specified, missed --proxy flag?");
    // `--all` says it outright; with nobody logged in there is nothing to do.
    let again = c.jsh(&home, &["logout", "--all"], "").ok();
    assert!(
        again.stdout.contains("You are not logged in."),
        "{}",
        again.stdout
    );
}

#[test]
fn login_without_a_proxy_or_with_the_wrong_trust() {
    let c = Cluster::start(Options::default());
    let home = c.signed_up("bob", "bob");
    c.jsh(
        &home,
        &["login", "--user=bob", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .fails_with("No proxy address specified, missed --proxy flag?");
    let proxy = format!("--proxy={}", c.proxy);
    c.jsh(
        &home,
        &["login", &proxy, "--user=bob", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .fails_with("--ca-pin");
    let wrong_pin = format!("--ca-pin=sha256:{}", "0".repeat(64));
    c.jsh(
        &home,
        &[
            "login",
            &proxy,
            "--user=bob",
            &wrong_pin,
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    )
    .fails_with("does not chain to a CA matching --ca-pin");
    let out = c
        .jsh(
            &home,
            &[
                "login",
                &proxy,
                "--user=bob",
                "--insecure",
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
        .ok();
    assert!(out.stderr.contains("WARNING: --insecure"), "{}", out.stderr);
    // Once logged in, the saved cluster CA is trusted without flags.
    c.jsh(
        &home,
        &["login", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .ok();
}

#[test]
fn lockout_after_consecutive_failures_until_unlocked() {
    let c = Cluster::start(Options {
        max_login_attempts: 3,
        ..Default::default()
    });
    let home = c.signed_up("carol", "carol");
    let unknown = c
        .login(&home, "nobody", &[], &format!("{PASSWORD}\n"))
        .fails_with("invalid credentials");
    let wrong = c
        .login(&home, "carol", &[], "not the password\n")
        .fails_with("invalid credentials");
    assert_eq!(
        unknown.stderr, wrong.stderr,
        "unknown user and wrong password look the same"
    );
    c.login(&home, "carol", &[], "not the password\n")
        .fails_with("invalid credentials");
    c.login(&home, "carol", &[], "not the password\n")
        .fails_with("invalid credentials");
    // Locked, even the right password is refused, and the answer is a
    // wrong password's: it must not tell anyone that carol exists.
    let locked = c
        .login(&home, "carol", &[], &format!("{PASSWORD}\n"))
        .fails_with("invalid credentials");
    assert_eq!(
        locked.stderr, unknown.stderr,
        "a locked account looks unknown"
    );
    // Administrators see the lock, for the address the failures came
    // from (they lock carol out from there only).
    let users = c.jctl(&["users", "ls"]).ok();
    assert!(
        users.stdout.contains("locked for 127.0.0.1 until"),
        "{}",
        users.stdout
    );
    let events = c
        .jctl(&["audit", "ls", "--type=user.locked", "--format=json"])
        .ok()
        .stdout;
    assert!(events.contains("carol"), "{events}");
    c.jctl(&["users", "unlock", "carol"]).ok();
    c.login(&home, "carol", &[], &format!("{PASSWORD}\n")).ok();
}

#[test]
fn short_certificates_expire_and_say_how_to_log_in_again() {
    let c = Cluster::start(Options::default());
    let home = c.signed_up("dave", "dave");
    c.login(&home, "dave", &["--ttl=2s"], &format!("{PASSWORD}\n"))
        .ok();
    let expired = eventually("the certificate to expire", Duration::from_secs(20), || {
        let out = c.jsh(&home, &["status"], "");
        (out.code == Some(1)).then_some(out)
    });
    assert!(expired.stdout.contains("[EXPIRED]"), "{}", expired.stdout);
    let relogin = format!(
        "run 'jsh login --proxy={} --user=dave' to log in again",
        c.proxy
    );
    assert!(expired.stderr.contains("has expired"), "{}", expired.stderr);
    assert!(expired.stderr.contains(&relogin), "{}", expired.stderr);
    c.login(&home, "dave", &["--ttl=0s"], &format!("{PASSWORD}\n"))
        .fails_with("must be positive");
}

#[test]
fn a_resumed_tls_session_does_not_outlive_its_certificate() {
    use jaunt_transport::{ApiClient, Trust};
    use jaunt_types::api::{PATH_WHOAMI, WhoAmIResponse};
    let c = Cluster::start(Options::default());
    let home = c.signed_up("fay", "fay");
    c.login(&home, "fay", &["--ttl=3s"], &format!("{PASSWORD}\n"))
        .ok();
    let jhome = jaunt_client::home::Home::new(home.join(".jsh"));
    let profile = jaunt_client::login::active_profile(&jhome, None).expect("profile");
    let cert = jaunt_client::login::client_cert(&jhome, &profile).expect("cert");
    let trust = Trust {
        ca_pin: Some(c.ca_pin.clone()),
        ..Default::default()
    };
    // One client, as a long-lived process (a node) keeps: its later
    // connections resume the first one's TLS session.
    let api = ApiClient::new(&c.proxy, &trust, Some(&cert)).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // A connection held open across the certificate's end, as the
        // client's pool keeps one between calls.
        let mut held = connect_with(&api, rustls::HandshakeKind::Full).await;
        let first = http_get(&mut held, PATH_WHOAMI, true).await;
        assert!(
            first.starts_with("HTTP/1.1 200") && first.contains("fay"),
            "{first}"
        );
        // The second connection resumes the TLS session.
        drop(connect_with(&api, rustls::HandshakeKind::Resumed).await);
        eventually("the certificate to expire", Duration::from_secs(20), || {
            let now = jaunt_sys::clock::now();
            (now > profile.valid_until + 1).then_some(())
        });
        // The held connection is refused per request...
        let later = http_get(&mut held, PATH_WHOAMI, true).await;
        assert!(
            later.starts_with("HTTP/1.1 401") && later.contains("has expired"),
            "{later}"
        );
        // ...and a new connection resuming the TLS session carries no
        // certificate for auth to accept.
        let mut tls = connect_with(&api, rustls::HandshakeKind::Resumed).await;
        let answer = http_get(&mut tls, PATH_WHOAMI, false).await;
        assert!(
            answer.starts_with("HTTP/1.1 401") && answer.contains("needs the client certificate"),
            "{answer}"
        );
    });
    // And through the client itself: refused, whichever connection it used.
    let err = rt
        .block_on(api.get::<WhoAmIResponse>(PATH_WHOAMI))
        .expect_err("an expired certificate");
    assert!(
        matches!(err, jaunt_transport::TransportError::Api { .. }),
        "{err}"
    );
}

/// A new API connection to the proxy, checked to have made `kind` of TLS
/// handshake.
async fn connect_with(
    api: &jaunt_transport::ApiClient,
    kind: rustls::HandshakeKind,
) -> impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {
    let tls = api
        .connect(jaunt_types::api::ALPN_HTTP)
        .await
        .expect("connect");
    assert_eq!(tls.get_ref().1.handshake_kind(), Some(kind));
    tls
}

/// One HTTP/1.1 GET on `tls`; the answer's head and body as text. With
/// `keep`, the connection stays open for another request.
async fn http_get<S>(tls: &mut S, path: &str, keep: bool) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let close = if keep { "" } else { "Connection: close\r\n" };
    let request = format!("GET {path} HTTP/1.1\r\nHost: jaunt\r\n{close}\r\n");
    tls.write_all(request.as_bytes()).await.expect("request");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tls.read(&mut buf).await.expect("answer");
        if n == 0 {
            return String::from_utf8_lossy(&got).to_string();
        }
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn signup_refuses_short_passwords_and_bad_tokens() {
    let c = Cluster::start(Options::default());
    let token = c.add_user("erin", "erin");
    let home = c.user_home("erin");
    let signup = |token: &str, password: &str| c.signup(&home, token, password);
    signup(&token, "short").fails_with("at least 12 characters");
    signup("not-a-token", PASSWORD).fails_with("token is invalid or has expired");
    signup(&token, PASSWORD).ok();
}

#[test]
fn puttygen_reads_the_ppk_as_the_same_key() {
    let c = Cluster::start(Options::default());
    let home = c.signed_up("frank", "frank");
    c.login(&home, "frank", &[], &format!("{PASSWORD}\n")).ok();
    let keys = home.join(".jsh/keys/127.0.0.1");
    let out = std::process::Command::new("puttygen")
        .arg(keys.join("frank.ppk"))
        .args(["-O", "public-openssh"])
        .output()
        .expect("puttygen is installed by scripts/test.sh (Debian package putty-tools)");
    assert!(
        out.status.success(),
        "puttygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_ppk = String::from_utf8_lossy(&out.stdout);
    let public = std::fs::read_to_string(keys.join("frank.pub")).expect("pub");
    let blob = |s: &str| s.split_whitespace().nth(1).map(str::to_string);
    assert_eq!(blob(&from_ppk), blob(&public));
    assert!(blob(&public).is_some());
}

#[test]
fn a_pin_or_the_saved_cluster_ca_is_trusted_above_system_roots() {
    // The proxy shows a certificate from a CA this system trusts (a public
    // CA, here one of the test's, given to jsh as SSL_CERT_FILE).
    let public = jaunt_ca::TlsCa::generate("public", jaunt_sys::clock::now() as u64).expect("ca");
    let (cert, key) = public
        .issue_server_cert(&["127.0.0.1".into()], jaunt_sys::clock::now() as u64, 3600)
        .expect("cert");
    let c = Cluster::start(Options {
        public_cert: Some((cert, key.expose().clone())),
        ..Default::default()
    });
    let roots = c.dir.path().join("system-roots.pem");
    std::fs::write(&roots, public.cert_pem()).expect("roots");
    let home = c.signed_up("gus", "gus");
    let jsh = |args: &[&str]| {
        let mut cmd = jsh_command(&home, args);
        cmd.env("SSL_CERT_FILE", &roots);
        run(cmd, &format!("{PASSWORD}\n"))
    };
    let proxy = format!("--proxy={}", c.proxy);
    // A pin that is not the cluster's: refused, although the system's
    // roots accept the certificate the proxy shows by default (before,
    // those were asked first and the login went through).
    let public_pin = {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(public.cert_pem().as_bytes())
            .expect("der");
        jaunt_ca::ca_pin(&der).expect("pin")
    };
    let wrong = format!("--ca-pin={public_pin}");
    jsh(&["login", &proxy, "--user=gus", &wrong, "--password-stdin"])
        .fails_with("does not chain to a CA matching --ca-pin");
    // On a machine that never saw the cluster (no pin, nothing saved) the
    // system's roots decide, and the login saves the cluster's CA...
    let fresh = c.user_home("gus-laptop");
    let on_fresh = |args: &[&str]| {
        let mut cmd = jsh_command(&fresh, args);
        cmd.env("SSL_CERT_FILE", &roots);
        run(cmd, &format!("{PASSWORD}\n"))
    };
    on_fresh(&["login", &proxy, "--user=gus", "--password-stdin"]).ok();
    // ...which from then on is the only trust: the proxy shows its
    // cluster-issued certificate to a client that asks for the cluster.
    let status = on_fresh(&["status"]).ok();
    assert!(status.stdout.contains("gus"), "{}", status.stdout);
    on_fresh(&["ls"]).ok();
    // The home that signed up with the cluster's pin logs in by it.
    jsh(&["login", &proxy, "--user=gus", "--password-stdin"]).ok();
    // A node joins with the cluster's pin through the same proxy.
    let node = c.add_node("behind-public-cert", "env=p", true);
    assert!(!node.uuid.is_empty());
}
