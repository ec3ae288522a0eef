//! The audit log, running sessions and recordings, end to end: sessions
//! from `jsh ssh`, OpenSSH and PuTTY's plink/psftp produce their events in
//! `jctl audit ls`; PTY sessions are recorded and play back (also with
//! stock `asciinema`); `jsh sessions ls` shows what runs. Runs as root.

mod support;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// Waits until the session's events include `event` (nodes deliver from a
/// queue), and returns that session's events.
fn session_events(c: &Cluster, session: &str, event: &str) -> Vec<Value> {
    eventually(
        &format!("{event} of session {session}"),
        Duration::from_secs(20),
        || {
            let events = audit(c, &[&format!("--session={session}")]);
            events.iter().any(|e| e["event"] == event).then_some(events)
        },
    )
}

/// A session's recording as asciicast, once its node has uploaded it.
fn uploaded_cast(c: &Cluster, home: &std::path::Path, session: &str) -> String {
    eventually("the session's recording", Duration::from_secs(30), || {
        let out = c.jsh(home, &["play", session, "--format=asciicast"], "");
        (out.code == Some(0)).then_some(out.stdout)
    })
}

fn find<'a>(events: &'a [Value], event: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == event)
        .unwrap_or_else(|| panic!("no {event} in {events:#?}"))
}

/// The `Session ID  : ...` line of `jaunt status`.
fn session_id(status: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Session ID  : "))
        .unwrap_or_else(|| panic!("no session ID in {status:?}"))
        .trim()
        .to_string()
}

