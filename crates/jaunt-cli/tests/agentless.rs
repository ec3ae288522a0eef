//! Agentless nodes: a stock OpenSSH sshd of the test's own joined with
//! `jaunt join openssh`, then reached through the proxy by jsh, OpenSSH
//! and PuTTY, with the roles, audit and recordings of any node; and what
//! must be refused. Runs as root (OS users, sshd).

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// sshd refuses accounts whose password is locked (`!`, useradd's
/// default) when it does not use PAM; `*` is "no password", not locked.
fn unlock(os: &OsUser) {
    let out = Command::new("usermod")
        .args(["-p", "*", &os.name])
        .output()
        .expect("usermod");
    assert!(out.status.success(), "{out:?}");
}

fn node_token(c: &Cluster) -> String {
    let out = c.jctl(&["tokens", "add", "--type=node"]).ok();
    token_from(&out.stdout)
}

/// `jaunt join openssh` for `sshd`, with its data under `data`.
fn join(c: &Cluster, sshd: &Sshd, data: &Path, name: &str, extra: &[&str]) -> Out {
    let mut cmd = Command::new(bin("jaunt"));
    cmd.args(["join", "openssh"])
        .arg(format!("--proxy={}", c.proxy))
        .arg(format!("--token={}", node_token(c)))
        .arg(format!("--ca-pin={}", c.ca_pin))
        .arg(format!("--address={}", sshd.addr()))
        .arg(format!("--nodename={name}"))
        .arg("--labels=env=dev")
        .arg(format!("--openssh-config={}", sshd.config.display()))
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--sshd-check-command={SSHD} -t -f"))
        .arg(format!("--sshd-restart-command={}", sshd.restart_command()))
        .args(extra);
    run(cmd, "")
}

/// The common setup with an sshd joined as `osh1` (labels env=dev).
fn joined(tag: &str) -> (Setup, Sshd) {
    let s = setup(tag);
    unlock(&s.os);
    let sshd = Sshd::start("");
    let data = s.c.dir.path().join("osh");
    let out = join(&s.c, &sshd, &data, "osh1", &[]).ok();
    assert!(out.stdout.contains("as an OpenSSH node at"), "{out:?}");
    // sshd reads its new config after the join's restart.
    let target = format!("{}@osh1", s.os.name);
    eventually(
        "a session on the agentless node",
        Duration::from_secs(20),
        || {
            let out = s.c.jsh(&s.home, &["ssh", &target, "true"], "");
            (out.code == Some(0)).then_some(out)
        },
    );
    (s, sshd)
}

