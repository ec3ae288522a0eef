//! The audit log's time index: a query with `since` reads only that
//! window and finds what a full read finds, by the time auth recorded each
//! event (a node's late delivery of old events included), once each; and
//! events stored before the index get their entries at the next start.

use super::nodes::joined_node;
use super::*;
use jaunt_types::audit::{AuditEvent, AuditQuery};

fn exec(time: i64) -> AuditEvent {
    let mut e = AuditEvent::new(uuid::Uuid::new_v4().to_string(), time, "exec", true, "x");
    e.user = Some("bob".into());
    e
}

#[tokio::test]
async fn a_window_of_the_index_finds_what_a_full_read_finds() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let node = joined_node(&auth, "n1").await;
    let before = crate::audit::now_millis();
    // A node that was cut off delivers events from long ago now: they
    // were recorded now, so a window from `before` holds them.
    let old = exec(1_000);
    auth.ingest_node_events(&node, vec![old.clone()])
        .await
        .expect("ingest");
    // Its retry adds nothing.
    auth.ingest_node_events(&node, vec![old.clone()])
        .await
        .expect("retry");
    let recent = crate::audit::now_millis();
    auth.ingest_node_events(&node, vec![exec(recent)])
        .await
        .expect("ingest");
    let execs = |since: Option<i64>, until: Option<i64>| AuditQuery {
        since,
        until,
        event: Some("exec".into()),
        ..Default::default()
    };
    let full = auth.search_events(&execs(None, None)).await.expect("full");
    let window = auth
        .search_events(&execs(Some(before), None))
        .await
        .expect("window");
    assert_eq!(full.len(), 2);
    assert_eq!(window, full, "the same events, once each");
    assert!(window.iter().any(|e| e.id == old.id));
    // A window that ends before them has none; one after them neither.
    let none = auth
        .search_events(&execs(Some(0), Some(before - 1)))
        .await
        .expect("earlier");
    assert!(none.is_empty(), "{none:?}");
    let later = crate::audit::now_millis() + 60_000;
    assert!(
        auth.search_events(&execs(Some(later), None))
            .await
            .expect("later")
            .is_empty()
    );
    // Auth's own events are in the index too.
    let joins = AuditQuery {
        since: Some(0),
        event: Some("node.join".into()),
        ..Default::default()
    };
    assert_eq!(auth.search_events(&joins).await.expect("joins").len(), 1);
}

#[tokio::test]
async fn events_from_before_the_index_get_their_entries_at_start() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    // As a store of an earlier version holds them: an event, no entry,
    // not yet indexed.
    let e = exec(crate::audit::now_millis());
    let key = format!("/events/{:016}/{:020}/{}", e.time, e.seq, e.id);
    auth.store().put(&key, &e, None).await.expect("event");
    auth.store()
        .backend()
        .delete("/cluster/events_indexed")
        .await
        .expect("marker");
    let since = AuditQuery {
        since: Some(0),
        event: Some("exec".into()),
        ..Default::default()
    };
    assert!(auth.search_events(&since).await.expect("search").is_empty());
    drop(auth);
    let again = f.auth(SecondFactor::Off).await;
    let found = again.search_events(&since).await.expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, e.id);
}