#[test]
fn sessions_are_audited_recorded_and_listed() {
    let s = setup("a");
    let login = s.os.name.clone();
    let jaunt = bin("jaunt").display().to_string();

    // A jsh ssh session with a terminal: session.start/end, recorded.
    let out =
        s.c.jsh(
            &s.home,
            &[
                "ssh",
                "-t",
                &format!("{login}@node1"),
                &format!("echo MARKER-$((6*7)); {jaunt} status"),
            ],
            "",
        )
        .ok();
    assert!(out.stdout.contains("MARKER-42"), "{out:?}");
    let jsh_session = session_id(&out.stdout);
    let events = session_events(&s.c, &jsh_session, "session.end");
    let start = find(&events, "session.start");
    assert_eq!(start["code"], "T2000I");
    assert_eq!(start["user"], "alice");
    assert_eq!(start["login"], login.as_str());
    assert_eq!(start["node"], "node1");
    assert_eq!(start["cluster"], "example");
    assert_eq!(start["fields"]["interactive"], true);
    assert!(start["node_uuid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(
        start["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    );
    let end = find(&events, "session.end");
    assert_eq!(end["code"], "T2004I");
    assert_eq!(end["fields"]["exit_status"], 0);
    assert_eq!(end["fields"]["participants"], serde_json::json!(["alice"]));
    assert!(end["fields"]["duration_ms"].as_u64().is_some());
    let exec = find(&events, "exec");
    assert_eq!(exec["code"], "T3002I");
    assert!(
        exec["fields"]["command"]
            .as_str()
            .is_some_and(|c| c.contains("MARKER")),
        "{exec}"
    );

    // Its recording plays back what the session printed.
    let recordings = eventually("the recording", Duration::from_secs(20), || {
        let out = s.c.jsh(&s.home, &["recordings", "ls", "--format=json"], "");
        out.stdout.contains(&jsh_session).then_some(out.stdout)
    });
    assert!(recordings.contains("\"user\":\"alice\""), "{recordings}");
    let cast =
        s.c.jsh(&s.home, &["play", &jsh_session, "--format=asciicast"], "")
            .ok()
            .stdout;
    let header: Value = serde_json::from_str(cast.lines().next().expect("header")).expect("json");
    assert_eq!(header["version"], 2);
    assert!(cast.contains("MARKER-42"), "{cast}");
    let played =
        s.c.jsh(&s.home, &["play", &jsh_session, "--speed=1000"], "")
            .ok()
            .stdout;
    assert!(played.contains("MARKER-42"), "{played}");
    // Stock asciinema reads the exported file (it wants a terminal: script
    // gives it one).
    let file = s.home.join("session.cast");
    std::fs::write(&file, &cast).expect("cast");
    let out = run(
        {
            let mut c = Command::new("script");
            c.args([
                "-qec",
                &format!("asciinema cat {}", file.display()),
                "/dev/null",
            ]);
            c
        },
        "",
    )
    .ok();
    assert!(out.stdout.contains("MARKER-42"), "{out:?}");

    // exec without a terminal, through OpenSSH: its exit status.
    ssh(
        &s.ssh_config,
        &[
            &format!("{login}@node2.example"),
            &format!("{jaunt} status; exit 3"),
        ],
        "",
    );
    let exec = eventually("exec with exit 3", Duration::from_secs(20), || {
        audit(&s.c, &["--type=exec", "--user=alice"])
            .into_iter()
            .find(|e| e["fields"]["exit_status"] == 3)
    });
    assert_eq!(exec["code"], "T3002E");
    assert_eq!(exec["node"], "node2");

    // plink with a saved session: session.start and session.end.
    puttyconfig(&s, &[&format!("{login}@node1")]).ok();
    let name = format!("{login}@node1 [proxy:127.0.0.1]");
    let out = run(
        putty_tool(
            &s,
            "plink",
            &["-batch", "-load", &name, &format!("{jaunt} status")],
        ),
        "",
    )
    .ok();
    let plink_session = session_id(&out.stdout);
    let events = session_events(&s.c, &plink_session, "session.end");
    find(&events, "session.start");

    // psftp up and down: sftp events with the path and byte counts.
    let dir = tempfile::tempdir().expect("tmp");
    let src = dir.path().join("up.bin");
    std::fs::write(&src, vec![7u8; 300_000]).expect("write");
    psftp_round_trip(&s, &name, &src, "audited.bin", &dir.path().join("back.bin"));
    let sftp = eventually("sftp read and write", Duration::from_secs(20), || {
        let events = audit(&s.c, &["--type=sftp"]);
        let has = |action: &str| {
            events.iter().any(|e| {
                e["fields"]["action"] == action
                    && e["fields"]["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/audited.bin"))
            })
        };
        (has("write") && has("read") && has("close")).then_some(events)
    });
    for (action, code) in [("write", "TS004I"), ("read", "TS003I")] {
        let e = sftp
            .iter()
            .find(|e| e["fields"]["action"] == action)
            .expect("event");
        assert_eq!(e["code"], code);
        assert_eq!(e["fields"]["bytes"], 300_000);
        assert_eq!(e["user"], "alice");
    }
    let session = sftp[0]["session_id"].as_str().expect("session id");
    let events = session_events(&s.c, session, "session.end");
    assert_eq!(find(&events, "subsystem")["fields"]["name"], "sftp");

    // A refused certificate: an auth event with the reason.
    let out = ssh(&s.ssh_config, &["root@node1.example", "true"], "");
    assert_ne!(out.code, Some(0));
    let refused = eventually("the auth event", Duration::from_secs(20), || {
        audit(&s.c, &["--type=auth"])
            .into_iter()
            .find(|e| e["login"] == "root")
    });
    assert_eq!(refused["code"], "T3007W");
    // A refused certificate's user is only a claim: not recorded as `user`.
    assert!(refused.get("user").is_none(), "{refused}");
    assert_eq!(refused["fields"]["cert_key_id"], "alice");
    assert_eq!(refused["success"], false);
    assert!(
        refused["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("root")),
        "{refused}"
    );

    // Auth's own events: the logins, their certificates, the nodes joining.
    let logins = audit(&s.c, &["--type=user.login", "--user=alice"]);
    assert!(logins.iter().any(|e| e["code"] == "T1000I"), "{logins:?}");
    assert!(!audit(&s.c, &["--type=cert.create"]).is_empty());
    assert_eq!(audit(&s.c, &["--type=node.join"]).len(), 2);
    let text = s.c.jctl(&["audit", "ls", "--type=user.create"]).ok().stdout;
    assert!(
        text.lines()
            .any(|l| l.contains(" user.create T1002I user=alice")),
        "{text}"
    );
    s.c.jctl(&["audit", "ls", "--type=nope"])
        .fails_with("unknown event type");
    assert_eq!(audit(&s.c, &["--limit=1"]).len(), 1);

    // A running session is listed while it runs, for its user only.
    let config = s.ssh_config.clone();
    let home = s.home.clone();
    let mut long = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["-tt", "-o", "BatchMode=yes"])
        .arg(format!("{login}@node1.example"))
        .arg("echo READY; sleep 60")
        .env("JSH_HOME", home.join(".jsh"))
        .env("HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh");
    let listed = eventually("the running session", Duration::from_secs(20), || {
        let out = s.c.jsh(&s.home, &["sessions", "ls", "--format=json"], "");
        out.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["kind"] == "exec" && v["node"] == "node1")
    });
    assert_eq!(listed["user"], "alice");
    assert_eq!(listed["login"], login.as_str());
    let text = s.c.jsh(&s.home, &["sessions", "ls"], "").ok().stdout;
    assert!(text.starts_with("ID "), "{text}");
    // Bob, without the auditor role, sees none of alice's sessions or
    // recordings; with it he sees them.
    let bob = s.c.signed_up("bob", &login);
    s.c.login(&bob, "bob", &[], &format!("{PASSWORD}\n")).ok();
    let none = s.c.jsh(&bob, &["sessions", "ls"], "").ok().stdout;
    assert_eq!(none, "No running sessions you may see.\n");
    s.c.jsh(&bob, &["play", &jsh_session], "")
        .fails_with("no recording of session");
    s.c.jctl(&["users", "update", "bob", "--set-roles=access,auditor"])
        .ok();
    let seen = s.c.jsh(&bob, &["sessions", "ls", "--format=json"], "").ok();
    assert!(
        seen.stdout.contains(listed["id"].as_str().expect("id")),
        "{seen:?}"
    );
    s.c.jsh(&bob, &["play", &jsh_session, "--format=asciicast"], "")
        .ok();
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
}

/// `ID=<session ID>` as the remote command echoes it.
fn echoed_id(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| l.split("ID=").nth(1))
        .map(|id| id.trim().to_string())
        .unwrap_or_else(|| panic!("no ID= in {lines:?}"))
}