#[test]
fn an_openssh_node_is_reached_through_the_proxy_with_roles_audit_and_recordings() {
    let (s, sshd) = joined("g");
    let login = s.os.name.clone();
    let target = format!("{login}@osh1");

    // Listed as the guide shows it, with its kind as a field of its own.
    let ls = s.c.jsh(&s.home, &["ls"], "").ok().stdout;
    let row = ls
        .lines()
        .find(|l| l.starts_with("osh1"))
        .unwrap_or_else(|| panic!("{ls}"));
    assert!(row.contains(&sshd.addr()), "{row}");
    assert!(row.contains("env=dev,type=openssh"), "{row}");
    let json = s.c.jsh(&s.home, &["ls", "--format=json"], "").ok().stdout;
    assert!(
        json.contains("\"sub_kind\": \"openssh\"") || json.contains("\"sub_kind\":\"openssh\""),
        "{json}"
    );

    // jsh ssh, once sshd has read its new config; exit codes pass through.
    let out = eventually(
        "a session on the agentless node",
        Duration::from_secs(20),
        || {
            let out = s.c.jsh(
                &s.home,
                &["ssh", &target, "echo hello-$((6*7)); whoami"],
                "",
            );
            (out.code == Some(0)).then_some(out)
        },
    );
    assert_eq!(out.stdout, format!("hello-42\n{login}\n"));
    let out = s.c.jsh(&s.home, &["ssh", &target, "exit 3"], "");
    assert_eq!(out.code, Some(3), "{out:?}");

    // OpenSSH through `jsh config`; sshd's own environment shows it ran
    // the session (the proxy is the client sshd sees).
    let out = ssh(
        &s.ssh_config,
        &[&format!("{login}@osh1.example"), "echo $SSH_CONNECTION"],
        "",
    )
    .ok();
    assert!(out.stdout.starts_with("127.0.0.1 "), "{out:?}");

    // A PTY session is recorded at the proxy and plays back.
    let out =
        s.c.jsh(&s.home, &["ssh", "-t", &target, "echo REC-$((6*7))"], "")
            .ok();
    assert!(out.stdout.contains("REC-42"), "{out:?}");
    let recordings = eventually("the recording", Duration::from_secs(20), || {
        let out = s.c.jsh(&s.home, &["recordings", "ls", "--format=json"], "");
        out.stdout.contains("osh1").then_some(out.stdout)
    });
    let session = recordings
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["node"] == "osh1")
        .and_then(|r| r["session_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{recordings}"))
        .to_string();
    let played =
        s.c.jsh(&s.home, &["play", &session, "--speed=1000"], "")
            .ok()
            .stdout;
    assert!(played.contains("REC-42"), "{played}");

    // Its events come from the proxy with a node's names and codes.
    let events = audit(&s.c, &[&format!("--session={session}")]);
    let start = events
        .iter()
        .find(|e| e["event"] == "session.start")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(start["code"], "T2000I");
    assert_eq!(start["node"], "osh1");
    assert_eq!(start["user"], "alice");
    assert_eq!(start["fields"]["server_sub_kind"], "openssh");
    assert_eq!(start["fields"]["interactive"], true);
    assert!(
        events.iter().any(|e| e["event"] == "session.end"),
        "{events:#?}"
    );

    // A 10 MiB SFTP round trip with OpenSSH sftp, checksums equal, and
    // the file operations audited.
    let src = s.home.join("ten.bin");
    let data_bytes: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    std::fs::write(&src, &data_bytes).expect("write");
    let back = s.home.join("ten.back");
    let batch = s.home.join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} /tmp/{login}-ten.bin\nget /tmp/{login}-ten.bin {}\n",
            src.display(),
            back.display()
        ),
    )
    .expect("batch");
    let mut cmd = Command::new("sftp");
    cmd.arg("-F")
        .arg(&s.ssh_config)
        .args(["-o", "BatchMode=yes", "-b"])
        .arg(&batch)
        .arg(format!("{login}@osh1.example"))
        .env("HOME", &s.home)
        .env("JSH_HOME", s.home.join(".jsh"));
    run(cmd, "").ok();
    assert_eq!(sha256_of(&src), sha256_of(&back));
    let remote = format!("/tmp/{login}-ten.bin");
    let sftp = eventually("the SFTP events", Duration::from_secs(10), || {
        let events = audit(&s.c, &["--type=sftp"]);
        let mine: Vec<Value> = events
            .into_iter()
            .filter(|e| e["fields"]["path"] == remote.as_str())
            .collect();
        mine.iter()
            .any(|e| e["fields"]["action"] == "read")
            .then_some(mine)
    });
    let bytes = |action: &str| {
        sftp.iter()
            .find(|e| e["fields"]["action"] == action)
            .map(|e| e["fields"]["bytes"].clone())
    };
    assert_eq!(
        bytes("write"),
        Some(Value::from(10 * 1024 * 1024)),
        "{sftp:#?}"
    );
    assert_eq!(
        bytes("read"),
        Some(Value::from(10 * 1024 * 1024)),
        "{sftp:#?}"
    );
    let _ = std::fs::remove_file(&remote);

    // PuTTY: the saved session takes the port from the inventory.
    let name = format!("{login}@osh1 [proxy:127.0.0.1]");
    let out = puttyconfig(&s, &[&target]).ok();
    assert_eq!(out.stdout, format!("Added PuTTY session for {name}\n"));
    let out = run(
        putty_tool(&s, "plink", &["-batch", "-load", &name, "echo plink-ok"]),
        "",
    )
    .ok();
    assert_eq!(out.stdout.trim(), "plink-ok", "{out:?}");

    // -L forwarding through sshd, which connects to a port of ours.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let echo_port = echo.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = echo.accept() {
            let _ = std::io::Write::write_all(&mut conn, b"through-sshd\n");
        }
    });
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut fwd = forward(&s, &login, local, echo_port);
    let got = eventually("the forwarded port", Duration::from_secs(20), || {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", local)).ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut conn, &mut text).ok()?;
        (!text.is_empty()).then_some(text)
    });
    let _ = fwd.kill();
    let _ = fwd.wait();
    assert_eq!(got, "through-sshd\n");
    let ports = audit(&s.c, &["--type=port"]);
    assert!(
        ports
            .iter()
            .any(|e| e["node"] == "osh1" && e["success"] == true),
        "{ports:#?}"
    );

    // Refusals. A login the roles do not allow, in the guide's words.
    s.c.jsh(&s.home, &["ssh", "root@osh1", "true"], "")
        .fails_with("access denied to root connecting to osh1");
    // The user's own certificate straight to sshd: it trusts only the
    // OpenSSH CA, which signs for the proxy alone.
    let profile_key = std::fs::read_dir(s.home.join(".jsh/keys"))
        .expect("keys")
        .flatten()
        .next()
        .expect("profile")
        .path()
        .join("alice");
    let cert = std::fs::read_dir(profile_key.with_file_name("alice-ssh"))
        .expect("certs")
        .flatten()
        .next()
        .expect("cert")
        .path();
    let out = run(
        {
            let mut cmd = Command::new("ssh");
            cmd.args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
            ])
            .args([
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-i",
            ])
            .arg(&profile_key)
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .args(["-p", &sshd.port.to_string()])
            .arg(format!("{login}@127.0.0.1"))
            .arg("echo should-not-run");
            cmd
        },
        "",
    );
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(!out.stdout.contains("should-not-run"), "{out:?}");

    // Port forwarding the user's current roles no longer allow: refused
    // and audited, on a fresh connection.
    switch_role(
        &s,
        "noport",
        "kind: role\nmetadata: {name: noport}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {'*': '*'}\n  options: {port_forwarding: false}\n",
    );
    let mut fwd = forward(&s, &login, local, echo_port);
    let refused = eventually("the refused forward", Duration::from_secs(20), || {
        let _ = std::net::TcpStream::connect(("127.0.0.1", local))
            .map(|mut c| std::io::Read::read_to_string(&mut c, &mut String::new()));
        let ports = audit(&s.c, &["--type=port"]);
        ports
            .into_iter()
            .find(|e| e["node"] == "osh1" && e["success"] == false)
    });
    let _ = fwd.kill();
    let _ = fwd.wait();
    assert_eq!(
        refused["fields"]["reason"],
        "port forwarding is not allowed by the user's roles"
    );

    // Removed from the inventory: never dialled again.
    s.c.jctl(&["nodes", "rm", "osh1"]).ok();
    s.c.jsh(&s.home, &["ssh", &target, "true"], "")
        .fails_with("direct dialing to nodes not found in inventory is not supported");
}

