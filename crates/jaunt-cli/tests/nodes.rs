//! Nodes and the proxy path with the real clients: `jsh ls`, stock OpenSSH
//! through `jsh config` to a direct node and a reverse-tunnel node, `jaunt
//! status` inside sessions, and every refusal. Runs as root (it creates OS
//! users for logins).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

#[test]
fn nodes_are_listed_and_reached_with_openssh_directly_and_through_tunnels() {
    let s = setup("a");
    let ls = s.c.jsh(&s.home, &["ls"], "").ok();
    let lines: Vec<&str> = ls.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["Node", "Name", "Address", "Labels"],
        "{}",
        ls.stdout
    );
    assert!(lines[1].starts_with("--------- "), "{}", ls.stdout);
    let node1 = lines
        .iter()
        .find(|l| l.starts_with("node1 "))
        .expect("node1 row");
    assert!(
        node1.contains("127.0.0.1:") && node1.ends_with("env=dev,team=db"),
        "{node1}"
    );
    let node2 = lines
        .iter()
        .find(|l| l.starts_with("node2 "))
        .expect("node2 row");
    assert!(
        node2.contains("⟵ Tunnel") && node2.ends_with("env=prod"),
        "{node2}"
    );
    let json = s.c.jsh(&s.home, &["ls", "--format=json"], "").ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v.as_array().map(|a| a.len()), Some(2));
    assert_eq!(
        v[1]["addr"],
        serde_json::Value::Null,
        "tunnel nodes have no address"
    );
    let filtered =
        s.c.jsh(&s.home, &["ls", "--format=names", "env=prod"], "")
            .ok();
    assert_eq!(filtered.stdout, "node2\n");

    for (node, uuid) in [("node1", &s.nodes[0].uuid), ("node2", &s.nodes[1].uuid)] {
        let target = format!("{}@{node}.example", s.os.name);
        let out = ssh(
            &s.ssh_config,
            &[&target, "echo hi from $(whoami); exit 7"],
            "",
        );
        assert_eq!(out.code, Some(7), "{node}: {out:?}");
        assert_eq!(out.stdout, format!("hi from {}\n", s.os.name));
        // stdin reaches the command and its end lets the command finish.
        let out = ssh(&s.ssh_config, &[&target, "wc -c"], &"x".repeat(100_000)).ok();
        assert_eq!(out.stdout.trim(), "100000", "{node}");
        let jaunt = bin("jaunt").display().to_string();
        let status = ssh(&s.ssh_config, &[&target, &jaunt, "status"], "").ok();
        let want = [
            format!(
                "User ID     : alice, logged in as {} from 127.0.0.1 ",
                s.os.name
            ),
            "Cluster Name: example".to_string(),
            format!("Host UUID   : {uuid}"),
            "Session ID  : ".to_string(),
            format!(
                "Session URL : https://{}/web/cluster/example/console/session/",
                s.c.proxy
            ),
        ];
        for w in want {
            assert!(
                status.stdout.lines().any(|l| l.starts_with(&w)),
                "{node}: missing {w:?} in\n{}",
                status.stdout
            );
        }
        // A terminal when asked for one.
        let tty = ssh(
            &s.ssh_config,
            &[
                "-tt",
                &target,
                "tty; echo TERM=$TERM; echo SSH_TTY=$SSH_TTY",
            ],
            "",
        )
        .ok();
        assert!(tty.stdout.contains("/dev/pts/"), "{node}: {}", tty.stdout);
        assert!(
            tty.stdout.contains("SSH_TTY=/dev/pts/"),
            "{node}: {}",
            tty.stdout
        );
    }
    let mut outside = Command::new(bin("jaunt"));
    outside.arg("status").env_remove("JAUNT_SESSION_ID");
    run(outside, "").fails_with("You are not inside of a Jaunt SSH session");
}

