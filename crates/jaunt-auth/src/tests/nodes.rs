//! Nodes at auth: joining (with labels a token pins), heartbeats and
//! their writes, running sessions, and what nodes deliver (events and
//! recordings).

use super::*;

#[tokio::test]
async fn a_token_can_pin_the_labels_of_the_nodes_that_join_with_it() {
    use jaunt_types::api::{HeartbeatRequest, NodeJoinRequest};
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let pinned: jaunt_types::resources::Labels = [("env".to_string(), "dev".to_string())].into();
    let (token, _) = auth
        .add_node_token(None, None, Some(pinned.clone()))
        .await
        .expect("token");
    assert_eq!(token.labels.as_ref(), Some(&pinned));
    let key = jaunt_ca::ssh_key::PrivateKey::random(
        &mut jaunt_ca::ssh_key::rand_core::UnwrapErr(jaunt_ca::ssh_key::getrandom::SysRng),
        jaunt_ca::ssh_key::Algorithm::Ed25519,
    )
    .expect("key");
    let host_public_key = key.public_key().to_openssh().expect("public");
    let (csr, _) = jaunt_ca::generate_client_csr("n").expect("csr");
    // The node asks for wider labels: a production one, and another.
    let wider: jaunt_types::resources::Labels = [
        ("env".to_string(), "prod".to_string()),
        ("team".to_string(), "db".to_string()),
    ]
    .into();
    let joined = auth
        .join_node(NodeJoinRequest {
            token: token.token.clone(),
            name: "n".into(),
            labels: wider.clone(),
            addr: None,
            host_public_key: host_public_key.clone(),
            tls_csr_pem: csr,
            sub_kind: None,
            additional_principals: Vec::new(),
        })
        .await
        .expect("join");
    let stored = auth
        .node(&joined.uuid)
        .await
        .expect("node")
        .expect("listed");
    assert_eq!(stored.labels, pinned);
    // Nor can a heartbeat change them.
    auth.heartbeat(
        &joined.uuid,
        HeartbeatRequest {
            name: "n".into(),
            labels: wider,
            addr: None,
            host_public_key,
            host_cert_valid_before: u64::MAX,
            host_cert_ca: None,
            tls_csr_pem: None,
        },
        None,
    )
    .await
    .expect("heartbeat");
    let stored = auth
        .node(&joined.uuid)
        .await
        .expect("node")
        .expect("listed");
    assert_eq!(stored.labels, pinned);
    // Bad labels on a token are refused when it is made.
    let bad: jaunt_types::resources::Labels = [("*".to_string(), "x".to_string())].into();
    assert!(auth.add_node_token(None, None, Some(bad)).await.is_err());
}

/// Joins a node named `name` with host key `host_public_key` through a
/// fresh token: a Jaunt node (with a TLS CSR) or, with `sub_kind`, an
/// agentless one (at 127.0.0.1:22).
pub(super) async fn join_as(
    auth: &AuthServer,
    name: &str,
    host_public_key: &str,
    sub_kind: Option<jaunt_types::api::NodeSubKind>,
) -> jaunt_types::api::NodeJoinResponse {
    let (token, _) = auth.add_node_token(None, None, None).await.expect("token");
    auth.join_node(jaunt_types::api::NodeJoinRequest {
        token: token.token,
        name: name.into(),
        labels: Default::default(),
        addr: sub_kind.map(|_| "127.0.0.1:22".to_string()),
        host_public_key: host_public_key.to_string(),
        tls_csr_pem: match sub_kind {
            None => generate_client_csr(name).expect("csr").0,
            Some(_) => String::new(),
        },
        sub_kind,
        additional_principals: Vec::new(),
    })
    .await
    .expect("join")
}