/// `ssh -N -L local:127.0.0.1:port` through the proxy to osh1.
fn forward(s: &Setup, login: &str, local: u16, port: u16) -> std::process::Child {
    let mut fwd = Command::new("ssh");
    fwd.arg("-F")
        .arg(&s.ssh_config)
        .args(["-o", "BatchMode=yes", "-N", "-L"])
        .arg(format!("{local}:127.0.0.1:{port}"))
        .arg(format!("{login}@osh1.example"))
        .env("HOME", &s.home)
        .env("JSH_HOME", s.home.join(".jsh"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    fwd.spawn().expect("ssh -L")
}

/// An sshd whose host certificate the proxy must refuse: from another CA,
/// or from the cluster's host CA for other names.
#[test]
fn an_sshd_with_a_host_certificate_not_for_the_node_is_refused() {
    let (c, os, home) = Cluster::with_alice(Options::default(), "h");
    unlock(&os);
    // A CA of its own (ssh-keygen), and a host certificate from it.
    let foreign = Sshd::start("");
    let dir = foreign.dir.path();
    let run_ok = |args: &[&str]| {
        let out = Command::new("ssh-keygen")
            .args(args)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "{out:?}");
    };
    let ca = dir.join("other_ca");
    run_ok(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-f",
        &ca.display().to_string(),
    ]);
    let key = dir.join("ssh_host_ed25519_key");
    run_ok(&[
        "-q",
        "-s",
        &ca.display().to_string(),
        "-h",
        "-I",
        "x",
        "-n",
        "rogue1",
        &format!("{}.pub", key.display()),
    ]);
    let cert_line = format!("HostCertificate {}-cert.pub\n", key.display());
    std::fs::write(
        &foreign.config,
        format!(
            "{}{cert_line}",
            std::fs::read_to_string(&foreign.config).expect("cfg")
        ),
    )
    .expect("config");
    let _ = Command::new("kill")
        .args(["-HUP", &foreign.pid().to_string()])
        .status();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(
        c.auth()
            .add_openssh_node("rogue1", &foreign.addr(), Default::default()),
    )
    .expect("add");

    // The cluster's host CA, but for another host's names.
    let other = Sshd::start("");
    let key = other.dir.path().join("ssh_host_ed25519_key");
    let public = std::fs::read_to_string(format!("{}.pub", key.display())).expect("pub");
    let cert = rt
        .block_on(
            c.auth()
                .sign_openssh_host(&["elsewhere".to_string()], &public, 3600),
        )
        .expect("sign");
    std::fs::write(format!("{}-cert.pub", key.display()), cert).expect("cert");
    std::fs::write(
        &other.config,
        format!(
            "{}HostCertificate {}-cert.pub\n",
            std::fs::read_to_string(&other.config).expect("cfg"),
            key.display()
        ),
    )
    .expect("config");
    let _ = Command::new("kill")
        .args(["-HUP", &other.pid().to_string()])
        .status();
    rt.block_on(
        c.auth()
            .add_openssh_node("rogue2", &other.addr(), Default::default()),
    )
    .expect("add");

    for (node, why) in [
        ("rogue1", "not by this cluster's host CA"),
        ("rogue2", "is for elsewhere"),
    ] {
        let out = eventually(&format!("{node} refused"), Duration::from_secs(20), || {
            let out = c.jsh(
                &home,
                &["ssh", &format!("{}@{node}", os.name), "echo should-not-run"],
                "",
            );
            out.stderr.contains("host certificate of").then_some(out)
        });
        assert_ne!(out.code, Some(0), "{out:?}");
        assert!(!out.stdout.contains("should-not-run"), "{out:?}");
        assert!(
            out.stderr
                .contains(&format!("the host certificate of {node} was refused")),
            "{out:?}"
        );
        assert!(out.stderr.contains(why), "{out:?}");
    }
}