/// An ssh config like `jsh config`'s, with another key and certificate.
fn config_with(s: &Setup, key: &Path, cert: Option<&Path>) -> PathBuf {
    let text = std::fs::read_to_string(&s.ssh_config).expect("config");
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("IdentityFile ") {
            out.push_str(&format!("    IdentityFile \"{}\"\n", key.display()));
        } else if t.starts_with("CertificateFile ") {
            if let Some(cert) = cert {
                out.push_str(&format!("    CertificateFile \"{}\"\n", cert.display()));
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let name = key
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = s.home.join(format!("{name}.ssh_config"));
    std::fs::write(&path, out).expect("write");
    path
}

/// Signs `key.pub` with `ca`; returns the certificate path.
fn sign(ca: &Path, key: &Path, args: &[&str]) -> PathBuf {
    let out = Command::new("ssh-keygen")
        .arg("-s")
        .arg(ca)
        .args(args)
        .arg(key.with_extension("pub"))
        .output()
        .expect("ssh-keygen -s");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(format!("{}-cert.pub", key.display()))
}

#[test]
fn every_refusal_with_real_openssh() {
    let s = setup("r");
    let dir = tempfile::tempdir().expect("tmp");
    let target = format!("{}@node1.example", s.os.name);

    // Login not allowed by the roles.
    let out = ssh(&s.ssh_config, &["root@node1.example", "true"], "");
    assert_eq!(out.code, Some(255), "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{}", out.stderr);

    // Unknown node.
    let out = ssh(
        &s.ssh_config,
        &[&format!("{}@ghost.example", s.os.name), "true"],
        "",
    );
    assert_eq!(out.code, Some(255));
    assert!(
        out.stderr
            .contains("direct dialing to nodes not found in inventory is not supported"),
        "{}",
        out.stderr
    );

    // Certificates made with ssh-keygen: the cluster's real user CA for the
    // control case and the near misses, another CA for the foreign one.
    let ca = dir.path().join("user_ca");
    let ca_text =
        s.c.auth()
            .authorities()
            .user
            .signer()
            .to_openssh()
            .expect("ca");
    std::fs::write(&ca, ca_text.expose()).expect("ca file");
    std::fs::set_permissions(&ca, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let other_ca = keygen(dir.path(), "other_ca");
    let principal = s.os.name.as_str();

    let good = keygen(dir.path(), "good");
    let good_cert = sign(
        &ca,
        &good,
        &["-I", "alice", "-n", principal, "-V", "-5m:+1h"],
    );
    let out = ssh(
        &config_with(&s, &good, Some(&good_cert)),
        &[&target, "echo ok"],
        "",
    );
    assert_eq!(out.stdout, "ok\n", "the control certificate works: {out:?}");

    type Case<'a> = (&'a str, &'a str, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "foreign",
            "other",
            vec!["-I", "alice", "-n", principal, "-V", "-5m:+1h"],
        ),
        (
            "host",
            "ours",
            vec!["-h", "-I", "alice", "-n", principal, "-V", "-5m:+1h"],
        ),
        (
            "expired",
            "ours",
            vec!["-I", "alice", "-n", principal, "-V", "20200101:20200102"],
        ),
        (
            "principal",
            "ours",
            vec!["-I", "alice", "-n", "someone-else", "-V", "-5m:+1h"],
        ),
        (
            "unknown-user",
            "ours",
            vec!["-I", "mallory", "-n", principal, "-V", "-5m:+1h"],
        ),
        (
            "source",
            "ours",
            vec![
                "-I",
                "alice",
                "-n",
                principal,
                "-V",
                "-5m:+1h",
                "-O",
                "source-address=10.9.9.9/32",
            ],
        ),
        (
            "force-command",
            "ours",
            vec![
                "-I",
                "alice",
                "-n",
                principal,
                "-V",
                "-5m:+1h",
                "-O",
                "force-command=true",
            ],
        ),
    ];
    for (name, signer, args) in cases {
        let key = keygen(dir.path(), name);
        let signer = if signer == "ours" { &ca } else { &other_ca };
        let cert = sign(signer, &key, &args);
        let out = ssh(
            &config_with(&s, &key, Some(&cert)),
            &[&target, "echo ok"],
            "",
        );
        assert_eq!(out.code, Some(255), "{name}: {out:?}");
        assert!(
            out.stderr.contains("Permission denied (publickey)"),
            "{name}: {}",
            out.stderr
        );
        assert!(!out.stdout.contains("ok"), "{name}");
    }
    // A plain key, no certificate: never accepted.
    let plain = keygen(dir.path(), "plain");
    let out = ssh(&config_with(&s, &plain, None), &[&target, "echo ok"], "");
    assert_eq!(out.code, Some(255), "plain key: {out:?}");

    // A login the roles allow but the node's OS lacks: a clear message.
    s.c.jctl(&[
        "users",
        "update",
        "alice",
        &format!("--set-logins={},jtnosuchuser", s.os.name),
    ])
    .ok();
    s.c.login(&s.home, "alice", &[], &format!("{PASSWORD}\n"))
        .ok();
    let out = ssh(&s.ssh_config, &["jtnosuchuser@node1.example", "true"], "");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("Failed to launch: user \"jtnosuchuser\" does not exist on this node"),
        "{}",
        out.stderr
    );

    // Node labels not allowed: a role limited to env=dev cannot see node2.
    switch_role(
        &s,
        "dev-only",
        "kind: role\nmetadata: {name: dev-only}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {env: dev}\n",
    );
    let names = s.c.jsh(&s.home, &["ls", "--format=names"], "").ok();
    assert_eq!(names.stdout, "node1\n");
    let out = ssh(
        &s.ssh_config,
        &[&format!("{}@node2.example", s.os.name), "true"],
        "",
    );
    assert!(
        out.stderr
            .contains("direct dialing to nodes not found in inventory is not supported"),
        "{}",
        out.stderr
    );
    // A certificate issued before the change is checked against today's roles.
    let out = ssh(
        &config_with(&s, &good, Some(&good_cert)),
        &[&format!("{}@node1.example", s.os.name), "echo ok"],
        "",
    )
    .ok();
    assert_eq!(out.stdout, "ok\n");

    // An offline node: it stays in the inventory but says so when dialled.
    let mut nodes = s.nodes;
    nodes.remove(0).stop();
    let out = eventually("node1 to go offline", Duration::from_secs(20), || {
        let out = ssh(&s.ssh_config, &[&target, "true"], "");
        out.stderr.contains("is offline").then_some(out)
    });
    assert!(
        out.stderr.contains("node node1 is offline"),
        "{}",
        out.stderr
    );
    let names = s.c.jsh(&s.home, &["ls", "--format=names"], "").ok();
    assert_eq!(names.stdout, "", "offline nodes leave jsh ls");
}

