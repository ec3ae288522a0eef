//! Retention: audit events and recordings are stored with their expiry
//! and go when it passes (unreadable at once, deleted by the purge);
//! without a retention they stay.

use super::nodes::joined_node;
use super::*;
use jaunt_types::api::RecordingUpload;
use jaunt_types::audit::{AuditQuery, RecordingMeta};

fn upload(id: &str, start: i64) -> RecordingUpload {
    RecordingUpload {
        meta: RecordingMeta {
            session_id: id.into(),
            user: "bob".into(),
            login: "bob".into(),
            node: "n1".into(),
            node_uuid: None,
            start,
            end: None,
            size: 0,
            truncated: false,
        },
        offset: 0,
        data: "{\"version\": 2}\n".into(),
        complete: true,
    }
}

#[tokio::test]
async fn events_and_recordings_go_when_their_retention_ends() {
    let f = Fixture::new();
    let keep = Ttl::from_secs(2);
    let auth = f
        .auth_with("example", SecondFactor::Off, |c| {
            c.audit_retention = Some(keep);
            c.recording_retention = Some(keep);
        })
        .await
        .expect("auth");
    let node = joined_node(&auth, "n1").await;
    let id = uuid::Uuid::new_v4().to_string();
    auth.put_recording(&node, upload(&id, crate::now()))
        .await
        .expect("stored");
    let joins = AuditQuery {
        event: Some("node.join".into()),
        ..Default::default()
    };
    assert_eq!(auth.search_events(&joins).await.expect("search").len(), 1);
    assert!(auth.recording("admin-only-by-owner", &id).await.is_err());
    assert!(auth.recording("bob", &id).await.is_ok());

    // Past the retention: gone from every read, then from the store.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let events = auth.search_events(&joins).await.expect("search");
        let recording = auth.recording("bob", &id).await;
        if events.is_empty() && recording.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still there: {events:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let purged = auth.purge_expired().await.expect("purge");
    assert!(
        purged >= 3,
        "events, a recording's piece and its metadata: {purged}"
    );
    assert_eq!(
        auth.store()
            .backend()
            .count("/recordings/")
            .await
            .expect("count"),
        0
    );
}

#[tokio::test]
async fn without_a_retention_nothing_expires() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let node = joined_node(&auth, "n1").await;
    let id = uuid::Uuid::new_v4().to_string();
    // A session from long ago stays (and so does its event).
    auth.put_recording(&node, upload(&id, 100))
        .await
        .expect("stored");
    assert_eq!(auth.purge_expired().await.expect("purge"), 0);
    assert!(auth.recording("bob", &id).await.is_ok());
}
