//! A graceful stop, with `jaunt start` processes as a service manager runs
//! them: on SIGTERM the proxy closes its port at once while a running
//! session finishes, then exits; a node stops taking connections and, at
//! its `shutdown_timeout`, ends the sessions left with a message the
//! client shows. Runs as root (it creates an OS user for the login).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn sigterm(child: &std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
}

/// Waits for `child` to exit; its time to do so.
fn exits_within(child: &mut std::process::Child, deadline: Duration) -> Duration {
    let t0 = Instant::now();
    eventually("the process to exit", deadline, || {
        child.try_wait().ok().flatten().map(|_| ())
    });
    t0.elapsed()
}

type Session = (std::process::Child, std::io::Lines<BufReader<ChildStdout>>);

/// Starts `cmd` (a session that prints "started" first) and waits for
/// that line: the child and the rest of its output as it comes; `None`
/// (the child reaped) when the session did not start.
fn started(cmd: &mut Command) -> Option<Session> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("session");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    match lines.next().and_then(Result::ok).as_deref() {
        Some("started") => Some((child, lines)),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut text);
    }
    text
}

#[test]
fn sigterm_drains_the_proxy_and_the_node_ends_what_is_left_with_a_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let proxy = format!("127.0.0.1:{port}");
    let auth_data = dir.path().join("auth");
    let proxy_args = [
        "--data-dir".to_string(),
        auth_data.display().to_string(),
        "--cluster-name=example".into(),
        format!("--listen={proxy}"),
        format!("--public-addr={proxy}"),
        "--second-factor=off".into(),
        "--shutdown-timeout=30s".into(),
    ];
    let args: Vec<&str> = proxy_args.iter().map(String::as_str).collect();
    let mut auth = Daemon::spawn(&args, &dir.path().join("auth.log"));
    let status = jctl(&auth_data, &["status", "--format=json"]).ok();
    let pin = serde_json::from_str::<serde_json::Value>(&status.stdout).expect("json")["ca_pin"]
        .as_str()
        .expect("pin")
        .to_string();
    let added = jctl(&auth_data, &["tokens", "add", "--type=node"]).ok();
    let token = added
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("The invite token: "))
        .expect("token")
        .to_string();
    let node_data = dir.path().join("node");
    let node_diag = format!("127.0.0.1:{}", free_port());
    let node_args = [
        "--roles=node".to_string(),
        format!("--data-dir={}", node_data.display()),
        format!("--token={token}"),
        format!("--proxy={proxy}"),
        format!("--ca-pin={pin}"),
        "--nodename=n1".into(),
        "--ssh-listen=127.0.0.1:0".into(),
        "--advertise-addr=127.0.0.1:0".into(),
        "--shutdown-timeout=2s".into(),
        "--log-format=json".into(),
        format!("--diag-addr={node_diag}"),
    ];
    let args: Vec<&str> = node_args.iter().map(String::as_str).collect();
    let mut node = Daemon::spawn(&args, &dir.path().join("node.log"));
    // A node alone serves the diagnostics port too: ready once joined and
    // heartbeating, and its own metrics.
    assert_eq!(
        http_get(&node_diag, "/readyz"),
        (200, "ready\n".to_string())
    );
    let (code, metrics) = http_get(&node_diag, "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("jaunt_node_sessions"), "{metrics}");

    let os = OsUser::create("sd");
    let invite = jctl(
        &auth_data,
        &[
            "users",
            "add",
            "alice",
            "--roles=access",
            &format!("--logins={}", os.name),
        ],
    )
    .ok();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    run(
        signup_command(&home, &proxy, &token_from(&invite.stdout), &pin),
        &format!("{PASSWORD}\n"),
    )
    .ok();
    run(
        jsh_command(
            &home,
            &[
                "login",
                &format!("--proxy={proxy}"),
                &format!("--ca-pin={pin}"),
                "--user=alice",
                "--password-stdin",
            ],
        ),
        &format!("{PASSWORD}\n"),
    )
    .ok();
    let target = format!("{}@n1", os.name);
    eventually("the node reachable", Duration::from_secs(20), || {
        let out = run(jsh_command(&home, &["ssh", &target, "true"]), "");
        (out.code == Some(0)).then_some(())
    });

    // The proxy: a session runs while SIGTERM comes.
    let (mut session, mut rest) = started(&mut jsh_command(
        &home,
        &["ssh", &target, "echo started; sleep 3; echo finished"],
    ))
    .expect("the session started");
    sigterm(&auth.child);
    // The port closes at once...
    eventually("the proxy port closed", Duration::from_secs(5), || {
        std::net::TcpStream::connect(&proxy).is_err().then_some(())
    });
    // ...the running session finishes as if nothing happened...
    let line = rest.next().and_then(Result::ok);
    let status = session.wait().expect("session ends");
    assert_eq!(status.code(), Some(0), "{}", stderr_of(&mut session));
    assert_eq!(line.as_deref(), Some("finished"));
    // ...and then the proxy exits, long before its 30 s.
    let took = exits_within(&mut auth.child, Duration::from_secs(10));
    assert!(took < Duration::from_secs(10), "{took:?}");
    let log = std::fs::read_to_string(&auth.stderr_log).unwrap_or_default();
    assert!(log.contains("draining"), "{log}");
    // The node's JSON log names the session and its user on the session's
    // lines (its span), here the line saying it ended.
    let node_log = std::fs::read_to_string(&node.stderr_log).unwrap_or_default();
    let ended: serde_json::Value = node_log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "session ended")
        .unwrap_or_else(|| panic!("no session end in\n{node_log}"));
    assert_eq!(ended["span"]["user"], "alice", "{ended}");
    assert_eq!(ended["span"]["login"], os.name.as_str(), "{ended}");
    assert!(
        ended["span"]["session"]
            .as_str()
            .is_some_and(|s| s.len() == 36),
        "{ended}"
    );

    // The node: the proxy back, a session that would outlive the node's
    // 2 s: it is ended with the node's message, shown by OpenSSH.
    let args: Vec<&str> = proxy_args.iter().map(String::as_str).collect();
    let _auth = Daemon::spawn(&args, &dir.path().join("auth2.log"));
    let config = run(jsh_command(&home, &["config"]), "").ok();
    let ssh_config = home.join("ssh_config");
    std::fs::write(&ssh_config, config.stdout).expect("config");
    let mut ssh = Command::new("ssh");
    ssh.args([
        "-F",
        &ssh_config.display().to_string(),
        "-o",
        "BatchMode=yes",
    ])
    .arg(format!("{}@n1.example", os.name))
    .arg("echo started; sleep 60")
    .env("JSH_HOME", home.join(".jsh"))
    .env("HOME", &home);
    // The proxy is new: the node's first heartbeat to it may come first.
    let (mut long, _) = eventually("an OpenSSH session", Duration::from_secs(20), || {
        started(&mut ssh)
    });
    let t0 = Instant::now();
    sigterm(&node.child);
    let status = long.wait().expect("ssh ends");
    let stderr = stderr_of(&mut long);
    assert_ne!(status.code(), Some(0));
    assert!(stderr.contains("the node is shutting down"), "{stderr}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    exits_within(&mut node.child, Duration::from_secs(10));
    // It waited its 2 s for the session first.
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    let log = std::fs::read_to_string(&node.stderr_log).unwrap_or_default();
    assert!(log.contains("ending the sessions left"), "{log}");
}