/// Joins a node named `name` through a fresh token; its UUID.
pub(super) async fn joined_node(auth: &AuthServer, name: &str) -> String {
    let key = jaunt_ca::ssh_key::PrivateKey::random(
        &mut jaunt_ca::ssh_key::rand_core::UnwrapErr(jaunt_ca::ssh_key::getrandom::SysRng),
        jaunt_ca::ssh_key::Algorithm::Ed25519,
    )
    .expect("key");
    let public = key.public_key().to_openssh().expect("openssh");
    join_as(auth, name, &public, None).await.uuid
}

#[tokio::test]
async fn running_sessions_are_replaced_and_unchanged_ones_not_rewritten() {
    use jaunt_types::audit::ActiveSession;
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "bob", &["bob"]).await;
    let node = joined_node(&auth, "n1").await;
    let session = |kind: &str| ActiveSession {
        id: uuid::Uuid::new_v4().to_string(),
        user: "bob".into(),
        login: "bob".into(),
        node: "claimed".into(),
        node_uuid: "claimed".into(),
        kind: kind.into(),
        start: 5,
        client: "127.0.0.1:1".into(),
    };
    let revisions = || async {
        let mut r: Vec<(String, i64)> = auth
            .store
            .list::<ActiveSession>("/sessions/active/")
            .await
            .expect("list")
            .into_iter()
            .map(|v| (v.value.id, v.revision))
            .collect();
        r.sort();
        r
    };
    let (a, b) = (session("exec"), session("shell"));
    auth.set_node_sessions(&node, vec![a.clone()])
        .await
        .expect("report");
    let first = revisions().await;
    auth.set_node_sessions(&node, vec![a.clone(), b.clone()])
        .await
        .expect("report");
    let second = revisions().await;
    assert_eq!(second.len(), 2);
    assert!(
        second.contains(&first[0]),
        "unchanged session rewritten: {first:?} {second:?}"
    );
    let listed = auth.sessions_for("bob").await.expect("list");
    assert!(
        listed.iter().all(|s| s.node == "n1" && s.node_uuid == node),
        "{listed:?}"
    );
    // A changed entry is written again; a gone one is removed.
    let mut b2 = b.clone();
    b2.kind = "sftp".into();
    auth.set_node_sessions(&node, vec![b2])
        .await
        .expect("report");
    let listed = auth.sessions_for("bob").await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].kind.as_str()),
        (b.id.as_str(), "sftp")
    );
    // Refused: a malformed ID, and a reporter not in the inventory.
    let mut bad = session("exec");
    bad.id = "../x".into();
    assert!(matches!(
        auth.set_node_sessions(&node, vec![bad]).await,
        Err(AuthError::BadRequest(_))
    ));
    assert!(matches!(
        auth.set_node_sessions("not-a-node", vec![]).await,
        Err(AuthError::AccessDenied(_))
    ));
}