fn node_token(c: &Cluster) -> String {
    let out = c.jctl(&["tokens", "add", "--type=node"]).ok();
    out.stdout
        .split_whitespace()
        .nth(3)
        .expect("token")
        .to_string()
}

/// A user logged in, with OpenSSH reaching the direct node at `addr`
/// without the proxy, over one master connection.
fn direct(c: &Cluster, home: &std::path::Path, addr: &str, login: &str) -> Master {
    let jsh_config = home.join("ssh_config");
    std::fs::write(&jsh_config, c.jsh(home, &["config"], "").ok().stdout).expect("config");
    Master::open(&direct_ssh_config(home, &jsh_config, addr, login))
}

#[test]
fn a_killed_node_delivers_its_partial_recording_and_queued_events() {
    let mut c = Cluster::start(Options::default());
    let os = OsUser::create("k");
    let home = c.signed_up("alice", &os.name);
    c.login(&home, "alice", &[], &format!("{PASSWORD}\n")).ok();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let node_dir = c.dir.path().join("node-k");
    let (dir, ssh_listen) = (
        node_dir.display().to_string(),
        format!("--ssh-listen={addr}"),
    );
    let (proxy, pin) = (
        format!("--proxy={}", c.proxy),
        format!("--ca-pin={}", c.ca_pin),
    );
    let base = [
        "--roles=node",
        "--data-dir",
        dir.as_str(),
        proxy.as_str(),
        pin.as_str(),
        "--nodename=nodek",
        ssh_listen.as_str(),
    ];
    let token = format!("--token={}", node_token(&c));
    let mut first = base.to_vec();
    first.push(&token);
    let mut node = Daemon::spawn(&first, &c.dir.path().join("node-k.log"));
    let master = direct(&c, &home, &addr, &os.name);

    // Session A runs, printing a marker; then auth goes away.
    let mut a = master
        .command("echo ID=$JAUNT_SESSION_ID; echo PARTIAL-$((6*7)); sleep 60")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("session A");
    let session_a = echoed_id(&read_until(&mut a, "PARTIAL-42"));
    c.stop_daemon();
    // Session B runs while auth is away: its events wait on the node's disk.
    let out = master
        .command("echo ID=$JAUNT_SESSION_ID; echo SECOND")
        .output()
        .expect("session B");
    let b_lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(b_lines.iter().any(|l| l.contains("SECOND")), "{b_lines:?}");
    let session_b = echoed_id(&b_lines);
    let queued = queued_events(&node_dir);
    assert!(queued >= 3, "session B's events are queued ({queued})");

    // kill -9 mid-session A, then everything comes back.
    node.kill9();
    let _ = a.kill();
    let _ = a.wait();
    drop(master);
    c.start_daemon();
    let _node = Daemon::spawn(&base, &c.dir.path().join("node-k2.log"));

    let cast = eventually(
        "session A's partial recording",
        Duration::from_secs(30),
        || {
            let out = c.jsh(&home, &["play", &session_a, "--format=asciicast"], "");
            (out.code == Some(0)).then_some(out.stdout)
        },
    );
    assert!(cast.contains("PARTIAL-42"), "{cast}");
    for line in cast.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    }
    let events = session_events(&c, &session_b, "session.end");
    for name in ["session.start", "exec", "session.end"] {
        let n = events.iter().filter(|e| e["event"] == name).count();
        assert_eq!(n, 1, "{name} of session B, once: {events:#?}");
    }
    // Session A was cut: its end is written when the node comes back.
    let a_events = session_events(&c, &session_a, "session.end");
    for name in ["session.start", "session.end"] {
        let n = a_events.iter().filter(|e| e["event"] == name).count();
        assert_eq!(n, 1, "{name} of session A, once: {a_events:#?}");
    }
    let end = find(&a_events, "session.end");
    assert_eq!(end["code"], "T2004E");
    assert_eq!(
        end["fields"]["reason"],
        "the node stopped while the session ran"
    );
    assert_eq!(end["user"], "alice");
    eventually("the queue to drain", Duration::from_secs(20), || {
        (queued_events(&node_dir) == 0).then_some(())
    });
}

