//! The audit log's indexes: a query with `since` reads only that window
//! and finds what a full read finds, by the time auth recorded each event
//! (a node's late delivery of old events included), once each; a filter by
//! user, session or type, with or without a limit, finds what filtering
//! every event finds; and events stored before the indexes get their
//! entries at the next start.

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
        .delete(crate::audit::INDEXED)
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
    // By each of its fields too.
    let bobs = AuditQuery {
        user: Some("bob".into()),
        limit: Some(10),
        ..Default::default()
    };
    assert_eq!(again.search_events(&bobs).await.expect("search").len(), 1);
}

#[tokio::test]
async fn each_filter_reads_its_own_index_and_limit_takes_the_newest() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let start = crate::audit::now_millis();
    // Three users (one with a slash and a long name), two sessions, two
    // types, recorded one millisecond apart.
    let odd = format!("ops/{}", "x".repeat(3000));
    let mut written = Vec::new();
    for i in 0..30i64 {
        let mut e = AuditEvent::new(
            uuid::Uuid::new_v4().to_string(),
            start - 100_000 + i,
            if i % 3 == 0 { "session.start" } else { "exec" },
            true,
            "x",
        );
        e.user = Some(["bob", "carol", odd.as_str()][(i % 3) as usize].to_string());
        e.session_id = Some(format!("s{}", i % 2));
        auth.emit(e.clone()).await.expect("emit");
        written.push(e);
    }
    let by = |q: AuditQuery| {
        let expect: Vec<String> = q
            .apply(written.iter().cloned())
            .into_iter()
            .map(|e| e.id)
            .collect();
        (q, expect)
    };
    let cases = [
        by(AuditQuery {
            user: Some("bob".into()),
            ..Default::default()
        }),
        by(AuditQuery {
            user: Some(odd.clone()),
            limit: Some(3),
            ..Default::default()
        }),
        by(AuditQuery {
            session_id: Some("s1".into()),
            event: Some("exec".into()),
            ..Default::default()
        }),
        by(AuditQuery {
            event: Some("session.start".into()),
            since: Some(start - 100_000 + 10),
            until: Some(start - 100_000 + 20),
            ..Default::default()
        }),
        by(AuditQuery {
            user: Some("carol".into()),
            session_id: Some("s0".into()),
            limit: Some(2),
            ..Default::default()
        }),
        by(AuditQuery {
            limit: Some(4),
            since: Some(start - 100_000),
            ..Default::default()
        }),
    ];
    for (query, expect) in cases {
        let got: Vec<String> = auth
            .search_events(&query)
            .await
            .expect("search")
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert!(!expect.is_empty(), "{query:?} matches something");
        assert_eq!(got, expect, "{query:?}");
    }
    // The last N are the newest: bob's last two of his ten.
    let last = auth
        .search_events(&AuditQuery {
            user: Some("bob".into()),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(
        last.iter().map(|e| e.time).collect::<Vec<_>>(),
        [start - 100_000 + 24, start - 100_000 + 27]
    );
    // A name none of them has finds nothing.
    assert!(
        auth.search_events(&AuditQuery {
            user: Some("bo".into()),
            ..Default::default()
        })
        .await
        .expect("search")
        .is_empty()
    );
}