#[test]
fn the_tunnel_node_comes_back_after_a_proxy_restart() {
    let mut s = setup("p");
    s.c.restart();
    let out = ssh_until_ok(
        &s.ssh_config,
        &format!("{}@node2.example", s.os.name),
        "echo again",
        "node2 back through a new tunnel",
        Duration::from_secs(30),
    );
    assert_eq!(out.stdout, "again\n");
    // The direct node was never away.
    let out = ssh(
        &s.ssh_config,
        &[&format!("{}@node1.example", s.os.name), "echo direct"],
        "",
    )
    .ok();
    assert_eq!(out.stdout, "direct\n");
}

#[test]
fn a_node_restarts_without_its_token() {
    let s = setup("n");
    let uuid = s.nodes[0].uuid.clone();
    let mut nodes = s.nodes;
    nodes.remove(0).stop();
    let again = s.c.start_node("node1", "env=dev,team=db", true, None);
    assert_eq!(again.uuid, uuid, "the stored identity is reused");
    let config = s.c.jsh(&s.home, &["config"], "").ok();
    std::fs::write(&s.ssh_config, config.stdout).expect("config");
    let out = ssh_until_ok(
        &s.ssh_config,
        &format!("{}@node1.example", s.os.name),
        "echo back",
        "node1 back with its new address",
        Duration::from_secs(20),
    );
    assert_eq!(out.stdout, "back\n");
}