#[tokio::test]
async fn heartbeats_write_the_record_only_when_it_changed_or_ages() {
    use crate::records::{NODES, NodeRecord};
    use jaunt_types::api::HeartbeatRequest;
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let uuid = joined_node(&auth, "n1").await;
    let key = format!("{NODES}{uuid}");
    let stored = || async {
        auth.store
            .get::<NodeRecord>(&key)
            .await
            .expect("get")
            .expect("stored")
    };
    let joined = stored().await.value;
    let beat = |labels: jaunt_types::resources::Labels| HeartbeatRequest {
        name: "n1".into(),
        labels,
        addr: None,
        host_public_key: joined.host_public_key.clone(),
        host_cert_valid_before: (now() + 86_400) as u64,
        host_cert_ca: None,
        tls_csr_pem: None,
    };
    // The first heartbeat records the interval the node was told.
    let resp = auth
        .heartbeat(&uuid, beat(Default::default()), None)
        .await
        .expect("beat");
    assert_eq!(resp.heartbeat_secs, 15);
    let first = stored().await;
    assert_eq!(first.value.heartbeat_secs, 15);
    // As if stored 20 s ago: younger than half the 60 s window, not rewritten,
    // yet this instance reports the heartbeat it just took.
    let mut aged = first.value.clone();
    aged.last_seen -= 20;
    let aged_rev = auth.store.put(&key, &aged, None).await.expect("age");
    auth.heartbeat(&uuid, beat(Default::default()), None)
        .await
        .expect("beat");
    assert_eq!(
        stored().await.revision,
        aged_rev,
        "unchanged heartbeat written"
    );
    let seen = auth.node(&uuid).await.expect("node").expect("known");
    assert!(
        seen.last_seen >= now() - 1,
        "{} vs {}",
        seen.last_seen,
        now()
    );
    assert!(auth.all_nodes().await.expect("all")[0].last_seen >= now() - 1);
    // 30 s old: written, so other instances keep seeing the node online.
    aged.last_seen -= 10;
    let aged_rev = auth.store.put(&key, &aged, None).await.expect("age");
    auth.heartbeat(&uuid, beat(Default::default()), None)
        .await
        .expect("beat");
    let refreshed = stored().await;
    assert!(refreshed.revision > aged_rev);
    assert!(refreshed.value.last_seen >= now() - 1);
    // A change the node reports is written at once.
    let labels: jaunt_types::resources::Labels = [("env".to_string(), "prod".to_string())].into();
    auth.heartbeat(&uuid, beat(labels.clone()), None)
        .await
        .expect("beat");
    assert_eq!(stored().await.value.labels, labels);
    // Refused: a node not in the inventory.
    assert!(matches!(
        auth.heartbeat("not-a-node", beat(Default::default()), None)
            .await,
        Err(AuthError::AccessDenied(_))
    ));
}

#[tokio::test]
async fn a_node_told_a_longer_interval_gets_a_longer_offline_window() {
    use crate::records::NodeRecord;
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let node = |last_seen: i64, heartbeat_secs: u64| NodeRecord {
        uuid: "u".into(),
        name: "n".into(),
        labels: Default::default(),
        addr: None,
        host_public_key: String::new(),
        last_seen,
        heartbeat_secs,
        labels_pinned: false,
        sub_kind: None,
    };
    assert!(auth.is_online(&node(now() - 60, 15)));
    assert!(!auth.is_online(&node(now() - 61, 15)));
    assert!(!auth.is_online(&node(now() - 61, 0)));
    assert!(auth.is_online(&node(now() - 199, 50)));
    assert!(!auth.is_online(&node(now() - 201, 50)));
}

