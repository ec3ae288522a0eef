//! Retention: audit events and recordings are stored with their expiry
//! and go when it passes (unreadable at once, deleted by the purge);
//! without a retention they stay.

use super::nodes::joined_node;
use super::*;
use jaunt_types::api::RecordingUpload;
use jaunt_types::audit::AuditQuery;

fn upload(id: &str, start: i64) -> RecordingUpload {
    recording_piece(id, start, 0, "{\"version\": 2}\n", true)
}

/// Auth with both retentions set to `keep`, a node, and a recording of a
/// session that started now.
async fn with_retention(f: &Fixture, keep: Ttl) -> (AuthServer, String) {
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
    (auth, id)
}

#[tokio::test]
async fn events_and_recordings_are_stored_with_their_expiry() {
    let f = Fixture::new();
    let day = 86_400;
    let (auth, id) = with_retention(&f, Ttl::from_secs(day)).await;
    let joins = AuditQuery {
        event: Some("node.join".into()),
        ..Default::default()
    };
    assert_eq!(auth.search_events(&joins).await.expect("search").len(), 1);
    assert!(auth.recording("bob", &id).await.is_ok());
    // Every event, its index entry, and every piece of the recording
    // expire a day after they were recorded (now, give or take the test).
    let now = crate::now();
    for prefix in ["/events/", "/events_at/", "/recordings/"] {
        let items = auth.store().backend().list(prefix).await.expect("list");
        assert!(!items.is_empty(), "{prefix}");
        for item in items {
            let expires = item.expires.expect("an expiry");
            assert!(
                (now + day as i64 - 60..=now + day as i64).contains(&expires),
                "{}: {expires} (now {now})",
                item.key
            );
        }
    }
}

/// A retention already over when a record is written (0 s: the store
/// counts a record as gone once its expiry is reached) shows what happens
/// when any retention ends, without waiting for one.
#[tokio::test]
async fn past_their_retention_they_are_unreadable_and_purged() {
    let f = Fixture::new();
    let (auth, id) = with_retention(&f, Ttl::from_secs(0)).await;
    let joins = AuditQuery {
        event: Some("node.join".into()),
        ..Default::default()
    };
    assert!(auth.search_events(&joins).await.expect("search").is_empty());
    let since = AuditQuery {
        since: Some(0),
        ..joins
    };
    assert!(auth.search_events(&since).await.expect("search").is_empty());
    assert!(auth.recording("bob", &id).await.is_err());
    let purged = auth.purge_expired().await.expect("purge");
    assert!(
        purged >= 4,
        "events, their index entries, a recording's piece and metadata: {purged}"
    );
    for prefix in ["/events/", "/events_at/", "/recordings/"] {
        assert_eq!(
            auth.store().backend().count(prefix).await.expect("count"),
            0,
            "{prefix}"
        );
    }
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