/// More clients (scp, psftp), agent forwarding, sshd's own refusal, and
/// labels the role does not allow.
#[test]
fn scp_psftp_agent_forwarding_and_more_refusals() {
    let (s, _sshd) = joined("k");
    let login = s.os.name.clone();

    // A running session is listed, with the agentless node, until it ends.
    let mut long = jsh_command(&s.home, &["ssh", &format!("{login}@osh1"), "sleep 60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("jsh ssh");
    let listed = eventually("the running session", Duration::from_secs(20), || {
        let out = s.c.jsh(&s.home, &["sessions", "ls", "--format=json"], "");
        out.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["node"] == "osh1")
    });
    assert_eq!(listed["kind"], "exec");
    assert_eq!(listed["login"], login.as_str());
    let _ = long.kill();
    let _ = long.wait();
    eventually(
        "the session to leave the list",
        Duration::from_secs(20),
        || {
            let out = s.c.jsh(&s.home, &["sessions", "ls"], "");
            (out.stdout == "No running sessions you may see.\n").then_some(())
        },
    );

    // OpenSSH scp both ways (SFTP protocol, as OpenSSH 9 does by default).
    let src = s.home.join("scp.bin");
    std::fs::write(
        &src,
        (0..3 * 1024 * 1024u32)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>(),
    )
    .expect("write");
    let back = s.home.join("scp.back");
    let remote = format!("{login}@osh1.example:/tmp/{login}-scp.bin");
    for (from, to) in [
        (src.display().to_string(), remote.clone()),
        (remote.clone(), back.display().to_string()),
    ] {
        let mut cmd = Command::new("scp");
        cmd.arg("-F")
            .arg(&s.ssh_config)
            .args(["-o", "BatchMode=yes", &from, &to])
            .env("HOME", &s.home)
            .env("JSH_HOME", s.home.join(".jsh"));
        run(cmd, "").ok();
    }
    assert_eq!(sha256_of(&src), sha256_of(&back));

    // psftp through the saved session, 10 MiB each way.
    let name = format!("{login}@osh1 [proxy:127.0.0.1]");
    puttyconfig(&s, &[&format!("{login}@osh1")]).ok();
    let big = s.home.join("psftp.bin");
    std::fs::write(
        &big,
        (0..10 * 1024 * 1024u32)
            .map(|i| (i % 241) as u8)
            .collect::<Vec<u8>>(),
    )
    .expect("write");
    let big_back = s.home.join("psftp.back");
    psftp_round_trip(
        &s,
        &name,
        &big,
        &format!("/tmp/{login}-psftp.bin"),
        &big_back,
    );
    assert_eq!(sha256_of(&big), sha256_of(&big_back));
    let _ = std::fs::remove_file(format!("/tmp/{login}-psftp.bin"));
    let _ = std::fs::remove_file(format!("/tmp/{login}-scp.bin"));

    // Agent forwarding: sshd's agent channel reaches the user's agent.
    let agent = Agent::start();
    let sock = agent.sock.clone();
    let public = std::fs::read_to_string(&agent.public).expect("pub");
    let with_agent = |s: &Setup| {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(&s.ssh_config)
            .args([
                "-A",
                "-o",
                "BatchMode=yes",
                &format!("{login}@osh1.example"),
                "ssh-add -L",
            ])
            .env("SSH_AUTH_SOCK", &sock)
            .env("JSH_HOME", s.home.join(".jsh"))
            .env("HOME", &s.home);
        run(cmd, "")
    };
    let out = with_agent(&s).ok();
    let key_text = public.split_whitespace().nth(1).expect("key");
    assert!(
        out.stdout.contains(key_text),
        "sshd sees the forwarded key: {out:?}"
    );
    switch_role(
        &s,
        "no-agent",
        "kind: role\nmetadata: {name: no-agent}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {'*': '*'}\n  options: {forward_agent: false}\n",
    );
    let out = with_agent(&s);
    assert!(
        !out.stdout.contains(key_text),
        "no agent without the role: {out:?}"
    );
    drop(agent);

    // A login the roles allow but the host does not have: sshd's refusal
    // reaches the user, not a generic failure.
    let ghost = format!("jtghost{:06x}", std::process::id() & 0xffffff);
    s.c.jctl(&[
        "users",
        "update",
        "alice",
        &format!("--set-logins={login},{ghost}"),
        "--set-roles=access",
    ])
    .ok();
    s.c.login(&s.home, "alice", &[], &format!("{PASSWORD}\n"))
        .ok();
    let out =
        s.c.jsh(&s.home, &["ssh", &format!("{ghost}@osh1"), "true"], "");
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("sshd on osh1 refused the login \"{ghost}\"")),
        "{out:?}"
    );

    // Labels the role does not allow: the node is not even visible.
    switch_role(
        &s,
        "prod-only",
        "kind: role\nmetadata: {name: prod-only}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {env: prod}\n",
    );
    assert!(!s.c.jsh(&s.home, &["ls"], "").ok().stdout.contains("osh1"));
    s.c.jsh(&s.home, &["ssh", &format!("{login}@osh1"), "true"], "")
        .fails_with("direct dialing to nodes not found in inventory is not supported");
}