#[tokio::test]
async fn node_events_and_recordings_are_checked_and_stored_once() {
    use jaunt_types::api::RecordingUpload;
    use jaunt_types::audit::{AuditEvent, AuditQuery, RecordingMeta};
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "bob", &["bob"]).await;
    signed_up(&auth, "eve", &["eve"]).await;
    let nodes = [
        joined_node(&auth, "n1").await,
        joined_node(&auth, "n2").await,
    ];
    // Node events: node identity and codes are auth's, IDs dedupe.
    let mut e = AuditEvent::new(uuid::Uuid::new_v4().to_string(), 5, "exec", false, "x");
    e.user = Some("bob".into());
    e.node = Some("lies".into());
    e.code = "bogus".into();
    auth.ingest_node_events(&nodes[0], vec![e.clone(), e.clone()])
        .await
        .expect("ingest");
    auth.ingest_node_events(&nodes[0], vec![e.clone()])
        .await
        .expect("retry");
    let stored = auth
        .search_events(&AuditQuery {
            event: Some("exec".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0].code, "T3002E");
    // Auth stamps when it received the event: the node said 1970, and a
    // query for the last minute still finds it (a node cannot hide an
    // event in the past, or in the future).
    let received = stored[0].received.expect("received time");
    assert!((received - crate::audit::now_millis()).abs() < 60_000);
    assert!(
        stored[0].text_line().contains(" received="),
        "{}",
        stored[0].text_line()
    );
    let mut future = AuditEvent::new(
        uuid::Uuid::new_v4().to_string(),
        i64::MAX / 2,
        "exec",
        true,
        "x",
    );
    future.received = Some(1);
    auth.ingest_node_events(&nodes[0], vec![future.clone()])
        .await
        .expect("ingest");
    let recent = auth
        .search_events(&AuditQuery {
            event: Some("exec".into()),
            since: Some(crate::audit::now_millis() - 60_000),
            until: Some(crate::audit::now_millis()),
            ..Default::default()
        })
        .await
        .expect("search");
    let ids: Vec<&str> = recent.iter().map(|e| e.id.as_str()).collect();
    assert!(
        ids.contains(&e.id.as_str()) && ids.contains(&future.id.as_str()),
        "{recent:#?}"
    );
    assert_eq!(stored[0].node.as_deref(), Some("n1"));
    assert_eq!(stored[0].cluster, "example");
    let unknown = AuditEvent::new(uuid::Uuid::new_v4().to_string(), 5, "nope", true, "x");
    assert!(
        auth.ingest_node_events(&nodes[0], vec![unknown])
            .await
            .is_err()
    );
    assert!(auth.ingest_node_events("not-a-node", vec![]).await.is_err());
    // A node cannot write auth's events into the log.
    for name in ["user.login", "cert.create", "user.create", "node.join"] {
        let forged_id = uuid::Uuid::new_v4().to_string();
        let forged = AuditEvent::new(forged_id.clone(), 5, name, true, "x");
        let err = auth
            .ingest_node_events(&nodes[0], vec![e.clone(), forged])
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("written by auth"), "{name}: {err}");
        let stored = auth
            .search_events(&AuditQuery {
                event: Some(name.into()),
                ..Default::default()
            })
            .await
            .expect("search");
        assert!(
            stored.iter().all(|s| s.id != forged_id),
            "{name}: {stored:#?}"
        );
    }

    // Recordings: pieces in order, a retried piece once, a gap refused,
    // another node refused, only the owner (or auditors) may read.
    let id = uuid::Uuid::new_v4().to_string();
    let meta = RecordingMeta {
        session_id: id.clone(),
        user: "bob".into(),
        login: "bob".into(),
        node: "n1".into(),
        node_uuid: None,
        start: 100,
        end: None,
        size: 0,
        truncated: false,
    };
    let piece = |offset: u64, data: &str, complete: bool| RecordingUpload {
        meta: meta.clone(),
        offset,
        data: data.into(),
        complete,
    };
    assert_eq!(
        auth.put_recording(&nodes[0], piece(0, "ab", false))
            .await
            .expect("1"),
        2
    );
    assert_eq!(
        auth.put_recording(&nodes[0], piece(0, "abcd", false))
            .await
            .expect("2"),
        4
    );
    assert_eq!(
        auth.put_recording(&nodes[0], piece(2, "cd", false))
            .await
            .expect("again"),
        4
    );
    assert!(
        auth.put_recording(&nodes[0], piece(9, "z", false))
            .await
            .is_err()
    );
    assert!(
        auth.put_recording(&nodes[1], piece(4, "e", true))
            .await
            .is_err()
    );
    // Nor a node that joined under the recording node's name: ownership
    // is by UUID, which auth sets, whatever the piece says.
    let namesake = joined_node(&auth, "n1").await;
    let mut claimed = piece(4, "e", true);
    claimed.meta.node_uuid = Some(nodes[0].clone());
    let err = auth
        .put_recording(&namesake, claimed)
        .await
        .expect_err("namesake refused");
    assert!(err.to_string().contains("another node"), "{err}");
    let (m, data) = auth.recording("bob", &id).await.expect("own");
    assert_eq!(data, "abcd");
    assert_eq!(m.size, 4);
    let err = auth.recording("eve", &id).await.expect_err("not eve's");
    assert!(err.to_string().contains("no recording"), "{err}");
    assert!(
        auth.recordings_for("eve", None)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        auth.recordings_for("bob", None).await.expect("list").len(),
        1
    );
    auth.update_user("eve", Some(vec!["access".into(), "auditor".into()]), None)
        .await
        .expect("auditor");
    auth.recording("eve", &id).await.expect("auditor reads");
}