/// Events waiting in a node's on-disk audit queue (read while the node
/// may be writing: SQLite's WAL lets a reader in).
fn queued_events(node_dir: &std::path::Path) -> usize {
    jaunt_store::DurableQueue::<serde_json::Value>::open(&node_dir.join("audit-queue.db"))
        .and_then(|q| q.len())
        .expect("the node's audit queue")
}

/// Also: recordings kept in a directory (`recordings: {type: dir}`), one
/// file per session, appended as node-sync streams it.
#[test]
fn node_sync_sessions_end_when_auth_cannot_record() {
    let mut c = Cluster::start(Options {
        recording: "node-sync",
        recordings_dir: true,
        ..Default::default()
    });
    let os = OsUser::create("y");
    let home = c.signed_up("alice", &os.name);
    c.login(&home, "alice", &[], &format!("{PASSWORD}\n")).ok();
    let node = c.add_node("nodes", "env=sync", true);
    let addr = node.ssh_addr.expect("direct node").to_string();
    let master = direct(&c, &home, &addr, &os.name);

    // With auth up, sessions are recorded as they run.
    let out = master
        .command("echo ID=$JAUNT_SESSION_ID; echo SYNCED-$((6*7))")
        .output()
        .expect("session");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let id = echoed_id(&lines);
    let cast = eventually("the synced recording", Duration::from_secs(20), || {
        let out = c.jsh(&home, &["play", &id, "--format=asciicast"], "");
        out.stdout.contains("SYNCED-42").then_some(out.stdout)
    });
    assert!(cast.starts_with("{\"version\":2"), "{cast}");
    // The recording is its file, under the session's day.
    let days: Vec<_> = std::fs::read_dir(c.recordings_dir())
        .expect("recordings dir")
        .map(|d| d.expect("day").path())
        .collect();
    let file = days
        .iter()
        .map(|d| d.join(format!("{id}.cast")))
        .find(|f| f.exists())
        .unwrap_or_else(|| panic!("no {id}.cast in {days:?}"));
    let day = file.parent().and_then(|d| d.file_name()).expect("day");
    assert!(
        jaunt_types::timefmt::parse_day(&day.to_string_lossy()).is_some(),
        "{file:?}"
    );
    let held = std::fs::read_to_string(&file).expect("the recording's file");
    assert!(held.starts_with(&cast), "{held}");

    // A running session ends when auth stops taking its recording.
    let mut live = master
        .command("echo LIVE; sleep 60; echo NOT-ENDED")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("live session");
    read_until(&mut live, "LIVE");
    c.stop_daemon();
    let out = live.wait_with_output().expect("live ends");
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!all.contains("NOT-ENDED"), "{all}");
    assert!(all.contains("(recording: node-sync)"), "{all}");
    assert!(all.contains("the session is ended"), "{all}");

    // A new session is ended at once, with the reason.
    let out = master
        .command("echo NEVER-$((6*7))")
        .output()
        .expect("new session");
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!all.contains("NEVER-42"), "{all}");
    assert!(
        all.contains("this cluster records every session (recording: node-sync)"),
        "{all}"
    );
    assert_eq!(out.status.code(), Some(255), "{all}");
}