#[test]
fn sftp_and_scp_round_trip_10_mib_as_the_login_user() {
    use std::os::unix::fs::MetadataExt;
    let s = setup("f");
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("src.bin");
    let mut bytes = vec![0u8; 10 * 1024 * 1024];
    // Not all one value, so a shifted or truncated copy cannot match.
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    std::fs::write(&src, &bytes).expect("write");
    let want = sha256_of(&src);
    let os_home = PathBuf::from(format!("/home/{}", s.os.name));
    let os_uid = std::fs::metadata(&os_home).expect("home").uid();
    for node in ["node1", "node2"] {
        let host = format!("{}@{node}.example", s.os.name);
        // scp (OpenSSH 9 speaks SFTP underneath).
        let back = dir.path().join(format!("{node}-scp.bin"));
        let mut up = Command::new("scp");
        up.arg("-F")
            .arg(&s.ssh_config)
            .args(["-o", "BatchMode=yes"])
            .arg(&src)
            .arg(format!("{host}:up-{node}.bin"));
        up.env("JSH_HOME", s.home.join(".jsh"));
        run(up, "").ok();
        let remote = os_home.join(format!("up-{node}.bin"));
        assert_eq!(sha256_of(&remote), want, "{node}: upload");
        assert_eq!(
            std::fs::metadata(&remote).expect("meta").uid(),
            os_uid,
            "{node}: written as the login user"
        );
        let mut down = Command::new("scp");
        down.arg("-F")
            .arg(&s.ssh_config)
            .args(["-o", "BatchMode=yes"])
            .arg(format!("{host}:up-{node}.bin"))
            .arg(&back);
        down.env("JSH_HOME", s.home.join(".jsh"));
        run(down, "").ok();
        assert_eq!(sha256_of(&back), want, "{node}: download");
        // sftp with a batch of operations.
        let got = dir.path().join(format!("{node}-sftp.bin"));
        let batch = format!(
            "put {src} s.bin\nget s.bin {got}\nmkdir d\nrename s.bin d/s.bin\nls d\nrm d/s.bin\nrmdir d\n",
            src = src.display(),
            got = got.display()
        );
        let mut sftp = Command::new("sftp");
        sftp.arg("-F")
            .arg(&s.ssh_config)
            .args(["-o", "BatchMode=yes", "-b", "-"])
            .arg(&host);
        sftp.env("JSH_HOME", s.home.join(".jsh"));
        let out = run(sftp, &batch).ok();
        assert!(out.stdout.contains("d/s.bin"), "{node}: {}", out.stdout);
        assert_eq!(sha256_of(&got), want, "{node}: sftp get");
        // The OS says no where the login user may not write.
        let mut denied = Command::new("sftp");
        denied
            .arg("-F")
            .arg(&s.ssh_config)
            .args(["-o", "BatchMode=yes", "-b", "-"])
            .arg(&host);
        denied.env("JSH_HOME", s.home.join(".jsh"));
        let out = run(denied, &format!("put {} /root/nope.bin\n", src.display()));
        assert_ne!(out.code, Some(0), "{node}: {out:?}");
        assert!(!Path::new("/root/nope.bin").exists());
    }
}

