//! CA rotation end to end (`jctl auth rotate`): a direct node and a
//! tunnel node, OpenSSH (through `jsh config`), plink (through `jsh
//! puttyconfig`) and `jsh ssh` work before, during and after a rotation of
//! both SSH CAs; nodes pick up the new user CA and host certificates by
//! themselves; the old keys are refused once the rotation ends; and a
//! rolled-back rotation leaves the old key, refusing the new one's
//! certificates. Runs as root.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::*;

const DEADLINE: Duration = Duration::from_secs(30);

/// `SHA256:...` of the CA that signed a certificate file.
fn signer(cert: &Path) -> String {
    let out = run(
        {
            let mut c = std::process::Command::new("ssh-keygen");
            c.arg("-Lf").arg(cert);
            c
        },
        "",
    )
    .ok();
    out.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Signing CA: "))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no signing CA in {out:?}"))
        .to_string()
}

/// A user's SSH certificate in their jsh home.
fn user_cert(home: &Path, user: &str) -> std::path::PathBuf {
    home.join(format!(".jsh/keys/127.0.0.1/{user}-ssh/example-cert.pub"))
}

/// The keys `jctl status` says a CA trusts, the current one first (one
/// when no rotation runs).
fn trusted(c: &Cluster, ca: &str) -> Vec<String> {
    let status: Value =
        serde_json::from_str(&c.jctl(&["status", "--format=json"]).ok().stdout).expect("json");
    match status["rotations"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["ca"] == ca))
    {
        Some(r) => r["trusted"]
            .as_array()
            .expect("trusted")
            .iter()
            .map(|k| k.as_str().expect("fp").to_string())
            .collect(),
        None => vec![
            match ca {
                "tls" => &status["ca_pin"],
                _ => &status[format!("{ca}_ca_fingerprint")],
            }
            .as_str()
            .expect("fp")
            .to_string(),
        ],
    }
}

/// Every way in works: OpenSSH to both nodes, plink and jsh ssh to one.
fn all_work(s: &Setup, plink_session: &str, what: &str) {
    for node in ["node1", "node2"] {
        s.ssh_eventually(node, &format!("{what}: OpenSSH to {node}"), DEADLINE);
    }
    eventually(&format!("{what}: plink"), DEADLINE, || {
        let out = run(
            putty_tool(
                s,
                "plink",
                &["-batch", "-load", plink_session, "echo PLINK-OK"],
            ),
            "",
        );
        out.stdout.contains("PLINK-OK").then_some(())
    });
    let target = format!("{}@node2", s.os.name);
    eventually(&format!("{what}: jsh ssh"), DEADLINE, || {
        let out = s.c.jsh(&s.home, &["ssh", &target, "echo JSH-OK"], "");
        out.stdout.contains("JSH-OK").then_some(())
    });
}

/// OpenSSH to node1 with a known_hosts holding only `host_ca_line`.
fn ssh_trusting_only(s: &Setup, host_ca_line: &str) -> Out {
    let known = s.home.join("only_one_ca");
    std::fs::write(
        &known,
        format!("@cert-authority 127.0.0.1,example,*.example {host_ca_line}\n"),
    )
    .expect("known_hosts");
    ssh(
        &s.ssh_config,
        &[
            "-o",
            &format!("UserKnownHostsFile={}", known.display()),
            "-o",
            "StrictHostKeyChecking=yes",
            &format!("{}@node1.example", s.os.name),
            "true",
        ],
        "",
    )
}

fn login_again(s: &Setup) {
    s.c.login(&s.home, "alice", &[], &format!("{PASSWORD}\n"))
        .ok();
    puttyconfig(s, &[&format!("{}@node1", s.os.name)]).ok();
}