#[test]
fn oversized_events_queued_while_auth_is_away_never_block_later_ones() {
    let (mut c, os, home) = Cluster::with_alice(Options::default(), "o");
    let node = c.add_node("big", "env=big", true);
    let addr = node.ssh_addr.expect("direct node").to_string();
    let master = direct(&c, &home, &addr, &os.name);
    // Control bytes take six bytes each in JSON: each 200 KB command (ssh
    // joins its arguments; an SSH packet holds 256 KiB) was 1.2 MB in both
    // session.start and exec. Queued while auth is away, they made a batch
    // past the API's 2 MiB body limit, which the node retried for ever:
    // no later event of the node reached auth.
    c.stop_daemon();
    let part = "\u{1}".repeat(100_000);
    for _ in 0..2 {
        // The shell cannot run it; the attempt is what is audited.
        let _ = master.command(&part).arg(&part).output().expect("ssh");
    }
    let out = master
        .command("echo after-the-big-ones")
        .output()
        .expect("ssh");
    assert!(String::from_utf8_lossy(&out.stdout).contains("after-the-big-ones"));
    c.start_daemon();
    let events = eventually("the later command's event", Duration::from_secs(30), || {
        let events = audit(&c, &["--type=exec"]);
        events
            .iter()
            .any(|e| e["fields"]["command"] == "echo after-the-big-ones")
            .then_some(events)
    });
    let big = events
        .iter()
        .filter_map(|e| e["fields"]["command"].as_str())
        .filter(|c| c.contains("[truncated: 200001 bytes, sha256:"))
        .count();
    assert_eq!(big, 2, "both big commands, capped: {events:#?}");
    for e in &events {
        let command = e["fields"]["command"].as_str().unwrap_or_default();
        assert!(command.len() <= 4096, "{}", command.len());
    }
}