/// The manual path, for configuration management: the node registered
/// with jctl, sshd set up by hand from what jctl exports and signs.
#[test]
fn an_openssh_node_set_up_by_hand_with_jctl() {
    let (c, os, home) = Cluster::with_alice(Options::default(), "m");
    unlock(&os);
    let sshd = Sshd::start("");
    let dir = sshd.dir.path();
    c.jctl(&[
        "nodes",
        "add",
        "--openssh",
        "--name=man1",
        &format!("--addr={}", sshd.addr()),
        "--labels=env=dev",
    ])
    .ok();
    let ca = c
        .jctl(&["auth", "export", "--type=openssh-user-ca"])
        .ok()
        .stdout;
    assert!(ca.starts_with("ssh-ed25519 "), "{ca}");
    // The user CA is not the OpenSSH CA: users' certificates stay refused.
    let user_ca = c.jctl(&["auth", "export", "--type=user"]).ok().stdout;
    assert!(
        !user_ca.contains(ca.split_whitespace().nth(1).expect("key")),
        "{user_ca}"
    );
    std::fs::write(dir.join("ca.pub"), &ca).expect("ca");
    let prefix = dir.join("jaunt_host");
    let out = c
        .jctl(&[
            "auth",
            "sign",
            "--host=man1,127.0.0.1",
            "--format=openssh",
            &format!("--out={}", prefix.display()),
        ])
        .ok();
    assert!(out.stdout.contains("HostCertificate"), "{out:?}");
    let cert = std::fs::read_to_string(format!("{}-cert.pub", prefix.display())).expect("cert");
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
    let config = std::fs::read_to_string(&sshd.config).expect("config");
    std::fs::write(
        &sshd.config,
        format!(
            "TrustedUserCAKeys {0}/ca.pub\nHostKey {1}\nHostCertificate {1}-cert.pub\n{config}",
            dir.display(),
            prefix.display()
        ),
    )
    .expect("config");
    let _ = Command::new("kill")
        .args(["-HUP", &sshd.pid().to_string()])
        .status();
    let nodes = c.jctl(&["nodes", "ls"]).ok().stdout;
    assert!(nodes.contains("env=dev,type=openssh"), "{nodes}");
    let out = eventually("a session on man1", Duration::from_secs(20), || {
        let out = c.jsh(
            &home,
            &["ssh", &format!("{}@man1", os.name), "echo by-hand"],
            "",
        );
        (out.code == Some(0)).then_some(out)
    });
    assert_eq!(out.stdout, "by-hand\n");
    // Only OpenSSH nodes are added by hand.
    c.jctl(&["nodes", "add", "--name=x", "--addr=127.0.0.1:22"])
        .fails_with("only OpenSSH nodes are added by hand");
}

