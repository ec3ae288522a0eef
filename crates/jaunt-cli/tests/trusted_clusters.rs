//! Trusted (leaf) clusters, end to end: a root cluster ("example", with
//! alice) and a leaf cluster ("leaf", a direct and a tunnel node) side by
//! side on loopback; trust made with the token flow; alice, logged in at
//! the root only, reaches the leaf's nodes with jsh, OpenSSH and PuTTY
//! through the root's proxy; and every refusal the trust implies. Runs as
//! root (it creates OS users for logins).

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::*;

const LEAF_ROLE: &str = "kind: role\nmetadata: {name: leaf-access}\nspec:\n  allow:\n    logins: ['{{internal.logins}}']\n    node_labels: {'*': '*'}\n";

/// A leaf cluster with one direct node (lnode1, env=dev) and one tunnel
/// node (lnode2, env=prod), and a role for root users to map to.
struct Leaf {
    c: Cluster,
    nodes: Vec<jaunt_node::Node>,
}

fn start_leaf(name: &'static str, role: &str) -> Leaf {
    let c = Cluster::start(Options {
        cluster_name: name,
        node_offline_after: "2s",
        ..Default::default()
    });
    let file = c.dir.path().join("role.yaml");
    std::fs::write(&file, role).expect("role");
    c.jctl(&["create", "-f", &file.display().to_string()]).ok();
    let nodes = vec![
        c.add_node("lnode1", "env=dev", true),
        c.add_node("lnode2", "env=prod", false),
    ];
    Leaf { c, nodes }
}

/// `jctl tokens add --type=trusted_cluster ARGS` at `root`: the token.
fn trust_token(root: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["tokens", "add", "--type=trusted_cluster"];
    all.extend_from_slice(args);
    let out = root.jctl(&all).ok();
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("The invite token: "))
        .unwrap_or_else(|| panic!("no token in {}", out.stdout))
        .to_string()
}

/// The leaf's `jctl create -f` of a trusted_cluster for `root`.
fn trust(leaf: &Cluster, root: &Cluster, token: &str, role_map: &str) -> Out {
    trust_enabled(leaf, root, token, role_map, true)
}

fn trust_enabled(
    leaf: &Cluster,
    root: &Cluster,
    token: &str,
    role_map: &str,
    enabled: bool,
) -> Out {
    let file = leaf.dir.path().join("trusted_cluster.yaml");
    std::fs::write(
        &file,
        format!(
            "kind: trusted_cluster\nmetadata: {{name: example}}\nspec:\n  enabled: {enabled}\n  token: '{token}'\n  proxy_addr: {}\n  ca_pin: {}\n  role_map:\n{role_map}",
            root.proxy, root.ca_pin
        ),
    )
    .expect("trusted_cluster.yaml");
    leaf.jctl(&["create", "-f", &file.display().to_string()])
}

const MAP_ACCESS: &str = "    - {remote: access, local: [leaf-access]}\n";

/// `jsh clusters --format=json` rows.
fn clusters(s: &Setup) -> Vec<Value> {
    let out = s.c.jsh(&s.home, &["clusters", "--format=json"], "").ok();
    serde_json::from_str(&out.stdout).expect("json")
}

fn leaf_status(s: &Setup) -> Option<String> {
    clusters(s)
        .iter()
        .find(|c| c["cluster_name"] == "leaf")
        .map(|c| c["status"].as_str().unwrap_or_default().to_string())
}

/// Waits for the leaf's tunnel to the root (and its nodes' heartbeats,
/// which bring them the root's user CA; after a rotation at the root, the
/// leaf's next heartbeat to the root, every 10 s, first) so that alice
/// reaches `node`.
fn jsh_leaf_eventually(s: &Setup, node: &str, command: &str) -> Out {
    let mut last = None;
    let target = format!("{}@{node}", s.os.name);
    within(Duration::from_secs(60), || {
        let out =
            s.c.jsh(&s.home, &["ssh", "--cluster=leaf", &target, command], "");
        if out.code == Some(0) {
            return Some(out);
        }
        last = Some(out);
        None
    })
    .unwrap_or_else(|| panic!("timed out waiting for jsh ssh --cluster=leaf {node}: {last:?}"))
}