/// The setup (`tag` as in `setup`), alice's plink session to node1, and
/// bob, logged in once before any rotation: his jsh home.
fn start(tag: &str) -> (Setup, String, std::path::PathBuf) {
    let s = setup(tag);
    let login = s.os.name.clone();
    puttyconfig(&s, &[&format!("{login}@node1")]).ok();
    let bob = s.c.signed_up("bob", &login);
    s.c.login(&bob, "bob", &[], &format!("{PASSWORD}\n")).ok();
    (s, format!("{login}@node1 [proxy:127.0.0.1]"), bob)
}

#[test]
fn both_cas_rotate_with_live_nodes_and_clients_and_a_rotation_rolls_back() {
    // bob logs in once, before the rotation, and never again.
    let (s, session, bob) = start("ca");
    let login = s.os.name.clone();
    let host_cas = s.home.join(".putty/sshhostcas");
    all_work(&s, &session, "before");
    let [old_user] = <[String; 1]>::try_from(trusted(&s.c, "user")).expect("one user CA");
    let old_host_line = s.c.jctl(&["auth", "export", "--type=host"]).ok().stdout;
    let old_host_key = old_host_line
        .split_whitespace()
        .skip(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(signer(&user_cert(&s.home, "alice")), old_user);

    // init: a second key for each, trusted, signing nothing yet.
    for ca in ["user", "host"] {
        let out = s.c.rotate(ca, "init");
        assert!(
            out.contains(&format!("the {ca} CA is now in phase init")),
            "{out}"
        );
    }
    let status = s.c.jctl(&["status"]).ok().stdout;
    assert!(status.contains("User CA phase:   init (manual"), "{status}");
    assert!(status.contains("Host CA phase:   init (manual"), "{status}");
    let new_user = trusted(&s.c, "user")[1].clone();
    let exported = s.c.jctl(&["auth", "export", "--type=host"]).ok().stdout;
    assert_eq!(exported.lines().count(), 2, "{exported}");
    let new_host_key = exported
        .lines()
        .nth(1)
        .expect("new")
        .split_whitespace()
        .skip(2)
        .collect::<Vec<_>>()
        .join(" ");
    all_work(&s, &session, "init");
    // A login now hands the client both host CAs: known_hosts and PuTTY.
    login_again(&s);
    let known = std::fs::read_to_string(s.home.join(".jsh/known_hosts")).expect("known_hosts");
    assert_eq!(known.matches("*.example").count(), 2, "{known}");
    assert!(host_cas.join("JauntHostCA-example-1").exists());
    // bob trusts both host keys too (as if he had logged in now), so what
    // refuses him later can only be his certificate.
    std::fs::write(bob.join(".jsh/known_hosts"), &known).expect("bob's known_hosts");

    // update_clients: a new login's certificate comes from the new key;
    // bob's old one still works.
    for ca in ["user", "host"] {
        s.c.rotate(ca, "update_clients");
    }
    login_again(&s);
    assert_eq!(signer(&user_cert(&s.home, "alice")), new_user);
    all_work(&s, &session, "update_clients");
    // In, or refused for his certificate.
    let bob_in = |what: &str| {
        let out =
            s.c.jsh(&bob, &["ssh", &format!("{login}@node1"), "echo BOB-IN"], "");
        let refused = out.code != Some(0)
            && out
                .stderr
                .contains(&format!("ERROR: access denied to {login} on node1"));
        assert!(out.stdout.contains("BOB-IN") || refused, "{what}: {out:?}");
        out.stdout.contains("BOB-IN")
    };
    assert!(bob_in("update_clients"));

    // update_servers: the nodes present certificates from the new host
    // key by themselves (a client trusting only it gets in; one trusting
    // only the old key no longer does).
    for ca in ["user", "host"] {
        s.c.rotate(ca, "update_servers");
    }
    eventually(
        "node1's host certificate from the new key",
        DEADLINE,
        || (ssh_trusting_only(&s, &new_host_key).code == Some(0)).then_some(()),
    );
    assert_ne!(ssh_trusting_only(&s, &old_host_key).code, Some(0));
    all_work(&s, &session, "update_servers");

    // standby: one key each; bob's certificate from the old user key is
    // refused once the nodes have heard, and PuTTY's second entry goes.
    for ca in ["user", "host"] {
        s.c.rotate(ca, "standby");
    }
    assert_eq!(trusted(&s.c, "user"), std::slice::from_ref(&new_user));
    eventually("bob's old certificate refused", DEADLINE, || {
        (!bob_in("standby")).then_some(())
    });
    login_again(&s);
    let known = std::fs::read_to_string(s.home.join(".jsh/known_hosts")).expect("known_hosts");
    assert_eq!(known.matches("*.example").count(), 1, "{known}");
    assert!(!host_cas.join("JauntHostCA-example-1").exists());
    let entry = std::fs::read_to_string(host_cas.join("JauntHostCA-example")).expect("entry");
    let new_blob = new_host_key.split_whitespace().nth(1).expect("blob");
    assert!(entry.contains(new_blob), "{entry}");
    all_work(&s, &session, "after");
    // bob logs in again and is back.
    s.c.login(&bob, "bob", &[], &format!("{PASSWORD}\n")).ok();
    assert!(bob_in("bob again"));

    // A rotation rolled back: the certificate its new key signed works
    // while both are trusted, and is refused once it ends.
    s.c.rotate("user", "init");
    s.c.rotate("user", "update_clients");
    let rolled = trusted(&s.c, "user")[1].clone();
    s.c.login(&bob, "bob", &[], &format!("{PASSWORD}\n")).ok();
    assert_eq!(signer(&user_cert(&bob, "bob")), rolled);
    s.c.rotate("user", "rollback");
    let status = s.c.jctl(&["status"]).ok().stdout;
    assert!(status.contains("User CA phase:   rollback"), "{status}");
    login_again(&s);
    assert_eq!(signer(&user_cert(&s.home, "alice")), new_user);
    eventually(
        "bob's certificate from the rolled-back key",
        DEADLINE,
        || bob_in("rollback").then_some(()),
    );
    s.c.rotate("user", "standby");
    assert_eq!(trusted(&s.c, "user"), std::slice::from_ref(&new_user));
    eventually("the rolled-back key refused", DEADLINE, || {
        (!bob_in("rolled back")).then_some(())
    });
    all_work(&s, &session, "after the rollback");

    // What was done is audited, step by step.
    let steps = audit(&s.c, &["--type=cert.rotate"]);
    assert_eq!(steps.len(), 12, "{steps:#?}");
}

/// The issuer of a user's TLS client certificate in their jsh home.
fn tls_issuer(home: &Path, user: &str) -> String {
    let pem = std::fs::read_to_string(home.join(format!(".jsh/keys/127.0.0.1/{user}.crt")))
        .expect("TLS certificate");
    jaunt_ca::client_identity_pem(&pem)
        .expect("identity")
        .issuer
}

/// How many CA certificates a jsh home trusts for the cluster.
fn saved_cas(home: &Path) -> usize {
    std::fs::read_to_string(home.join(".jsh/keys/127.0.0.1/cas/example.pem"))
        .expect("saved CA")
        .matches("BEGIN CERTIFICATE")
        .count()
}

/// What a node of the test cluster saved: its TLS CAs and certificate.
fn node_tls(c: &Cluster, node: &str) -> (usize, String) {
    let path = c.dir.path().join(format!("node-{node}/node-identity.json"));
    let id: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
        .unwrap_or(Value::Null);
    let cas = id["tls_ca"]
        .as_str()
        .unwrap_or("")
        .matches("BEGIN CERTIFICATE")
        .count();
    let issuer = jaunt_ca::client_identity_pem(id["tls_cert"].as_str().unwrap_or(""))
        .map(|i| i.issuer)
        .unwrap_or_default();
    (cas, issuer)
}

/// Waits until both nodes have saved what `done` says.
fn nodes_eventually(c: &Cluster, what: &str, done: impl Fn((usize, String)) -> bool) {
    for node in ["node1", "node2"] {
        eventually(&format!("{node}: {what}"), DEADLINE, || {
            done(node_tls(c, node)).then_some(())
        });
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let out = run(
        {
            let mut c = std::process::Command::new("cp");
            c.arg("-a").arg(from).arg(to);
            c
        },
        "",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn the_tls_ca_rotates_with_live_nodes_and_clients() {
    let (s, session, bob) = start("cb");
    // A client that logs in before the rotation and never again.
    let stale = s.c.user_home("stale");
    copy_dir(&bob.join(".jsh"), &stale.join(".jsh"));
    let ls_works = |home: &Path| s.c.jsh(home, &["ls"], "").code == Some(0);
    let old_issuer = tls_issuer(&s.home, "alice");
    let old_pin = trusted(&s.c, "tls");
    all_work(&s, &session, "before");

    // init: a second CA, trusted by the proxy, handed out, signing nothing.
    let out = s.c.rotate("tls", "init");
    assert!(out.contains("the tls CA is now in phase init"), "{out}");
    let status = s.c.jctl(&["status"]).ok().stdout;
    assert!(status.contains("TLS CA phase:    init (manual"), "{status}");
    let exported = s.c.jctl(&["auth", "export", "--type=tls"]).ok().stdout;
    assert_eq!(
        exported.matches("BEGIN CERTIFICATE").count(),
        2,
        "{exported}"
    );
    login_again(&s);
    assert_eq!(saved_cas(&s.home), 2);
    assert_eq!(tls_issuer(&s.home, "alice"), old_issuer);
    nodes_eventually(&s.c, "trusts both TLS CAs", |(cas, _)| cas == 2);
    all_work(&s, &session, "tls init");
    // bob trusts both CAs now too (as if he had logged in) but keeps his
    // old certificate.
    std::fs::copy(
        s.home.join(".jsh/keys/127.0.0.1/cas/example.pem"),
        bob.join(".jsh/keys/127.0.0.1/cas/example.pem"),
    )
    .expect("bob's CAs");

    // update_clients: new client certificates come from the new CA (users
    // at login, nodes by themselves); old ones still work.
    s.c.rotate("tls", "update_clients");
    login_again(&s);
    let new_issuer = tls_issuer(&s.home, "alice");
    assert_ne!(new_issuer, old_issuer);
    assert!(ls_works(&bob), "bob's old certificate still works");
    nodes_eventually(&s.c, "a TLS certificate from the new CA", |(_, issuer)| {
        issuer == new_issuer
    });
    all_work(&s, &session, "tls update_clients");

    // update_servers: the proxy presents a certificate from the new CA;
    // a client that knows only the old CA cannot reach it any more, and
    // the pin is the new CA's.
    s.c.rotate("tls", "update_servers");
    eventually("the proxy to present the new CA", DEADLINE, || {
        (!ls_works(&stale)).then_some(())
    });
    let out = s.c.jsh(&stale, &["ls"], "");
    assert!(out.stderr.contains("TLS"), "{out:?}");
    all_work(&s, &session, "tls update_servers");
    assert!(ls_works(&bob));

    // standby: the old CA is gone: bob's old certificate is refused, a
    // new login brings him back; nodes renewed theirs, so every way in
    // still works.
    s.c.rotate("tls", "standby");
    eventually("bob's old TLS certificate refused", DEADLINE, || {
        (!ls_works(&bob)).then_some(())
    });
    s.c.login(&bob, "bob", &[], &format!("{PASSWORD}\n")).ok();
    assert!(ls_works(&bob));
    assert_eq!(tls_issuer(&bob, "bob"), new_issuer);
    login_again(&s);
    assert_eq!(saved_cas(&s.home), 1);
    nodes_eventually(&s.c, "trusts only the new TLS CA", |(cas, _)| cas == 1);
    all_work(&s, &session, "tls after");
    let status: Value =
        serde_json::from_str(&s.c.jctl(&["status", "--format=json"]).ok().stdout).expect("json");
    assert_ne!(
        status["ca_pin"],
        old_pin[0].as_str(),
        "the pin is the new CA's"
    );
}