#[test]
fn the_join_keeps_a_config_sshd_rejects_and_adds_its_include_once() {
    let c = Cluster::start(Options::default());
    let sshd = Sshd::start("");
    let data = c.dir.path().join("osh");
    join(&c, &sshd, &data, "osh2", &[]).ok();
    let first = std::fs::read_to_string(&sshd.config).expect("config");
    let include = format!(
        "Include {}",
        data.join("openssh/sshd_config.jaunt").display()
    );
    assert_eq!(first.matches(&include).count(), 1, "{first}");
    assert_eq!(
        first.lines().nth(1),
        Some(include.as_str()),
        "first, so it wins"
    );

    // A second run renews the certificate and changes nothing else.
    let out = join(&c, &sshd, &data, "osh2", &[]).ok();
    assert!(out.stdout.contains("includes"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&sshd.config).expect("config"),
        first
    );
    let nodes = c.jctl(&["nodes", "ls"]).ok().stdout;
    assert_eq!(
        nodes.matches("osh2").count(),
        1,
        "one node, not two:\n{nodes}"
    );

    // A config sshd rejects: the original is kept, sshd's words shown.
    let broken = format!("{first}NoSuchKeyword yes\n");
    std::fs::write(&sshd.config, &broken).expect("write");
    let data2 = c.dir.path().join("osh-b");
    let out = join(&c, &sshd, &data2, "osh3", &[]);
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("NoSuchKeyword"), "{out:?}");
    assert!(out.stderr.contains("left as it was"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&sshd.config).expect("config"),
        broken
    );
}

