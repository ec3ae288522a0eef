//! Trust between clusters at auth: a leaf registering at its root (the
//! token, the names), and a root user's access at the leaf through the
//! role map.

use super::*;
use crate::trust::{TrustedClusterRecord, trusted_key};
use jaunt_types::api::AuthorizeRequest;
use jaunt_types::trust::{RemoteIdentity, RoleMapping, TrustRegisterRequest};

fn register(token: &str, name: &str) -> TrustRegisterRequest {
    let host_ca = SshCa::generate().expect("host CA");
    let (csr, _) = jaunt_ca::generate_client_csr(name).expect("csr");
    TrustRegisterRequest {
        token: Secret::new(token.to_string()),
        cluster_name: name.to_string(),
        host_ca_keys: vec![host_ca.public_openssh().expect("public")],
        tls_csr_pem: csr,
    }
}

#[tokio::test]
async fn a_leaf_registers_once_with_a_trusted_cluster_token() {
    let f = Fixture::new();
    let root = f.auth(SecondFactor::Off).await;
    let labels: jaunt_types::resources::Labels = [("site".to_string(), "lab".to_string())].into();
    let (token, _) = root
        .add_trusted_cluster_token(None, None, Some(labels.clone()))
        .await
        .expect("token");
    let token = token.token.expose().clone();
    // A node token is not a trusted-cluster token.
    let (node_token, _) = root
        .add_node_token(None, None, None)
        .await
        .expect("node token");
    let err = root
        .register_leaf(register(node_token.token.expose(), "leaf"), "127.0.0.1:1")
        .await
        .expect_err("a node token");
    assert!(err.to_string().contains("invalid or has expired"), "{err}");
    // The root's own name, before the token is spent.
    let err = root
        .register_leaf(register(&token, "example"), "127.0.0.1:1")
        .await
        .expect_err("the root's name");
    assert!(err.to_string().contains("own name"), "{err}");
    // A name that is not a cluster name.
    assert!(
        root.register_leaf(register(&token, "a b"), "x")
            .await
            .is_err()
    );

    let answer = root
        .register_leaf(register(&token, "leaf"), "127.0.0.1:1")
        .await
        .expect("registered");
    assert_eq!(answer.cluster_name, "example");
    assert_eq!(answer.user_ca_keys, root.user_ca_keys().expect("keys"));
    let id = jaunt_ca::client_identity_pem(&answer.tls_cert_pem).expect("certificate");
    assert_eq!(
        (id.user.as_str(), id.kind, id.cluster.as_str()),
        ("leaf", jaunt_ca::IdentityKind::RemoteCluster, "example")
    );
    let listed = root.list_remote_clusters().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), &listed[0].labels),
        ("leaf", &labels)
    );
    assert_eq!(listed[0].status, "offline", "no tunnel yet");

    // One use: spent.
    let err = root
        .register_leaf(register(&token, "other"), "127.0.0.1:1")
        .await
        .expect_err("reused");
    assert!(err.to_string().contains("invalid or has expired"), "{err}");
    // A second leaf of the same name, with a fresh token.
    let (fresh, _) = root
        .add_trusted_cluster_token(None, Some(2), None)
        .await
        .expect("token");
    let err = root
        .register_leaf(register(fresh.token.expose(), "leaf"), "127.0.0.1:1")
        .await
        .expect_err("taken");
    assert!(err.to_string().contains("exists already"), "{err}");

    // Heartbeats while it stands (renewing the certificate when asked,
    // taking the leaf's host CA keys when they change, answering with the
    // root's CA keys); refused once removed.
    let beat = jaunt_types::trust::TrustHeartbeatRequest::default();
    let answer = root
        .leaf_heartbeat("leaf", &beat, None)
        .await
        .expect("beat");
    assert_eq!(answer.tls_cert_pem, None);
    assert_eq!(answer.user_ca_keys, root.user_ca_keys().expect("keys"));
    assert_eq!(
        answer.host_ca_keys,
        root.authorities().host.public_keys().expect("keys")
    );
    let rotated_host = vec![
        SshCa::generate()
            .expect("key")
            .public_openssh()
            .expect("pub"),
        SshCa::generate()
            .expect("key")
            .public_openssh()
            .expect("pub"),
    ];
    let changed = jaunt_types::trust::TrustHeartbeatRequest {
        host_ca_keys: rotated_host.clone(),
        ..Default::default()
    };
    root.leaf_heartbeat("leaf", &changed, None)
        .await
        .expect("beat");
    let listed = root.remote_clusters().await.expect("remote clusters");
    assert_eq!(listed[0].host_ca_keys, rotated_host);
    let bad = jaunt_types::trust::TrustHeartbeatRequest {
        host_ca_keys: vec!["ssh-ed25519 not-a-key".into()],
        ..Default::default()
    };
    assert!(root.leaf_heartbeat("leaf", &bad, None).await.is_err());
    let (csr, _) = jaunt_ca::generate_client_csr("leaf").expect("csr");
    let renewal = jaunt_types::trust::TrustHeartbeatRequest {
        tls_csr_pem: Some(csr),
        ..Default::default()
    };
    let renewed = root
        .leaf_heartbeat("leaf", &renewal, None)
        .await
        .expect("beat")
        .tls_cert_pem
        .expect("a certificate");
    let id = jaunt_ca::client_identity_pem(&renewed).expect("certificate");
    assert_eq!(
        (id.user.as_str(), id.kind),
        ("leaf", jaunt_ca::IdentityKind::RemoteCluster)
    );
    root.remove_remote_cluster("leaf").await.expect("removed");
    assert!(root.leaf_heartbeat("leaf", &beat, None).await.is_err());
    assert!(root.remove_remote_cluster("leaf").await.is_err());
}