#[test]
fn one_login_at_the_root_reaches_the_leaf_with_jsh_openssh_and_putty() {
    let s = setup("tl");
    let mut leaf = start_leaf("leaf", LEAF_ROLE);
    let token = trust_token(&s.c, &["--labels=site=lab"]);
    let made = trust(&leaf.c, &s.c, &token, MAP_ACCESS).ok();
    assert!(
        made.stdout
            .contains("Trusted cluster \"example\" has been created"),
        "{}",
        made.stdout
    );

    // Both sides list the trust, online once the leaf's tunnel stands.
    eventually(
        "the root to see the leaf online",
        Duration::from_secs(15),
        || {
            let out = s.c.jctl(&["get", "remote_clusters"]).ok().stdout;
            (out.contains("leaf") && out.contains("online") && out.contains("site=lab"))
                .then_some(())
        },
    );
    let trusted = leaf.c.jctl(&["get", "trusted_clusters"]).ok().stdout;
    assert!(
        trusted.contains("example") && trusted.contains("access -> leaf-access"),
        "{trusted}"
    );

    // jsh clusters: the guide's table, the root first and selected.
    let table = s.c.jsh(&s.home, &["clusters"], "").ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("Cluster Name")
            && lines[0].contains("Status")
            && lines[0].contains("Cluster Type")
            && lines[0].contains("Labels")
            && lines[0].ends_with("Selected"),
        "{table}"
    );
    let root_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(root_row, ["example", "online", "root", "*"], "{table}");
    let leaf_row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(leaf_row, ["leaf", "online", "leaf", "site=lab"], "{table}");
    let rows = clusters(&s);
    assert_eq!(rows[0]["selected"], true);
    assert_eq!(rows[1]["cluster_type"], "leaf");

    // jsh ls --cluster: the leaf's nodes the mapped role may see.
    let ls = s.c.jsh(&s.home, &["ls", "--cluster=leaf"], "").ok().stdout;
    assert!(ls.contains("lnode1") && ls.contains("lnode2"), "{ls}");
    assert!(
        !ls.lines()
            .any(|l| l.starts_with("node1") || l.starts_with("node2")),
        "root nodes are not the leaf's: {ls}"
    );

    // jsh ssh --cluster, to the direct and the tunnel node: `jaunt status`
    // inside names the leaf.
    let jaunt = bin("jaunt").display().to_string();
    for node in ["lnode1", "lnode2"] {
        let out = jsh_leaf_eventually(&s, node, &format!("{jaunt} status"));
        assert!(out.stdout.contains("Cluster Name: leaf"), "{}", out.stdout);
        assert!(out.stdout.contains("User ID     : alice"), "{}", out.stdout);
    }
    let status = jsh_leaf_eventually(&s, "lnode1", &format!("{jaunt} status")).stdout;
    let session = status
        .lines()
        .find_map(|l| l.strip_prefix("Session ID  : "))
        .expect("a session ID")
        .trim()
        .to_string();

    // The leaf's own audit log has the session, by the root's user.
    let events = eventually("the leaf's session events", Duration::from_secs(20), || {
        let e = audit(&leaf.c, &[&format!("--session={session}")]);
        e.iter().any(|e| e["event"] == "session.start").then_some(e)
    });
    let start = events
        .iter()
        .find(|e| e["event"] == "session.start")
        .expect("session.start");
    assert_eq!(start["user"], "alice");
    assert_eq!(start["fields"]["user_cluster"], "example", "{start}");
    assert_eq!(start["fields"]["roles"], "leaf-access", "{start}");
    assert_eq!(start["cluster"], "leaf", "{start}");
    // The root's log has no session of the leaf's.
    assert!(audit(&s.c, &[&format!("--session={session}")]).is_empty());

    // OpenSSH through `jsh config`: a block for the leaf's nodes.
    let config = s.c.jsh(&s.home, &["config"], "").ok().stdout;
    assert!(config.contains("Host *.leaf"), "{config}");
    assert!(config.contains("--cluster=leaf"), "{config}");
    let ssh_config = s.home.join("ssh_config_leaf");
    std::fs::write(&ssh_config, &config).expect("config");
    for node in ["lnode1", "lnode2"] {
        let out = ssh_until_ok(
            &ssh_config,
            &format!("{}@{node}.leaf", s.os.name),
            &format!("{jaunt} status"),
            "OpenSSH to the leaf",
            Duration::from_secs(20),
        );
        assert!(out.stdout.contains("Cluster Name: leaf"), "{}", out.stdout);
    }

    // PuTTY: the session the guide names, the leaf's host CA trusted.
    let login = s.os.name.clone();
    let out = puttyconfig(&s, &["--leaf", "leaf", &format!("{login}@lnode1")]).ok();
    let name = format!("{login}@lnode1 [leaf:leaf,proxy:127.0.0.1]");
    assert_eq!(out.stdout, format!("Added PuTTY session for {name}\n"));
    let ca = std::fs::read_to_string(s.home.join(".putty/sshhostcas/JauntHostCA-leaf"))
        .expect("the leaf's host CA entry");
    assert!(ca.contains("lnode1"), "{ca}");
    let plink = run(
        putty_tool(
            &s,
            "plink",
            &["-batch", "-load", &name, &format!("{jaunt} status")],
        ),
        "",
    )
    .ok();
    assert!(
        plink.stdout.contains("Cluster Name: leaf"),
        "{}",
        plink.stdout
    );
    let src = s.home.join("leaf-src.bin");
    std::fs::write(
        &src,
        (0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .expect("src");
    let back = s.home.join("leaf-back.bin");
    psftp_round_trip(&s, &name, &src, "leaf-psftp.bin", &back);
    assert_eq!(sha256_of(&src), sha256_of(&back));
    let listed = puttyconfig(&s, &["--list"]).ok().stdout;
    assert!(listed.contains("leaf"), "{listed}");

    // The leaf's proxy restarts: its tunnel and the root's view come back.
    leaf.c.restart();
    eventually("the leaf back online", Duration::from_secs(20), || {
        (leaf_status(&s).as_deref() == Some("online")).then_some(())
    });
    jsh_leaf_eventually(&s, "lnode1", "true");

    // A leaf that is down is shown offline, and said so when dialled.
    leaf.c.stop_daemon();
    eventually("the leaf shown offline", Duration::from_secs(10), || {
        (leaf_status(&s).as_deref() == Some("offline")).then_some(())
    });
    s.c.jsh(
        &s.home,
        &["ssh", "--cluster=leaf", &format!("{login}@lnode1"), "true"],
        "",
    )
    .fails_with("cluster leaf is offline");
    leaf.c.start_daemon();
    for n in leaf.nodes.drain(..) {
        n.stop();
    }
}

/// What a trust does not allow.
/// CA rotations on either side carry across the trust: the root's new
/// user CA key reaches the leaf's nodes (through the leaf's heartbeats to
/// the root), and the leaf's new host CA key reaches the root's clients
/// at their next login.
#[test]
fn ca_rotations_carry_across_the_trust() {
    let s = setup("tk");
    let leaf = start_leaf("leaf", LEAF_ROLE);
    let token = trust_token(&s.c, &[]);
    trust(&leaf.c, &s.c, &token, MAP_ACCESS).ok();
    jsh_leaf_eventually(&s, "lnode1", "true");
    let login = || {
        s.c.login(&s.home, "alice", &[], &format!("{PASSWORD}\n"))
            .ok();
    };

    // The root's user CA: alice's certificate from the new key works at
    // the leaf once its nodes trust it, and after the old key is gone.
    s.c.rotate("user", "init");
    s.c.rotate("user", "update_clients");
    login();
    jsh_leaf_eventually(&s, "lnode1", "true");
    s.c.rotate("user", "update_servers");
    s.c.rotate("user", "standby");
    jsh_leaf_eventually(&s, "lnode2", "true");

    // The leaf's host CA: the root learns both keys; alice's client
    // trusts both from her next login or `jsh clusters`; the leaf's nodes
    // then move to the new key.
    leaf.c.rotate("host", "init");
    // `jsh clusters` refreshes the leaves' host CAs (as a login does).
    let leaf_keys_eventually = |count: usize, what: &str| {
        eventually(what, Duration::from_secs(60), || {
            s.c.jsh(&s.home, &["clusters"], "").ok();
            let known =
                std::fs::read_to_string(s.home.join(".jsh/known_hosts")).unwrap_or_default();
            (known.lines().filter(|l| l.contains("*.leaf")).count() == count).then_some(())
        })
    };
    leaf_keys_eventually(2, "the root to learn the leaf's new host CA");
    leaf.c.rotate("host", "update_clients");
    leaf.c.rotate("host", "update_servers");
    jsh_leaf_eventually(&s, "lnode1", "true");
    leaf.c.rotate("host", "standby");
    leaf_keys_eventually(1, "the root to forget the leaf's old host CA");
    jsh_leaf_eventually(&s, "lnode2", "true");

    // The root's TLS CA: the leaf learns both CAs with its heartbeats,
    // renews its tunnel certificate from the new one when the root asks,
    // and links again to the proxy's new certificate.
    let leaf_trust = || {
        leaf.c
            .block_on(leaf.c.auth().trusted_clusters())
            .expect("trusted clusters")
            .remove(0)
    };
    s.c.rotate("tls", "init");
    eventually(
        "the leaf to trust both root TLS CAs",
        Duration::from_secs(60),
        || (leaf_trust().tls_ca_pem.matches("BEGIN CERTIFICATE").count() == 2).then_some(()),
    );
    s.c.rotate("tls", "update_clients");
    login();
    let new_issuer =
        s.c.auth()
            .authorities()
            .tls
            .client_signer()
            .subject()
            .expect("subject");
    eventually(
        "the leaf's certificate from the new CA",
        Duration::from_secs(60),
        || {
            let id = jaunt_ca::client_identity_pem(&leaf_trust().tls_cert_pem).ok()?;
            (id.issuer == new_issuer).then_some(())
        },
    );
    s.c.rotate("tls", "update_servers");
    jsh_leaf_eventually(&s, "lnode1", "true");
    s.c.rotate("tls", "standby");
    jsh_leaf_eventually(&s, "lnode2", "true");
    drop(leaf);
}

#[test]
fn trust_refusals() {
    let s = setup("tr");
    // The mapped role may see only env=dev nodes (lnode1, not lnode2).
    let dev_only = LEAF_ROLE.replace("node_labels: {'*': '*'}", "node_labels: {env: dev}");
    let leaf = start_leaf("leaf", &dev_only);
    let login = s.os.name.clone();

    // The role map names a role the leaf does not have.
    let token = trust_token(&s.c, &[]);
    trust(
        &leaf.c,
        &s.c,
        &token,
        "    - {remote: access, local: [nosuch]}\n",
    )
    .fails_with("no such role in this cluster: nosuch");
    // A bad pattern.
    trust(
        &leaf.c,
        &s.c,
        &token,
        "    - {remote: '^admin-(.*$', local: [leaf-access]}\n",
    )
    .fails_with("remote role pattern");
    // An expired token.
    let short = trust_token(&s.c, &["--ttl=1s"]);
    eventually("the short token to expire", Duration::from_secs(10), || {
        let listed = s.c.jctl(&["tokens", "ls"]).ok().stdout;
        (!listed.contains(&short)).then_some(())
    });
    trust(&leaf.c, &s.c, &short, MAP_ACCESS).fails_with("invalid or has expired");
    // A wrong pin: the leaf never trusts the root by anything else.
    let file = leaf.c.dir.path().join("bad-pin.yaml");
    std::fs::write(
        &file,
        format!(
            "kind: trusted_cluster\nmetadata: {{name: example}}\nspec:\n  token: {token}\n  proxy_addr: {}\n  ca_pin: sha256:{}\n  role_map:\n{MAP_ACCESS}",
            s.c.proxy,
            "0".repeat(64)
        ),
    )
    .expect("yaml");
    leaf.c
        .jctl(&["create", "-f", &file.display().to_string()])
        .fails_with("cannot establish trust");

    // The good one (the token was not spent by the refusals above).
    trust(&leaf.c, &s.c, &token, MAP_ACCESS).ok();
    // Reused: spent.
    let third = start_leaf("third", LEAF_ROLE);
    trust(&third.c, &s.c, &token, MAP_ACCESS).fails_with("invalid or has expired");
    // A leaf claiming the root's own name, or the name of a leaf it has.
    let impostor = Cluster::start(Options {
        cluster_name: "example",
        ..Default::default()
    });
    let file = impostor.dir.path().join("role.yaml");
    std::fs::write(&file, LEAF_ROLE).expect("role");
    impostor
        .jctl(&["create", "-f", &file.display().to_string()])
        .ok();
    trust(&impostor, &s.c, &trust_token(&s.c, &[]), MAP_ACCESS)
        .fails_with("cannot have this cluster's own name");
    let twin = start_leaf("leaf", LEAF_ROLE);
    trust(&twin.c, &s.c, &trust_token(&s.c, &[]), MAP_ACCESS)
        .fails_with("a remote cluster named \"leaf\" exists already");
    drop((third, impostor, twin));

    // Mapped, lnode1 (env=dev) is reachable; lnode2's labels are not
    // allowed by the mapped role.
    jsh_leaf_eventually(&s, "lnode1", "true");

    // Disabled, the trust admits no one and its tunnel closes; enabled
    // again (no token needed to change it), it is back.
    let off = trust_enabled(&leaf.c, &s.c, "", MAP_ACCESS, false).ok();
    assert!(off.stdout.contains("enabled: false"), "{}", off.stdout);
    eventually(
        "the disabled leaf shown offline",
        Duration::from_secs(10),
        || (leaf_status(&s).as_deref() == Some("offline")).then_some(()),
    );
    s.c.jsh(
        &s.home,
        &["ssh", "--cluster=leaf", &format!("{login}@lnode1"), "true"],
        "",
    )
    .fails_with("cluster leaf is offline");
    trust_enabled(&leaf.c, &s.c, "", MAP_ACCESS, true).ok();
    jsh_leaf_eventually(&s, "lnode1", "true");
    s.c.jsh(
        &s.home,
        &["ssh", "--cluster=leaf", &format!("{login}@lnode2"), "true"],
        "",
    )
    .fails_with("not found in inventory");

    // A root user whose roles map to nothing at the leaf.
    let bob_os = OsUser::create("trb");
    let out =
        s.c.jctl(&[
            "users",
            "add",
            "bob",
            "--roles=auditor",
            &format!("--logins={}", bob_os.name),
        ])
        .ok();
    let bob = s.c.user_home("bob");
    s.c.signup(&bob, &token_from(&out.stdout), PASSWORD).ok();
    s.c.login(&bob, "bob", &[], &format!("{PASSWORD}\n")).ok();
    s.c.jsh(&bob, &["ls", "--cluster=leaf"], "")
        .fails_with("map to no role of this cluster");
    s.c.jsh(
        &bob,
        &[
            "ssh",
            "--cluster=leaf",
            &format!("{}@lnode1", bob_os.name),
            "true",
        ],
        "",
    )
    .fails_with("map to no role of this cluster");

    // Trust is one way: a certificate of the leaf's own user CA is
    // refused by the root's node.
    let carol_os = OsUser::create("trc");
    let carol = leaf.c.signed_up("carol", &carol_os.name);
    leaf.c
        .login(&carol, "carol", &[], &format!("{PASSWORD}\n"))
        .ok();
    let root_node = s.nodes[0].ssh_addr.expect("node1 is direct").to_string();
    refused_by_ssh(direct_ssh(&carol, &carol_os.name, &root_node, "true"));
    // While alice's root certificate opens the leaf's node directly...
    let leaf_node = leaf.nodes[0]
        .ssh_addr
        .expect("lnode1 is direct")
        .to_string();
    direct_ssh(&s.home, &login, &leaf_node, "true").ok();

    // ...until the leaf removes the trust: the same live certificate is
    // refused at once, and the tunnel closes.
    leaf.c.jctl(&["rm", "trusted_cluster/example"]).ok();
    refused_by_ssh(direct_ssh(&s.home, &login, &leaf_node, "true"));
    eventually("the leaf shown offline", Duration::from_secs(10), || {
        (leaf_status(&s).as_deref() == Some("offline")).then_some(())
    });
    let refused = audit(&leaf.c, &["--type=auth"]);
    assert!(
        refused.iter().any(|e| e["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("does not trust cluster \"example\""))),
        "{refused:?}"
    );

    // The root removes the remote cluster: gone from the list, not dialled.
    s.c.jctl(&["rm", "remote_cluster/leaf"]).ok();
    assert!(clusters(&s).iter().all(|c| c["cluster_name"] != "leaf"));
    s.c.jsh(
        &s.home,
        &["ssh", "--cluster=leaf", &format!("{login}@lnode1"), "true"],
        "",
    )
    .fails_with("is not known to this proxy");
    s.c.jctl(&["rm", "remote_cluster/leaf"])
        .fails_with("not found");
}

