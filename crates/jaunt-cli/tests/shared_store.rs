//! Several `jaunt start --roles=auth,proxy` instances on one PostgreSQL
//! database serve one cluster (one CA, users, nodes, lockouts and
//! revocations shared), and a single-machine cluster's SQLite store moves
//! there with `jaunt storage copy`. Real PostgreSQL, started by the test.

#[path = "../../jaunt-store/tests/support/postgres.rs"]
mod postgres_server;
mod support;

use postgres_server::Postgres;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// `jaunt start` for auth+proxy with its own data directory `dir/name`,
/// on `storage` (a URI) or SQLite when `None`.
fn instance(dir: &Path, name: &str, storage: Option<&str>) -> Daemon {
    instance_at(dir, name, storage, "127.0.0.1:0", "127.0.0.1", &[])
}

/// As [`instance`], on `listen`, telling users and nodes to come through
/// `public`, with `extra` flags.
fn instance_at(
    dir: &Path,
    name: &str,
    storage: Option<&str>,
    listen: &str,
    public: &str,
    extra: &[&str],
) -> Daemon {
    let data = dir.join(name).display().to_string();
    let (listen, public) = (
        format!("--listen={listen}"),
        format!("--public-addr={public}"),
    );
    let mut args = vec![
        "--data-dir",
        &data,
        "--cluster-name=example",
        &listen,
        &public,
        "--node-address-allow=127.0.0.0/8",
    ];
    if !extra.iter().any(|f| f.starts_with("--second-factor")) {
        args.push("--second-factor=off");
    }
    let uri;
    if let Some(s) = storage {
        uri = format!("--storage-uri={s}");
        args.push(&uri);
    }
    args.extend_from_slice(extra);
    Daemon::spawn(&args, &dir.join(format!("{name}.log")))
}

/// A node joined through `proxy`: direct (on a port of its own) or
/// through reverse tunnels when `direct` is false.
fn node(dir: &Path, name: &str, proxy: &str, token: &str, ca_pin: &str, direct: bool) -> Daemon {
    let data = dir.join(name).display().to_string();
    let (token, proxy, ca_pin, nodename) = (
        format!("--token={token}"),
        format!("--proxy={proxy}"),
        format!("--ca-pin={ca_pin}"),
        format!("--nodename={name}"),
    );
    let mut args = vec![
        "--roles=node",
        "--data-dir",
        &data,
        &token,
        &proxy,
        &ca_pin,
        &nodename,
    ];
    if direct {
        args.extend(["--ssh-listen=127.0.0.1:0", "--advertise-addr=127.0.0.1:0"]);
    }
    Daemon::spawn(&args, &dir.join(format!("{name}.log")))
}

/// A direct node (web1) and a tunnel node (web2) joined through `proxy`
/// with tokens made at the instance whose data directory is `data`.
fn two_nodes(dir: &Path, proxy: &str, data: &Path, ca_pin: &str) -> [Daemon; 2] {
    [
        node(dir, "web1", proxy, &node_token(data), ca_pin, true),
        node(dir, "web2", proxy, &node_token(data), ca_pin, false),
    ]
}

/// Adds `name` (role access, login `login`) at the instance whose data
/// directory is `data`, and signs them up through `proxy`; their home.
fn user(dir: &Path, data: &Path, proxy: &str, pin: &str, name: &str, login: &str) -> PathBuf {
    let logins = format!("--logins={login}");
    let added = jctl(data, &["users", "add", name, "--roles=access", &logins]).ok();
    let home = dir.join(format!("home-{name}"));
    std::fs::create_dir_all(&home).expect("home");
    signup(&home, proxy, pin, &token_from(&added.stdout));
    home
}

fn node_token(data: &Path) -> String {
    let out = jctl(data, &["tokens", "add", "--type=node"]).ok();
    out.stdout
        .split_whitespace()
        .nth(3)
        .expect("token")
        .to_string()
}