/// A lock ends a live session the proxy carries to sshd (there is no node
/// of ours to end it), tells the client why, and refuses the next one.
#[test]
fn a_lock_on_an_openssh_node_ends_its_live_session() {
    let (s, _sshd) = joined("lo");
    let mut session = Command::new("ssh")
        .arg("-F")
        .arg(&s.ssh_config)
        .args(["-o", "BatchMode=yes", "-tt"])
        .arg(format!("{}@osh1.example", s.os.name))
        .arg("echo session-ready; sleep 600")
        .env("HOME", &s.home)
        .env("JSH_HOME", s.home.join(".jsh"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh");
    read_until(&mut session, "session-ready");
    s.c.jctl(&["lock", "--node=osh1", "--message=maintenance"])
        .ok();
    eventually("the locked session to end", Duration::from_secs(20), || {
        session.try_wait().expect("wait")
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(session.stderr.as_mut().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(stderr.contains("maintenance"), "{stderr}");
    s.c.jsh(
        &s.home,
        &["ssh", &format!("{}@osh1", s.os.name), "true"],
        "",
    )
    .fails_with("lock targeting node:\"osh1 (");
    let ended = audit(&s.c, &["--type=client.disconnect"]);
    assert!(
        ended.iter().any(|e| e["node"] == "osh1"
            && e["fields"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("maintenance"))),
        "{ended:?}"
    );
}

/// The OpenSSH CA rotates: an sshd that has not learnt the new key refuses
/// the proxy from update_clients, running `jaunt join openssh` again makes
/// it trust both keys, and again after standby only the new one.
#[test]
fn the_openssh_ca_rotates_with_a_join_in_between() {
    let (s, sshd) = joined("or");
    let data = s.c.dir.path().join("osh");
    let ca_file = data.join("openssh/jaunt_openssh_user_ca.pub");
    let trusted = || {
        std::fs::read_to_string(&ca_file)
            .expect("CA file")
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let old = trusted();
    assert_eq!(old.len(), 1);
    let target = format!("{}@osh1", s.os.name);
    let session = || s.c.jsh(&s.home, &["ssh", &target, "echo ROTATED-OK"], "");
    let works = |what: &str| {
        eventually(what, Duration::from_secs(20), || {
            let out = session();
            (out.code == Some(0) && out.stdout.contains("ROTATED-OK")).then_some(out)
        });
    };
    let rotate = |phase: &str| {
        s.c.jctl(&[
            "auth",
            "rotate",
            "--type=openssh",
            "--manual",
            &format!("--phase={phase}"),
        ])
        .ok()
    };

    let out = rotate("init");
    assert!(out.stdout.contains("jaunt join openssh"), "{out:?}");
    let status = s.c.jctl(&["status"]).ok().stdout;
    assert!(
        status.contains("OpenSSH CA phase: init (manual"),
        "{status}"
    );
    works("the old key still signs in init");
    rotate("update_clients");
    // sshd trusts only the old key: the proxy's new certificate is refused,
    // and the user is told it was sshd.
    let out = session();
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("sshd on osh1 refused the login"),
        "{out:?}"
    );

    // Joining again hands sshd both keys, the current one first.
    join(&s.c, &sshd, &data, "osh1", &[]).ok();
    let both = trusted();
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[0], old[0]);
    assert_eq!(
        s.c.jctl(&["auth", "export", "--type=openssh-user-ca"])
            .ok()
            .stdout
            .trim(),
        both.join("\n")
    );
    works("both keys trusted");
    rotate("update_servers");
    rotate("standby");
    works("the new key alone signs");
    join(&s.c, &sshd, &data, "osh1", &[]).ok();
    assert_eq!(trusted(), vec![both[1].clone()], "the old key is gone");
    works("sshd trusts the new key only");
    let steps = audit(&s.c, &["--type=cert.rotate"]);
    assert!(
        steps
            .iter()
            .filter(|e| e["fields"]["ca"] == "openssh")
            .count()
            >= 4,
        "{steps:?}"
    );
}
