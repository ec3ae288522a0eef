//! `jctl --proxy`: administration through the proxy with the user's own
//! `jsh login` identity, never the admin socket: each request is carried
//! out only when the user's current roles allow it, and what it changes is
//! audited with the user's name. Runs as root.

mod support;

use std::process::Command;
use support::*;

/// jctl through the proxy as the user of `home`, with no data directory
/// to fall back on.
fn remote(c: &Cluster, home: &std::path::Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(bin("jctl"));
    cmd.arg(format!("--proxy={}", c.proxy))
        .args(args)
        .env("JAUNT_DATA_DIR", "/nonexistent/jaunt-remote-admin")
        .env("JSH_HOME", home.join(".jsh"))
        .env("HOME", home);
    run(cmd, "")
}

#[test]
fn jctl_through_the_proxy_acts_with_the_users_roles() {
    let (c, _os, home) = Cluster::with_alice(Options::default(), "ra");

    // alice's role (access) has no admin rules: refused, naming the rule.
    let out = remote(&c, &home, &["users", "ls"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("access denied: user \"alice\" may not list user"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("admin.sock"), "{out:?}");

    // Roles are read at each request: made an editor, she administers
    // without logging in again.
    c.jctl(&["users", "update", "alice", "--set-roles=access,editor"])
        .ok();
    let users = remote(&c, &home, &["users", "ls", "--format=json"]).ok();
    assert!(users.stdout.contains("\"alice\""), "{users:?}");
    let status = remote(&c, &home, &["status"]).ok();
    assert!(status.stdout.contains("example"), "{status:?}");
    let added = remote(
        &c,
        &home,
        &["users", "add", "bob", "--roles=access", "--logins=nobody"],
    )
    .ok();
    assert!(added.stdout.contains("signup"), "{added:?}");
    // The backup a remote administrator can take holds what the local one
    // does.
    let all = remote(&c, &home, &["get", "all", "--format=yaml"]).ok();
    let local = c.jctl(&["get", "all", "--format=yaml"]).ok();
    for name in ["name: bob", "name: editor", "name: auditor"] {
        assert!(all.stdout.contains(name), "{name}: {all:?}");
        assert!(local.stdout.contains(name), "{name}: {local:?}");
    }

    // Her changes are audited with her name; the socket's are not.
    let created = audit(&c, &["--type=user.create"]);
    let bob = created
        .iter()
        .find(|e| e["fields"]["name"] == "bob" || e["user"] == "bob")
        .unwrap_or_else(|| panic!("bob's creation in {created:#?}"));
    assert_eq!(bob["fields"]["by"], "alice", "{bob}");
    let updated = audit(&c, &["--type=user.update"]);
    assert!(
        updated.iter().all(|e| e["fields"]["by"].is_null()),
        "{updated:#?}"
    );

    // An auditor reads the audit log but changes nothing.
    c.jctl(&["users", "update", "alice", "--set-roles=auditor"])
        .ok();
    let events = remote(&c, &home, &["audit", "ls", "--type=user.create"]).ok();
    assert!(events.stdout.contains("user.create"), "{events:?}");
    for (args, refusal) in [
        (
            &["tokens", "add", "--type=node"][..],
            "may not create token",
        ),
        (&["users", "rm", "bob"][..], "may not delete user"),
        (&["lock", "--user=bob"][..], "may not create lock"),
        (
            &["auth", "export", "--type=user"][..],
            "may not read cert_authority",
        ),
    ] {
        let out = remote(&c, &home, args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(out.stderr.contains(refusal), "{args:?}: {out:?}");
    }
    assert!(
        c.jctl(&["users", "ls"]).ok().stdout.contains("bob"),
        "nothing was removed"
    );

    // A lock on her stops her remote administration too.
    c.jctl(&["users", "update", "alice", "--set-roles=editor"])
        .ok();
    c.jctl(&["lock", "--user=alice", "--message=audit in progress"])
        .ok();
    let out = remote(&c, &home, &["users", "ls"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("audit in progress"), "{out:?}");

    // Someone who never logged in is told how to.
    let stranger = c.user_home("stranger");
    let out = remote(&c, &stranger, &["users", "ls"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("jsh login --proxy="), "{out:?}");
}