/// `jsh ssh` until it succeeds (a tunnel may still be coming up).
fn ssh_ok(home: &Path, target: &str, command: &[&str], what: &str) -> Out {
    let mut args = vec!["ssh", target];
    args.extend_from_slice(command);
    eventually(what, Duration::from_secs(20), || {
        let out = run(jsh_command(home, &args), "");
        (out.code == Some(0)).then_some(out)
    })
}

fn events(data: &Path, kind: &str) -> Vec<serde_json::Value> {
    let out = jctl(
        data,
        &["audit", "ls", &format!("--type={kind}"), "--format=json"],
    )
    .ok();
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event per line"))
        .collect()
}

fn pin(data: &Path) -> String {
    let status = jctl(data, &["status", "--format=json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    v["ca_pin"].as_str().expect("pin").to_string()
}

fn login(home: &Path, proxy: &str, pin: &str, user: &str, password: &str) -> Out {
    let (proxy, user, pin) = (
        format!("--proxy={proxy}"),
        format!("--user={user}"),
        format!("--ca-pin={pin}"),
    );
    let args = ["login", &proxy, &user, &pin, "--password-stdin"];
    run(jsh_command(home, &args), &format!("{password}\n"))
}

fn signup(home: &Path, proxy: &str, pin: &str, token: &str) {
    run(
        signup_command(home, proxy, token, pin),
        &format!("{PASSWORD}\n"),
    )
    .ok();
}

fn database(pg: &Postgres, name: &str) -> String {
    pg.uri(name, "sslmode=disable")
}

#[test]
fn two_instances_on_one_database_serve_one_cluster() {
    let dir = tempfile::tempdir().expect("tmp");
    let pg = Postgres::start_with(&[]);
    let uri = database(&pg, "jaunt");
    // Both keep recordings in one directory (a volume they share).
    let recordings = dir.path().join("recordings");
    let config = dir.path().join("shared.yaml");
    std::fs::write(
        &config,
        format!(
            "recordings:\n  type: dir\n  path: {}\n",
            recordings.display()
        ),
    )
    .expect("config");
    let config = format!("--config={}", config.display());
    let shared = |name: &str| {
        instance_at(
            dir.path(),
            name,
            Some(&uri),
            "127.0.0.1:0",
            "127.0.0.1",
            &[&config],
        )
    };
    // Started together: the cluster's identity is made once.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| shared("a"));
        let b = s.spawn(|| shared("b"));
        (a.join().expect("a"), b.join().expect("b"))
    });
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let ca_pin = pin(&data_a);
    assert_eq!(ca_pin, pin(&data_b), "one cluster CA");

    // A user made through one instance signs up through the other.
    let os = OsUser::create("ha");
    let home = user(dir.path(), &data_a, &b.proxy, &ca_pin, "alice", &os.name);

    // Nodes join through A (with tokens made on B); users reach them
    // through either proxy: the direct one dialled by each instance, the
    // tunnel one through the tunnel it keeps to each instance.
    let _nodes = two_nodes(dir.path(), &a.proxy, &data_b, &ca_pin);
    for proxy in [&b.proxy, &a.proxy] {
        login(&home, proxy, &ca_pin, "alice", PASSWORD).ok();
        let listed = eventually("both nodes listed", Duration::from_secs(20), || {
            let out = run(jsh_command(&home, &["ls", "--format=names"]), "");
            (out.stdout.lines().count() == 2).then_some(out)
        });
        assert_eq!(listed.stdout, "web1\nweb2\n");
        for name in ["web1", "web2"] {
            let target = format!("{}@{name}", os.name);
            let out = ssh_ok(&home, &target, &["echo", name, "via", proxy], "a session");
            assert_eq!(out.stdout.trim(), format!("{name} via {proxy}"));
        }
    }
    let target = format!("{}@web1", os.name);

    // A session recorded through A (its node uploads to the instance it
    // reaches) plays through B: its file is in the shared directory.
    run(
        jsh_command(&home, &["ssh", "-t", &target, "echo SHARED-$((6*7))"]),
        "",
    )
    .ok();
    login(&home, &b.proxy, &ca_pin, "alice", PASSWORD).ok();
    let played = eventually("the recording through B", Duration::from_secs(30), || {
        let out = run(
            jsh_command(&home, &["recordings", "ls", "--format=json"]),
            "",
        );
        // One JSON object a line.
        out.stdout.lines().find_map(|line| {
            let r: serde_json::Value = serde_json::from_str(line).ok()?;
            let id = r["session_id"].as_str()?;
            let cast = run(jsh_command(&home, &["play", id, "--format=asciicast"]), "");
            cast.stdout.contains("SHARED-42").then(|| id.to_string())
        })
    });
    let file_of = std::fs::read_dir(&recordings)
        .expect("shared directory")
        .map(|d| d.expect("day").path().join(format!("{played}.cast")))
        .find(|f| f.exists());
    assert!(
        file_of.is_some(),
        "{played}.cast in {}",
        recordings.display()
    );

    // An agentless node joined through A, reached through B: B's relay
    // threads write its session's events to the shared database, and A
    // reads them.
    let sshd = Sshd::start("");
    let unlocked = std::process::Command::new("usermod")
        .args(["-p", "*", &os.name])
        .status()
        .expect("usermod");
    assert!(unlocked.success(), "sshd refuses a locked account");
    let mut join = std::process::Command::new(bin("jaunt"));
    join.args(["join", "openssh", "--nodename=osh1"])
        .arg(format!("--proxy={}", a.proxy))
        .arg(format!("--token={}", node_token(&data_b)))
        .arg(format!("--ca-pin={ca_pin}"))
        .arg(format!("--address={}", sshd.addr()))
        .arg(format!("--openssh-config={}", sshd.config.display()))
        .arg(format!("--data-dir={}", dir.path().join("osh").display()))
        .arg(format!("--sshd-check-command={SSHD} -t -f"))
        .arg(format!("--sshd-restart-command={}", sshd.restart_command()));
    run(join, "").ok();
    let osh = format!("{}@osh1", os.name);
    let out = ssh_ok(&home, &osh, &["echo", "agentless"], "a session on osh1");
    assert_eq!(out.stdout.trim(), "agentless");
    // Written before the session was reported started: no waiting.
    let started = events(&data_a, "session.start");
    assert!(
        started
            .iter()
            .any(|e| e["node"] == "osh1" && e["fields"]["server_sub_kind"] == "openssh"),
        "{started:#?}"
    );

    // A lock made through B ends sessions carried by A (its nodes follow
    // the locks through A) and by B's relay threads (osh1), and is lifted
    // through A.
    let mut live: Vec<std::process::Child> = ["web1", "web2", "osh1"]
        .iter()
        .map(|name| {
            let mut cmd = jsh_command(&home, &["ssh", &format!("{}@{name}", os.name)]);
            cmd.args(["echo live; sleep 600"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null());
            let mut child = cmd.spawn().expect("jsh ssh");
            read_until(&mut child, "live");
            child
        })
        .collect();
    let locked = jctl(&data_b, &["lock", "--user=alice"]).ok();
    for child in &mut live {
        eventually("the locked session to end", Duration::from_secs(20), || {
            child.try_wait().expect("wait")
        });
    }
    let lock_id = locked
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("lock ID")
        .to_string();
    jctl(&data_a, &["rm", &format!("lock/{lock_id}")]).ok();
    ssh_ok(
        &home,
        &target,
        &["true"],
        "a session once the lock is lifted",
    );

    // Revocation made on one instance holds at the other at once: no
    // instance keeps its own copy of users.
    jctl(&data_b, &["users", "rm", "alice"]).ok();
    run(jsh_command(&home, &["ssh", &target, "true"]), "").fails_with("access denied");

    // Failed logins count across instances: 3 at A and 2 at B lock the
    // account (five allowed), and then even the right password is refused
    // at both.
    let bob_home = user(dir.path(), &data_b, &a.proxy, &ca_pin, "bob", "bob");
    for proxy in [&a.proxy, &a.proxy, &a.proxy, &b.proxy, &b.proxy] {
        login(&bob_home, proxy, &ca_pin, "bob", "not bob's password")
            .fails_with("invalid credentials");
    }
    for proxy in [&a.proxy, &b.proxy] {
        login(&bob_home, proxy, &ca_pin, "bob", PASSWORD).fails_with("invalid credentials");
    }
    let locked = jctl(
        &data_a,
        &["audit", "ls", "--type=user.locked", "--format=json"],
    )
    .ok();
    let events: Vec<serde_json::Value> = locked
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event per line"))
        .collect();
    assert_eq!(events.len(), 1, "{}", locked.stdout);
    assert_eq!(events[0]["user"], "bob");
}

#[test]
fn losing_an_instance_loses_no_session_node_or_event() {
    let dir = tempfile::tempdir().expect("tmp");
    let pg = Postgres::start_with(&[]);
    let uri = database(&pg, "jaunt");
    let mut a = instance(dir.path(), "a", Some(&uri));
    let b = instance(dir.path(), "b", Some(&uri));
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let ca_pin = pin(&data_a);
    let os = OsUser::create("lose");
    let home = user(dir.path(), &data_a, &a.proxy, &ca_pin, "alice", &os.name);
    // Both nodes were told of A only; they learn B from their heartbeats.
    let _nodes = two_nodes(dir.path(), &a.proxy, &data_a, &ca_pin);
    let (web1, web2) = (format!("{}@web1", os.name), format!("{}@web2", os.name));
    login(&home, &a.proxy, &ca_pin, "alice", PASSWORD).ok();
    ssh_ok(&home, &web2, &["echo", "before"], "a session through A");

    // A session through B is running when A dies.
    login(&home, &b.proxy, &ca_pin, "alice", PASSWORD).ok();
    ssh_ok(&home, &web2, &["true"], "web2's tunnel to B");
    let mut running = jsh_command(
        &home,
        &["ssh", &web2, "echo started; sleep 3; echo survived"],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("jsh ssh");
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(running.stdout.take().expect("stdout"));
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("read");
    assert_eq!(first.trim(), "started");
    a.kill9();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read");
    assert_eq!(rest.trim(), "survived");
    let status = running.wait().expect("wait");
    assert!(
        status.success(),
        "the session through B ended with {status}"
    );

    // New logins and sessions through B, to both nodes: the nodes ask B
    // what they asked A.
    login(&home, &b.proxy, &ca_pin, "alice", PASSWORD).ok();
    for (target, what) in [(&web1, "web1 after A died"), (&web2, "web2 after A died")] {
        let started = std::time::Instant::now();
        let out = ssh_ok(&home, target, &["echo", "after"], what);
        assert_eq!(out.stdout.trim(), "after");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: {:?}",
            started.elapsed()
        );
    }
    // Every session's events, the one A stored before it died among them.
    let ended = eventually("five sessions' end events", Duration::from_secs(20), || {
        let ended = events(&data_b, "session.end");
        (ended.len() >= 5).then_some(ended)
    });
    assert!(ended.len() >= 5, "{ended:?}");
}

#[test]
fn instances_carry_on_through_a_database_failover() {
    let dir = tempfile::tempdir().expect("tmp");
    // A primary that acknowledges a commit once its standby has it.
    let mut primary = Postgres::start_with(&["synchronous_standby_names=standby1".into()]);
    let standby = Postgres::standby_of(&primary, "standby1");
    primary.create_database("jaunt");
    let uri = format!(
        "postgres://jaunt@127.0.0.1:{},127.0.0.1:{}/jaunt?target_session_attrs=read-write&sslmode=disable",
        primary.port, standby.port
    );
    let a = instance(dir.path(), "a", Some(&uri));
    let data = dir.path().join("a");
    let ca_pin = pin(&data);
    // Created just before the failover.
    let home = user(dir.path(), &data, &a.proxy, &ca_pin, "erin", "erin");

    primary.stop();
    standby.promote();
    // The instance finds the new primary through the connection string's
    // second host; its first calls wait for it.
    login(&home, &a.proxy, &ca_pin, "erin", PASSWORD).ok();
    jctl(
        &data,
        &["users", "add", "frank", "--roles=access", "--logins=frank"],
    )
    .ok();
    let users = jctl(&data, &["users", "ls"]).ok();
    assert!(
        users.stdout.contains("erin") && users.stdout.contains("frank"),
        "{}",
        users.stdout
    );
    let written = standby.psql(
        "jaunt",
        "SELECT count(*) FROM jaunt_kv WHERE key LIKE '/users/%'",
    );
    assert!(
        written.trim().parse::<u32>().expect("count") >= 2,
        "{written}"
    );
}

/// HAProxy in TCP mode, round robin over `backends`, on `port`; stopped
/// (by PID) on drop.
struct Haproxy(std::process::Child);

impl Haproxy {
    fn start(dir: &Path, port: u16, backends: &[&str]) -> Haproxy {
        // Health checks every 300 ms take a dead instance out; a connection
        // refused is tried again on another.
        let mut cfg = format!(
            "global\n  maxconn 2000\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n\
             \x20 retries 3\n  option redispatch\n\
             frontend jaunt\n  bind 127.0.0.1:{port}\n  default_backend instances\nbackend instances\n  balance roundrobin\n"
        );
        for (i, addr) in backends.iter().enumerate() {
            cfg.push_str(&format!(
                "  server i{i} {addr} check inter 300ms fall 2 rise 2\n"
            ));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("haproxy config");
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("log");
        let child = std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("haproxy (apt-get install haproxy; scripts/test.sh does)");
        eventually("haproxy to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Haproxy(child)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn behind_a_round_robin_load_balancer_every_client_works() {
    let dir = tempfile::tempdir().expect("tmp");
    let pg = Postgres::start_with(&[]);
    let uri = database(&pg, "jaunt");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
    };
    let (lb_addr, a_addr, b_addr) = (free(), free().to_string(), free().to_string());
    let lb = lb_addr.to_string();
    // Users and nodes know only the balancer's address.
    let mut a = instance_at(dir.path(), "a", Some(&uri), &a_addr, &lb, &[]);
    let _b = instance_at(dir.path(), "b", Some(&uri), &b_addr, &lb, &[]);
    let _haproxy = Haproxy::start(dir.path(), lb_addr.port(), &[&a_addr, &b_addr]);
    let data = dir.path().join("a");
    let ca_pin = pin(&data);
    let os = OsUser::create("lb");
    let home = user(dir.path(), &data, &lb, &ca_pin, "alice", &os.name);
    login(&home, &lb, &ca_pin, "alice", PASSWORD).ok();
    let _nodes = two_nodes(dir.path(), &lb, &data, &ca_pin);
    eventually("both nodes listed", Duration::from_secs(20), || {
        let out = run(jsh_command(&home, &["ls", "--format=names"]), "");
        (out.stdout.lines().count() == 2).then_some(out)
    });
    // The tunnel node reaches both instances through the one address, and
    // each session's raw connections reach the instance holding their
    // ticket: six sessions in a row, which round robin spreads over both.
    let web2 = format!("{}@web2", os.name);
    let mut in_a_row = 0;
    let up = within(Duration::from_secs(30), || {
        let ok = run(jsh_command(&home, &["ssh", &web2, "true"]), "").code == Some(0);
        in_a_row = if ok { in_a_row + 1 } else { 0 };
        (in_a_row == 6).then_some(())
    });
    if up.is_none() {
        let log = std::fs::read_to_string(dir.path().join("web2.log")).unwrap_or_default();
        panic!("sessions to web2 through the balancer kept failing; its log:\n{log}");
    }

    // Each session's dial and its raw relay connection are two connections,
    // so round robin sends them to different instances half the time or
    // more: the ticket is handed to the instance that issued it.
    let config = home.join("ssh_config");
    let text = run(jsh_command(&home, &["config"]), "").ok().stdout;
    std::fs::write(&config, text).expect("ssh config");
    let putty = home.join(".putty");
    for name in ["web1", "web2"] {
        let mut cmd = jsh_command(&home, &["puttyconfig", &format!("{}@{name}", os.name)]);
        cmd.env("PUTTYDIR", &putty);
        run(cmd, "").ok();
    }
    for round in 0..3 {
        for name in ["web1", "web2"] {
            let target = format!("{}@{name}", os.name);
            let out = run(
                jsh_command(&home, &["ssh", &target, "echo", "jsh", name]),
                "",
            )
            .ok();
            assert_eq!(out.stdout.trim(), format!("jsh {name}"), "round {round}");
            let out = ssh(&config, &[&format!("{target}.example"), "echo ssh"], "").ok();
            assert_eq!(out.stdout.trim(), "ssh", "round {round}: {name}");
            let session = format!("{target} [proxy:127.0.0.1]");
            let mut plink = std::process::Command::new("plink");
            plink
                .args(["-batch", "-load", &session, "echo plink"])
                .env("HOME", &home)
                .env("JSH_HOME", home.join(".jsh"))
                .env("PUTTYDIR", &putty);
            let out = run(plink, "").ok();
            assert_eq!(out.stdout.trim(), "plink", "round {round}: {name}");
        }
    }

    // One instance dies: through the balancer, new sessions reach both
    // nodes again within ten seconds (the balancer's checks take it out;
    // the tunnel node's tunnel to the survivor was up already).
    a.kill9();
    let started = std::time::Instant::now();
    for name in ["web1", "web2"] {
        let target = format!("{}@{name}", os.name);
        let out = ssh_ok(
            &home,
            &target,
            &["echo", "after"],
            "a session after one instance died",
        );
        assert_eq!(out.stdout.trim(), "after");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // And keep doing so: six in a row to each.
    for name in ["web1", "web2"] {
        let target = format!("{}@{name}", os.name);
        for _ in 0..6 {
            run(jsh_command(&home, &["ssh", &target, "true"]), "").ok();
        }
    }
}

#[test]
fn readiness_follows_the_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut pg = Postgres::start_with(&[]);
    let uri = database(&pg, "jaunt");
    let diag = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .to_string();
    let flag = format!("--diag-addr={diag}");
    let _a = instance_at(
        dir.path(),
        "a",
        Some(&uri),
        "127.0.0.1:0",
        "127.0.0.1",
        &[&flag],
    );
    assert_eq!(http_get(&diag, "/healthz").0, 200);
    assert_eq!(http_get(&diag, "/readyz"), (200, "ready\n".to_string()));

    pg.stop();
    let (code, body) = eventually(
        "not ready without its database",
        Duration::from_secs(10),
        || {
            let got = http_get(&diag, "/readyz");
            (got.0 == 503).then_some(got)
        },
    );
    assert_eq!(code, 503);
    assert!(body.starts_with("not ready: "), "{body}");
    // Alive all the same.
    assert_eq!(http_get(&diag, "/healthz").0, 200);

    pg.restart_same_port();
    eventually("ready again", Duration::from_secs(20), || {
        (http_get(&diag, "/readyz").0 == 200).then_some(())
    });
    assert_eq!(http_get(&diag, "/nothing").0, 404);
}

#[test]
fn a_one_time_code_is_good_once_across_instances() {
    let dir = tempfile::tempdir().expect("tmp");
    let pg = Postgres::start_with(&[]);
    let uri = database(&pg, "jaunt");
    let otp = ["--second-factor=otp"];
    let a = instance_at(
        dir.path(),
        "a",
        Some(&uri),
        "127.0.0.1:0",
        "127.0.0.1",
        &otp,
    );
    let b = instance_at(
        dir.path(),
        "b",
        Some(&uri),
        "127.0.0.1:0",
        "127.0.0.1",
        &otp,
    );
    let data = dir.path().join("a");
    let ca_pin = pin(&data);
    let added = jctl(
        &data,
        &["users", "add", "alice", "--roles=access", "--logins=alice"],
    )
    .ok();
    let home = dir.path().join("home-alice");
    std::fs::create_dir_all(&home).expect("home");
    let totp = signup_with_otp(
        &home,
        &a.proxy,
        &token_from(&added.stdout),
        &ca_pin,
        "alice",
    );
    // The next step's code, used at A, is spent at B too.
    let code = format!("--otp={}", totp.generate(unix_now() + 30));
    let (proxy_a, proxy_b) = (
        format!("--proxy={}", a.proxy),
        format!("--proxy={}", b.proxy),
    );
    let pin_arg = format!("--ca-pin={ca_pin}");
    let login = |proxy: &str| {
        let args = [
            "login",
            proxy,
            "--user=alice",
            &pin_arg,
            "--password-stdin",
            &code,
        ];
        run(jsh_command(&home, &args), &format!("{PASSWORD}\n"))
    };
    login(&proxy_a).ok();
    login(&proxy_b).fails_with("invalid credentials");
}

#[test]
fn a_single_machine_store_moves_to_postgres() {
    let dir = tempfile::tempdir().expect("tmp");
    let pg = Postgres::start_with(&[]);
    let mut single = instance(dir.path(), "single", None);
    let single_data = dir.path().join("single");
    let ca_pin = pin(&single_data);
    let home = user(
        dir.path(),
        &single_data,
        &single.proxy,
        &ca_pin,
        "carol",
        "carol",
    );

    // Copied while the single instance runs (from a snapshot).
    let uri = database(&pg, "moved");
    let from = format!("--from=sqlite:{}", single_data.display());
    let to = format!("--to={uri}");
    let copy = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(bin("jaunt"));
        cmd.args(["storage", "copy", &from, &to]).args(extra);
        run(cmd, "")
    };
    let out = copy(&[]).ok();
    assert!(out.stdout.starts_with("Copied "), "{}", out.stdout);
    let no_snapshot_left = std::fs::read_dir(&single_data)
        .expect("dir")
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().contains(".copy-"));
    assert!(no_snapshot_left, "the snapshot is removed");
    single.kill9();

    // The moved cluster is the same cluster: CA, users, passwords, audit.
    let moved = instance(dir.path(), "moved", Some(&uri));
    let moved_data = dir.path().join("moved");
    assert_eq!(pin(&moved_data), ca_pin);
    login(&home, &moved.proxy, &ca_pin, "carol", PASSWORD).ok();
    let created = jctl(
        &moved_data,
        &["audit", "ls", "--type=user.create", "--format=json"],
    )
    .ok();
    assert!(created.stdout.contains("carol"), "{}", created.stdout);

    // Not over a store in use, unless asked; a wrong source is named.
    copy(&[]).fails_with("holds");
    copy(&["--force"]).ok();
    let mut cmd = std::process::Command::new(bin("jaunt"));
    let missing: PathBuf = dir.path().join("nowhere");
    cmd.args([
        "storage",
        "copy",
        &format!("--from=sqlite:{}", missing.display()),
        &to,
    ]);
    run(cmd, "").fails_with("no Jaunt database at");
}