/// Stores a trust in root `name` as a leaf's auth would after registering.
async fn trusting(leaf: &AuthServer, name: &str, enabled: bool, role_map: Vec<RoleMapping>) {
    let (_, key) = jaunt_ca::generate_client_csr("leaf").expect("key");
    let record = TrustedClusterRecord {
        name: name.into(),
        enabled,
        proxy_addr: "root.example.com:3080".into(),
        ca_pin: "sha256:00".into(),
        role_map,
        user_ca_keys: vec![
            SshCa::generate()
                .expect("ca")
                .public_openssh()
                .expect("pub"),
        ],
        host_ca_keys: Vec::new(),
        tls_ca_pem: String::new(),
        tls_cert_pem: String::new(),
        tls_key_pem: key,
        created: 0,
    };
    leaf.store()
        .put(&trusted_key(name), &record, None)
        .await
        .expect("stored");
}

#[tokio::test]
async fn a_root_users_access_is_what_their_roles_map_to() {
    let f = Fixture::new();
    let leaf = f.auth_named("leaf", SecondFactor::Off).await.expect("auth");
    let prod: jaunt_types::resources::Labels = [("env".to_string(), "prod".to_string())].into();
    let node = leaf
        .add_openssh_node("db", "127.0.0.1:22", prod)
        .await
        .expect("node");
    let map = vec![
        RoleMapping {
            remote: "access".into(),
            local: vec!["access".into()],
        },
        RoleMapping {
            remote: "^admin-(.*)$".into(),
            local: vec!["$1".into()],
        },
    ];
    trusting(&leaf, "root", true, map.clone()).await;
    let ask = |roles: &[&str], login: &str| AuthorizeRequest {
        user: "alice".into(),
        login: login.into(),
        remote: Some(RemoteIdentity {
            cluster: "root".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            logins: vec!["alice".into()],
        }),
    };

    // access -> access: logins from the carried trait, every node.
    let yes = leaf
        .authorize_login(&node.uuid, &ask(&["access"], "alice"))
        .await
        .expect("asked");
    assert!(yes.allowed, "{}", yes.reason);
    assert_eq!(yes.roles, ["access"]);
    let no = leaf
        .authorize_login(&node.uuid, &ask(&["access"], "root"))
        .await
        .expect("asked");
    assert!(!no.allowed);
    // admin-editor -> editor by the regex's capture.
    let admin = ask(&["admin-editor", "admin-auditor"], "alice")
        .remote
        .expect("remote");
    let checker = leaf.remote_checker("alice", &admin).await.expect("mapped");
    assert_eq!(checker.role_names(), ["auditor", "editor"]);
    // Roles that map to nothing here.
    let none = leaf
        .authorize_login(&node.uuid, &ask(&["auditor"], "alice"))
        .await
        .expect("asked");
    assert!(!none.allowed);
    assert!(
        none.reason.contains("map to no role of this cluster"),
        "{}",
        none.reason
    );
    // A cluster not trusted, and a trust disabled.
    let mut stranger = ask(&["access"], "alice");
    if let Some(r) = stranger.remote.as_mut() {
        r.cluster = "elsewhere".into();
    }
    let refused = leaf
        .authorize_login(&node.uuid, &stranger)
        .await
        .expect("asked");
    assert!(
        refused
            .reason
            .contains("does not trust cluster \"elsewhere\""),
        "{}",
        refused.reason
    );
    trusting(&leaf, "root", false, map).await;
    let off = leaf
        .authorize_login(&node.uuid, &ask(&["access"], "alice"))
        .await
        .expect("asked");
    assert!(!off.allowed, "a disabled trust admits no one");
    assert!(leaf.trusted_user_cas().await.expect("cas").is_empty());
    // A local user of the same name is not the root's: their roles are
    // their own (none here: the user does not exist).
    let local = AuthorizeRequest {
        remote: None,
        ..ask(&["access"], "alice")
    };
    assert!(
        !leaf
            .authorize_login(&node.uuid, &local)
            .await
            .expect("asked")
            .allowed
    );
}

/// A root's rotated CA keys, from its heartbeat answer, reach the leaf's
/// nodes at once (the cached list is dropped); bad keys change nothing.
#[tokio::test]
async fn a_roots_rotated_keys_reach_the_leafs_nodes() {
    let f = Fixture::new();
    let leaf = f.auth_named("leaf", SecondFactor::Off).await.expect("auth");
    trusting(&leaf, "example", true, Vec::new()).await;
    let before = leaf.trusted_user_cas().await.expect("cas");
    assert_eq!(before[0].keys.len(), 1);
    let key = || {
        SshCa::generate()
            .expect("ca")
            .public_openssh()
            .expect("pub")
    };
    let (user, host) = (vec![before[0].keys[0].clone(), key()], vec![key()]);
    assert!(
        leaf.update_root_cas("example", vec!["nonsense".into()], host.clone(), None)
            .await
            .is_err()
    );
    assert!(
        !leaf
            .update_root_cas("example", user.clone(), host, None)
            .await
            .expect("updated"),
        "the TLS CAs did not change"
    );
    let after = leaf.trusted_user_cas().await.expect("cas");
    assert_eq!(after[0].keys, user);
}