#[test]
fn a_recording_that_cannot_be_sent_holds_back_no_other() {
    let (c, os, home) = Cluster::with_alice(Options::default(), "q");
    let _node = c.add_node("rec", "env=rec", true);
    // A recording whose metadata is unreadable, named to be first in the
    // upload order: the uploader stopped its pass at the first failure,
    // so no recording of this node reached auth again.
    let spool = c.dir.path().join("node-rec").join("recordings");
    std::fs::create_dir_all(&spool).expect("spool");
    let stuck = "00000000-0000-4000-8000-000000000000";
    std::fs::write(spool.join(format!("{stuck}.meta.json")), b"{torn").expect("meta");
    std::fs::write(spool.join(format!("{stuck}.cast")), b"{}\n").expect("cast");
    let jaunt = bin("jaunt").display().to_string();
    let out = c
        .jsh(
            &home,
            &[
                "ssh",
                "-t",
                &format!("{}@rec", os.name),
                &format!("echo REC-$((6*7)); {jaunt} status"),
            ],
            "",
        )
        .ok();
    let session = session_id(&out.stdout);
    let cast = uploaded_cast(&c, &home, &session);
    assert!(cast.contains("REC-42"), "{cast}");
    // The bad one is set aside, kept for an operator, and not retried.
    let aside = spool.join(format!("{stuck}.meta.json.rejected"));
    eventually(
        "the bad recording set aside",
        Duration::from_secs(10),
        || aside.exists().then_some(()),
    );
    assert!(spool.join(format!("{stuck}.cast")).exists());
}

/// A node records at most its disk budget: a session that prints more goes
/// on to its end, its recording stops with a line saying why, is marked
/// truncated, and its session.end says so. The spool's use is given back
/// once the recording is uploaded, so the next session is recorded whole.
#[test]
fn a_recording_past_the_nodes_disk_budget_is_truncated_and_says_so() {
    let (c, os, home) = Cluster::with_alice(
        Options {
            recording_disk_limit: 64 * 1024,
            ..Default::default()
        },
        "rt",
    );
    let _node = c.add_node("rec", "env=rec", true);
    let jaunt = bin("jaunt").display().to_string();
    let target = format!("{}@rec", os.name);
    let big =
        format!("{jaunt} status; head -c 300000 /dev/zero | tr '\\0' x; echo; echo AFTER-$((6*7))");
    let out = c.jsh(&home, &["ssh", "-t", &target, &big], "").ok();
    assert!(
        out.stdout.contains("AFTER-42"),
        "the session itself went on"
    );
    let session = session_id(&out.stdout);
    let events = session_events(&c, &session, "session.end");
    let end = find(&events, "session.end");
    assert_eq!(end["fields"]["recording_truncated"], true, "{end}");
    let cast = uploaded_cast(&c, &home, &session);
    assert!(cast.len() <= 64 * 1024, "{} bytes", cast.len());
    assert!(cast.contains("the recording stops here"), "{cast}");
    assert!(!cast.contains("AFTER-42"));
    let listed = c
        .jsh(&home, &["recordings", "ls", "--format=json"], "")
        .ok()
        .stdout;
    assert!(listed.contains("\"truncated\":true"), "{listed}");

    // The budget came back with the upload: a small session is whole.
    let out = c
        .jsh(
            &home,
            &[
                "ssh",
                "-t",
                &target,
                &format!("{jaunt} status; echo SMALL-$((6*7))"),
            ],
            "",
        )
        .ok();
    let small = session_id(&out.stdout);
    let cast = uploaded_cast(&c, &home, &small);
    assert!(
        cast.contains("SMALL-42") && !cast.contains("stops here"),
        "{cast}"
    );
}