#[test]
fn jsh_ssh_runs_commands_with_exit_codes_stdin_terminals_and_forwards() {
    let s = setup("s");
    let login = s.os.name.clone();
    for node in ["node1", "node2"] {
        let target = format!("{login}@{node}");
        let out =
            s.c.jsh(&s.home, &["ssh", &target, "echo on $(whoami); exit 5"], "");
        assert_eq!(out.code, Some(5), "{node}: {out:?}");
        assert_eq!(out.stdout, format!("on {login}\n"));
        let out =
            s.c.jsh(&s.home, &["ssh", &target, "cat"], "piped input\n")
                .ok();
        assert_eq!(out.stdout, "piped input\n");
        let out = s.c.jsh(&s.home, &["ssh", "-t", &target, "tty"], "").ok();
        assert!(out.stdout.contains("/dev/pts/"), "{node}: {}", out.stdout);
    }
    s.c.jsh(&s.home, &["ssh", "root@node1", "true"], "")
        .fails_with("access denied to root on node1");
    s.c.jsh(&s.home, &["ssh", &format!("{login}@ghost"), "true"], "")
        .fails_with("direct dialing to nodes not found in inventory is not supported");

    // -L: a local port reaches a TCP service as seen from the node.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").expect("echo");
    let echo_port = echo.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in echo.incoming().flatten() {
            let mut c = conn;
            let mut r = c.try_clone().expect("clone");
            let _ = std::io::copy(&mut r, &mut c);
        }
    });
    let local_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("probe")
        .local_addr()
        .expect("addr")
        .port();
    let forward = format!("{local_port}:127.0.0.1:{echo_port}");
    let mut child = jsh_command(
        &s.home,
        &["ssh", "-L", &forward, &format!("{login}@node1"), "sleep 30"],
    )
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("jsh ssh -L");
    let reply = eventually("the forwarded port", Duration::from_secs(20), || {
        use std::io::{Read, Write};
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", local_port)).ok()?;
        sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        sock.write_all(b"ping through the tunnel").ok()?;
        let mut buf = [0u8; 23];
        sock.read_exact(&mut buf).ok()?;
        Some(buf.to_vec())
    });
    assert_eq!(reply, b"ping through the tunnel");
    let _ = child.kill();
    let _ = child.wait();

    // A role that turns port forwarding off: the node refuses the channel.
    switch_role(
        &s,
        "no-forwarding",
        "kind: role\nmetadata: {name: no-forwarding}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {'*': '*'}\n  options: {port_forwarding: false}\n",
    );
    let out = ssh(
        &s.ssh_config,
        &[
            "-o",
            "ExitOnForwardFailure=yes",
            "-W",
            &format!("127.0.0.1:{echo_port}"),
            &format!("{login}@node1.example"),
        ],
        "",
    );
    assert_ne!(out.code, Some(0), "forwarding refused: {out:?}");
    assert!(
        out.stderr.contains("administratively prohibited"),
        "{}",
        out.stderr
    );
    // Both are in the audit log: the forward (T3003I) and the refusal.
    let target = format!("127.0.0.1:{echo_port}");
    let ports = eventually("port events", Duration::from_secs(20), || {
        let out = s.c.jctl(&["audit", "ls", "--type=port"]).ok().stdout;
        (out.contains("T3003I") && out.contains("T3003E")).then_some(out)
    });
    assert!(
        ports
            .lines()
            .all(|l| l.contains(&format!("destination={target}")) && l.contains("user=alice")),
        "{ports}"
    );
}

#[test]
fn agent_forwarding_when_the_roles_allow_it() {
    let s = setup("g");
    let agent = Agent::start();
    let sock = agent.sock.clone();
    let key = agent.public.with_extension("");
    let fingerprint = {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .expect("fp");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    let with_agent = |s: &Setup| {
        let home = s.ssh_config.parent().expect("home").to_path_buf();
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(&s.ssh_config)
            .args([
                "-A",
                "-o",
                "BatchMode=yes",
                &format!("{}@node1.example", s.os.name),
                "ssh-add -l; ls -ld \"$(dirname \"$SSH_AUTH_SOCK\")\"",
            ])
            .env("SSH_AUTH_SOCK", &sock)
            .env("JSH_HOME", home.join(".jsh"))
            .env("HOME", &home);
        run(cmd, "")
    };
    let out = with_agent(&s).ok();
    assert!(
        out.stdout.contains(&fingerprint),
        "the node sees the forwarded key: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("drwx------ 2 {} ", s.os.name)),
        "socket dir is the user's alone: {}",
        out.stdout
    );

    // A role without forward_agent: the request is refused.
    switch_role(
        &s,
        "no-agent",
        "kind: role\nmetadata: {name: no-agent}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {'*': '*'}\n  options: {forward_agent: false}\n",
    );
    let out = with_agent(&s);
    assert!(
        !out.stdout.contains(&fingerprint),
        "no agent without the role: {out:?}"
    );
    drop(agent);
}

#[test]
fn an_expired_certificate_is_refused_with_the_command_to_log_in_again() {
    let s = setup("x");
    s.c.login(&s.home, "alice", &["--ttl=2s"], &format!("{PASSWORD}\n"))
        .ok();
    let out = eventually("the certificate to expire", Duration::from_secs(20), || {
        let out = ssh(
            &s.ssh_config,
            &[&format!("{}@node1.example", s.os.name), "true"],
            "",
        );
        out.stderr.contains("expired").then_some(out)
    });
    assert_eq!(out.code, Some(255));
    let relogin = format!(
        "run 'jsh login --proxy={} --user=alice' to log in again",
        s.c.proxy
    );
    assert!(out.stderr.contains(&relogin), "{}", out.stderr);
    s.c.jsh(
        &s.home,
        &["ssh", &format!("{}@node1", s.os.name), "true"],
        "",
    )
    .fails_with(&relogin);
}
