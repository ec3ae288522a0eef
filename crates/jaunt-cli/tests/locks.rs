//! Locks end to end: `jctl lock` refuses new access and ends the matching
//! live sessions (an interactive OpenSSH session through the proxy and an
//! OpenSSH ControlMaster connection straight to a node), `jctl get locks`
//! and `jctl rm lock/ID` show and lift them, and a lock stops only what its
//! target names.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// The ID `jctl lock` printed ("lock <id> has been created: ...").
fn lock_id(out: &Out) -> String {
    out.stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no lock ID in {:?}", out.stdout))
        .to_string()
}

/// An interactive `ssh -tt` session through the proxy, its output piped.
fn interactive(s: &Setup, host: &str) -> std::process::Child {
    let home = s.ssh_config.parent().expect("home");
    Command::new("ssh")
        .arg("-F")
        .arg(&s.ssh_config)
        .args(["-o", "BatchMode=yes", "-tt"])
        .arg(format!("{}@{host}", s.os.name))
        .arg("echo session-ready; sleep 600")
        .env("JSH_HOME", home.join(".jsh"))
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh")
}

/// An OpenSSH ControlMaster connection straight to node1.
fn master_to_node1(s: &Setup) -> Master {
    let addr = s.nodes[0].ssh_addr.expect("direct node").to_string();
    let jsh_config = s.home.join("jsh_ssh_config");
    std::fs::write(&jsh_config, s.c.jsh(&s.home, &["config"], "").ok().stdout).expect("config");
    Master::open(&direct_ssh_config(&s.home, &jsh_config, &addr, &s.os.name))
}

fn master_up(master: &Master) -> bool {
    master
        .check_command()
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn a_user_lock_ends_live_sessions_and_refuses_everything_until_removed() {
    let s = setup("lk");
    let master = master_to_node1(&s);
    let mut session = interactive(&s, "node2.example");
    read_until(&mut session, "session-ready");

    let locked_at = Instant::now();
    let out =
        s.c.jctl(&["lock", "--user=alice", "--message=laptop reported stolen"])
            .ok();
    let id = lock_id(&out);
    // The interactive session (tunnel node, through the proxy) ends, and
    // its client is told why.
    let status = eventually("the locked session to end", Duration::from_secs(20), || {
        session.try_wait().expect("wait")
    });
    let ended_after = locked_at.elapsed();
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(session.stderr.as_mut().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(stderr.contains("laptop reported stolen"), "{stderr}");
    // The ControlMaster connection straight to node1 closes too.
    eventually(
        "the master connection to close",
        Duration::from_secs(20),
        || (!master_up(&master)).then_some(()),
    );
    eprintln!("the locked session ended {ended_after:?} after 'jctl lock'");

    // Nothing new: no SSH session, no login, no API call.
    let refused = ssh(
        &s.ssh_config,
        &[&format!("{}@node1.example", s.os.name), "true"],
        "",
    );
    assert_ne!(refused.code, Some(0));
    assert!(
        refused.stderr.contains("laptop reported stolen"),
        "{}",
        refused.stderr
    );
    s.c.login(&s.home, "alice", &[], &format!("{PASSWORD}\n"))
        .fails_with("laptop reported stolen");
    s.c.jsh(&s.home, &["ls"], "")
        .fails_with("lock targeting user:\"alice\"");

    let listed = s.c.jctl(&["get", "locks"]).ok().stdout;
    assert!(
        listed.contains(&id) && listed.contains("laptop reported stolen"),
        "{listed}"
    );
    let events = s.c.jctl(&["audit", "ls", "--format=json"]).ok().stdout;
    assert!(
        events.contains("\"lock.created\"") && events.contains("TLK00I"),
        "{events}"
    );
    let ended: Vec<&str> = events
        .lines()
        .filter(|l| l.contains("client.disconnect") && l.contains(&id))
        .collect();
    assert!(
        ended.len() >= 2,
        "both connections end with the lock's ID: {events}"
    );

    // Lifted: everything works again, and the removal is audited.
    s.c.jctl(&["rm", &format!("lock/{id}")]).ok();
    s.c.login(&s.home, "alice", &[], &format!("{PASSWORD}\n"))
        .ok();
    s.ssh_eventually(
        "node1",
        "access after the lock is removed",
        Duration::from_secs(20),
    );
    let events =
        s.c.jctl(&["audit", "ls", "--type=lock.deleted", "--format=json"])
            .ok()
            .stdout;
    assert!(
        events.contains(&id) && events.contains("TLK01I"),
        "{events}"
    );
    assert!(!s.c.jctl(&["get", "locks"]).ok().stdout.contains(&id));
}

#[test]
fn a_lock_stops_only_the_role_login_or_node_it_names_and_expires() {
    let s = setup("lt");
    let to = |host: &str| format!("{}@{host}", s.os.name);
    let reaches = |host: &str| ssh(&s.ssh_config, &[&to(host), "true"], "").code == Some(0);

    // A login on one node: that node refuses it, the other does not.
    let out =
        s.c.jctl(&["lock", &format!("--login={}", s.os.name), "--node=node1"])
            .ok();
    let id = lock_id(&out);
    assert!(out.stdout.contains("node:\"node1 ("), "{}", out.stdout);
    eventually("node1 to refuse the login", Duration::from_secs(10), || {
        (!reaches("node1.example")).then_some(())
    });
    assert!(reaches("node2.example"));
    // A session on node2 is not ended by a lock on node1.
    let mut session = interactive(&s, "node2.example");
    read_until(&mut session, "session-ready");
    s.c.jctl(&["rm", &format!("lock/{id}")]).ok();
    assert!(session.try_wait().expect("wait").is_none());

    // A role, for a few seconds: a live session of a holder ends, access
    // comes back by itself when the lock expires.
    s.c.jctl(&["lock", "--role=access", "--ttl=4s"]).ok();
    eventually(
        "the role lock to end the session",
        Duration::from_secs(20),
        || session.try_wait().expect("wait"),
    );
    assert!(!reaches("node2.example"));
    ssh_until_ok(
        &s.ssh_config,
        &to("node2.example"),
        "true",
        "access once the lock expired",
        Duration::from_secs(30),
    );
    assert_eq!(
        s.c.jctl(&["get", "locks", "--format=json"])
            .ok()
            .stdout
            .trim(),
        "[]"
    );

    // A lock on a role nobody here holds stops nobody.
    s.c.jctl(&["lock", "--role=auditor"]).ok();
    assert!(reaches("node1.example"));

    // Bad requests are refused with the reason.
    let no_target = s.c.jctl(&["lock", "--message=x"]);
    assert_ne!(no_target.code, Some(0));
    assert!(no_target.stderr.contains("--user"), "{}", no_target.stderr);
    s.c.jctl(&["lock", "--node=no-such-node"])
        .fails_with("not found");
    s.c.jctl(&["lock", "--user=bob", "--expires=2020-01-01T00:00:00Z"])
        .fails_with("expire at once");
    s.c.jctl(&["rm", "lock/no-such-lock"])
        .fails_with("not found");
}