/// OpenSSH straight to a node's address (no proxy) with the key and
/// certificate of the user whose `~/.jsh` is in `home`.
fn direct_ssh(home: &Path, login: &str, addr: &str, command: &str) -> Out {
    let jsh = home.join(".jsh");
    let key = std::fs::read_dir(jsh.join("keys"))
        .expect("keys")
        .flatten()
        .next()
        .expect("a profile's keys")
        .path();
    let find = |suffix: &str| -> String {
        walk(&key)
            .into_iter()
            .find(|p| p.display().to_string().ends_with(suffix))
            .unwrap_or_else(|| panic!("no *{suffix} under {}", key.display()))
            .display()
            .to_string()
    };
    let cert = find("-cert.pub");
    let private = cert
        .rsplit_once("-ssh/")
        .map(|(dir, _)| dir.to_string())
        .expect("key path");
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let mut cmd = std::process::Command::new("ssh");
    cmd.args([
        "-F",
        "/dev/null",
        "-p",
        port,
        "-i",
        &private,
        "-o",
        &format!("CertificateFile={cert}"),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-l",
        login,
        host,
        command,
    ]);
    run(cmd, "")
}

/// OpenSSH's refusal of the certificate (exit 255, publickey denied).
fn refused_by_ssh(out: Out) {
    assert_eq!(out.code, Some(255), "{}", out.stderr);
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "{}",
        out.stderr
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
