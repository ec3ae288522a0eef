use super::*;
use jaunt_types::resources::Role;

fn role(yaml: &str) -> Role {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("bad test role: {e}\n{yaml}"))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn checker(roles: Vec<Role>, logins: &[&str]) -> AccessChecker {
    AccessChecker::new(
        "alice",
        roles,
        Traits {
            logins: logins.iter().map(|s| s.to_string()).collect(),
        },
    )
}

const DEV: &str = r#"
kind: role
metadata: {name: dev}
spec:
  allow:
    logins: ['{{internal.logins}}', deploy]
    node_labels:
      env: [dev, 'staging-*']
      team: db
  options: {max_session_ttl: 8h, port_forwarding: false}
"#;

const NO_PROD_ROOT: &str = r#"
kind: role
metadata: {name: no-prod-root}
spec:
  deny:
    logins: [root]
    node_labels: {env: prod}
"#;

const ALL_NODES_ROOT: &str = r#"
kind: role
metadata: {name: all-root}
spec:
  allow:
    logins: [root, ubuntu]
    node_labels: {'*': '*'}
  options: {forward_agent: true}
"#;

#[test]
fn login_decisions_table() {
    let dev = checker(vec![role(DEV)], &["alice"]);
    let both = checker(vec![role(ALL_NODES_ROOT), role(NO_PROD_ROOT)], &[]);
    let dev_db = labels(&[("env", "dev"), ("team", "db")]);
    let staging_db = labels(&[("env", "staging-eu"), ("team", "db")]);
    let prod_db = labels(&[("env", "prod"), ("team", "db")]);
    let dev_web = labels(&[("env", "dev"), ("team", "web")]);
    let none = labels(&[]);

    type Case<'a> = (&'a AccessChecker, &'a str, &'a Labels, Result<(), &'a str>);
    let table: Vec<Case> = vec![
        (&dev, "alice", &dev_db, Ok(())),
        (&dev, "deploy", &staging_db, Ok(())),
        (&dev, "alice", &prod_db, Err("labels")),
        (&dev, "alice", &dev_web, Err("labels")),
        (&dev, "alice", &none, Err("labels")),
        (&dev, "root", &dev_db, Err("not allowed")),
        (&dev, "bob", &dev_db, Err("not allowed")),
        // Deny wins: the deny selector matches prod, so no login works there.
        (&both, "root", &prod_db, Err("denied by role")),
        (&both, "ubuntu", &prod_db, Err("denied by role")),
        (&both, "root", &dev_db, Err("denied by role")),
        (&both, "ubuntu", &dev_db, Ok(())),
        (&both, "ubuntu", &none, Ok(())),
    ];
    for (i, (c, login, l, want)) in table.into_iter().enumerate() {
        let got = c.check_login(login, l);
        match (want, got) {
            (Ok(()), Ok(())) => {}
            (Err(fragment), Err(e)) => assert!(
                e.to_string().contains(fragment),
                "case {i}: {login} got {e}, want {fragment}"
            ),
            (want, got) => panic!("case {i}: {login} on {l:?}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn principals_expand_traits_and_drop_denied() {
    let c = checker(vec![role(DEV), role(NO_PROD_ROOT)], &["alice", "root"]);
    assert_eq!(c.logins(), vec!["alice", "deploy"]);
    let presets = preset_roles();
    let access = checker(presets.clone(), &["alice", "ubuntu"]);
    assert_eq!(access.logins(), vec!["alice", "ubuntu"]);
    let deny_all = role("kind: role\nmetadata: {name: x}\nspec:\n  deny:\n    logins: ['*']\n");
    let none = checker(vec![presets[0].clone(), deny_all], &["alice"]);
    assert!(none.logins().is_empty());
}

#[test]
fn options_combine_strictly() {
    let dev = role(DEV);
    let all = role(ALL_NODES_ROOT);
    let c = checker(vec![dev.clone(), all.clone()], &[]);
    assert_eq!(c.max_session_ttl().as_secs(), 8 * 3600);
    assert!(!c.port_forwarding(), "one role turning it off wins");
    assert!(c.forward_agent(), "one role turning it on is enough");
    let only_all = checker(vec![all], &[]);
    assert_eq!(only_all.max_session_ttl(), DEFAULT_MAX_SESSION_TTL);
    assert!(only_all.port_forwarding());
    assert_eq!(only_all.grant_ttl(Some(Ttl::from_secs(60))).as_secs(), 60);
    assert_eq!(
        only_all.grant_ttl(Some(Ttl::from_secs(48 * 3600))),
        DEFAULT_MAX_SESSION_TTL
    );
    let nobody = checker(vec![], &[]);
    assert!(!nobody.port_forwarding());
    assert!(!nobody.forward_agent());
    // Caps: the smallest any role sets; none when no role sets one.
    assert_eq!(nobody.max_sessions(), None);
    let capped = |n: u32| {
        role(&format!(
            "kind: role\nmetadata: {{name: c{n}}}\nspec:\n  options: {{max_sessions: {n}, max_connections: {n}}}\n"
        ))
    };
    let c = checker(vec![capped(5), role(DEV), capped(2)], &[]);
    assert_eq!((c.max_sessions(), c.max_connections()), (Some(2), Some(2)));
    assert_eq!(checker(vec![role(DEV)], &[]).max_connections(), None);
    let pinned = role("kind: role\nmetadata: {name: p}\nspec:\n  options: {pin_source_ip: true}\n");
    assert!(
        checker(vec![role(DEV), pinned], &[]).pin_source_ip(),
        "one role pins"
    );
    assert!(!checker(vec![role(DEV)], &[]).pin_source_ip());
}

#[test]
fn node_visibility() {
    let c = checker(vec![role(DEV)], &["alice"]);
    assert!(c.node_visible(&labels(&[("env", "dev"), ("team", "db")])));
    assert!(!c.node_visible(&labels(&[("env", "prod"), ("team", "db")])));
    let d = checker(vec![role(ALL_NODES_ROOT), role(NO_PROD_ROOT)], &[]);
    assert!(d.node_visible(&labels(&[])));
    assert!(!d.node_visible(&labels(&[("env", "prod")])));
}

#[test]
fn rules() {
    let presets = preset_roles();
    let editor = checker(vec![presets[1].clone()], &[]);
    let access = checker(vec![presets[0].clone()], &[]);
    let auditor = checker(vec![presets[2].clone()], &[]);
    assert!(editor.can("user", "create"));
    assert!(auditor.can("event", "list"));
    assert!(!auditor.can("user", "create"));
    assert!(!access.can("session", "list"));
    assert!(auditor.can("recording", "read"));
    assert!(!access.can("event", "list"));
}

#[test]
fn globs() {
    let table = [
        ("*", "", true),
        ("*", "anything", true),
        ("prod", "prod", true),
        ("prod", "prod2", false),
        ("prod*", "prod-eu", true),
        ("*-eu", "prod-eu", true),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxbyy", false),
        ("", "", true),
        ("", "x", false),
    ];
    for (p, t, want) in table {
        assert_eq!(glob_match(p, t), want, "{p} vs {t}");
    }
}

#[test]
fn presets_are_valid() {
    let names: Vec<String> = preset_roles()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    assert_eq!(names, vec!["access", "editor", "auditor"]);
    for r in preset_roles() {
        assert_eq!(r.validate(), Ok(()));
    }
}

/// What the preset roles may do through `jctl --proxy`: an editor
/// everything, an auditor only reading the audit log, access nothing; a
/// role's rule for one resource and verb allows just that.
#[test]
fn remote_admin_requests_by_role() {
    use jaunt_types::admin::{AdminRequest, CaKind};
    let presets = preset_roles();
    let [access, editor, auditor] = [0, 1, 2].map(|i| checker(vec![presets[i].clone()], &[]));
    let allowed =
        |c: &AccessChecker, req: &AdminRequest| req.permissions().iter().all(|(r, v)| c.can(r, v));
    let requests = [
        AdminRequest::Status,
        AdminRequest::UserList,
        AdminRequest::UserRemove { name: "b".into() },
        AdminRequest::TokenList,
        AdminRequest::NodeList,
        AdminRequest::LockList,
        AdminRequest::CaExport { kind: CaKind::User },
        AdminRequest::RemoteClusterList,
        AdminRequest::AuditSearch {
            query: Default::default(),
        },
    ];
    for req in &requests {
        assert!(!req.permissions().is_empty(), "{req:?}");
        assert!(allowed(&editor, req), "{req:?}");
        assert!(!allowed(&access, req), "{req:?}");
        let audit = matches!(req, AdminRequest::AuditSearch { .. });
        assert_eq!(allowed(&auditor, req), audit, "{req:?}");
    }
    let lister = checker(
        vec![role(
            "kind: role\nversion: v1\nmetadata: {name: lister}\nspec:\n  allow:\n    rules:\n    - resources: [node]\n      verbs: [list, read]\n",
        )],
        &[],
    );
    assert!(allowed(&lister, &AdminRequest::NodeList));
    assert!(!allowed(
        &lister,
        &AdminRequest::NodeRemove { node: "n".into() }
    ));
    assert!(!allowed(&lister, &AdminRequest::UserList));
}
