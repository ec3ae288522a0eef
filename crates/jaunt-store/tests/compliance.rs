//! One set of tests for every storage backend: SQLite (a file in a temporary
//! directory) and PostgreSQL (a private server started by the test, a fresh
//! database per case). A backend passes only if each case holds on it.

#[path = "support/postgres.rs"]
mod postgres_server;

use jaunt_store::{PgOptions, PostgresBackend, SharedBackend, SqliteBackend, StoreError};
use postgres_server::Postgres;
use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type Case = fn(SharedBackend) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        const CASES: &[(&str, Case)] = &[$((stringify!($name), |b| Box::pin($name(b)))),*];
    };
}

cases!(
    create_get_update_delete,
    create_many_writes_new_keys_once,
    list_by_prefix_in_byte_order,
    listing_thousands,
    paging_and_counting,
    keys_with_every_kind_of_character,
    keys_no_backend_can_hold,
    large_values,
    expiry,
    compare_and_swap_race,
    create_if_absent_race,
    delete_race,
);

fn now() -> i64 {
    jaunt_sys::clock::now()
}

async fn keys(b: &SharedBackend, prefix: &str) -> Vec<String> {
    b.list(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.key)
        .collect()
}

async fn create_get_update_delete(b: SharedBackend) {
    let item = b
        .create("/users/alice", b"1".to_vec(), None)
        .await
        .expect("create");
    assert_eq!(item.revision, 1);
    assert!(matches!(
        b.create("/users/alice", b"x".to_vec(), None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let up = b
        .update_if("/users/alice", 1, b"2".to_vec(), None)
        .await
        .expect("cas");
    assert_eq!(up.revision, 2);
    assert!(matches!(
        b.update_if("/users/alice", 1, b"3".to_vec(), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        b.update_if("/users/nobody", 1, b"3".to_vec(), None).await,
        Err(StoreError::NotFound(_))
    ));
    let got = b.get("/users/alice").await.expect("get").expect("some");
    assert_eq!((got.value.as_slice(), got.revision), (&b"2"[..], 2));
    let put = b
        .put("/users/alice", b"4".to_vec(), Some(now() + 3600))
        .await
        .expect("put");
    assert_eq!(put.revision, 3);
    let got = b.get("/users/alice").await.expect("get").expect("some");
    assert_eq!((got.revision, got.expires), (3, put.expires));
    assert_eq!(
        b.put("/new", b"n".to_vec(), None)
            .await
            .expect("put")
            .revision,
        1
    );
    b.delete("/users/alice").await.expect("delete");
    assert!(matches!(
        b.delete("/users/alice").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(b.get("/users/alice").await.expect("get"), None);
    // A key removed and made again starts over.
    let again = b
        .create("/users/alice", b"5".to_vec(), None)
        .await
        .expect("recreate");
    assert_eq!(again.revision, 1);
}

async fn create_many_writes_new_keys_once(b: SharedBackend) {
    b.create("/events/1", b"old".to_vec(), None)
        .await
        .expect("create");
    // An expired key counts as absent, as for `create`.
    b.create("/events/3", b"gone".to_vec(), Some(1))
        .await
        .expect("create");
    let items = vec![
        ("/events/1".to_string(), b"new".to_vec(), None),
        ("/events/2".to_string(), b"two".to_vec(), None),
        ("/events/2".to_string(), b"dup".to_vec(), None),
        ("/events/3".to_string(), b"three".to_vec(), None),
        // Written with its expiry, which is past: gone at once.
        ("/events/4".to_string(), b"four".to_vec(), Some(1)),
        (
            "/events/5".to_string(),
            b"five".to_vec(),
            Some(now() + 3600),
        ),
    ];
    assert_eq!(b.create_many(items.clone()).await.expect("batch"), 4);
    let values: Vec<(String, Vec<u8>)> = b
        .list("/events/")
        .await
        .expect("list")
        .into_iter()
        .map(|i| (i.key, i.value))
        .collect();
    assert_eq!(
        values,
        vec![
            ("/events/1".to_string(), b"old".to_vec()),
            ("/events/2".to_string(), b"two".to_vec()),
            ("/events/3".to_string(), b"three".to_vec()),
            ("/events/5".to_string(), b"five".to_vec()),
        ]
    );
    let five = b.get("/events/5").await.expect("get").expect("there");
    assert!(five.expires.is_some_and(|e| e > now()));
    // The expired one is written again (as create would); the rest stay.
    assert_eq!(b.create_many(items).await.expect("again"), 1);
    assert_eq!(b.create_many(Vec::new()).await.expect("empty"), 0);
}

async fn list_by_prefix_in_byte_order(b: SharedBackend) {
    for k in [
        "/roles/b",
        "/roles/a",
        "/rolesx",
        "/roles",
        "/users/a",
        "/roles/B",
        "/roles/ä",
    ] {
        b.put(k, b"{}".to_vec(), None).await.expect("put");
    }
    b.put("/roles/gone", b"{}".to_vec(), Some(now() - 1))
        .await
        .expect("put");
    // Byte order: upper case before lower case, UTF-8 after ASCII.
    assert_eq!(
        keys(&b, "/roles/").await,
        ["/roles/B", "/roles/a", "/roles/b", "/roles/ä"]
    );
    assert_eq!(keys(&b, "/roles/a").await, ["/roles/a"]);
    assert!(keys(&b, "/nothing/").await.is_empty());
    assert_eq!(keys(&b, "").await.len(), 7);
}

async fn listing_thousands(b: SharedBackend) {
    // Written in a scrambled order, in batches, as auth writes events.
    let n = 3000usize;
    let mut all: Vec<(String, Vec<u8>, Option<i64>)> = (0..n)
        .map(|i| ((i * 7919) % n, i))
        .map(|(k, i)| (format!("/nodes/{k:05}"), i.to_le_bytes().to_vec(), None))
        .collect();
    all.push(("/nodes0".into(), b"x".to_vec(), None));
    all.push(("/node/1".into(), b"x".to_vec(), None));
    for chunk in all.chunks(500) {
        b.create_many(chunk.to_vec()).await.expect("batch");
    }
    let listed = keys(&b, "/nodes/").await;
    assert_eq!(listed.len(), n);
    let want: Vec<String> = (0..n).map(|k| format!("/nodes/{k:05}")).collect();
    assert_eq!(listed, want);
}

async fn paging_and_counting(b: SharedBackend) {
    let items: Vec<(String, Vec<u8>, Option<i64>)> = (0..1050)
        .map(|i| (format!("/audit/{i:06}"), vec![1], None))
        .collect();
    b.create_many(items).await.expect("batch");
    b.put("/audit/zz-gone", vec![1], Some(1))
        .await
        .expect("put");
    b.put("/auditx", vec![1], None).await.expect("put");
    assert_eq!(b.count("/audit/").await.expect("count"), 1050);
    assert_eq!(b.count("/nothing/").await.expect("count"), 0);
    assert_eq!(b.count("").await.expect("count"), 1051);
    // Pages of 400 from the start: 400, 400, 250, then none.
    let (mut after, mut seen, mut sizes) = (None::<String>, Vec::new(), Vec::new());
    loop {
        let page = b
            .list_page("/audit/", after.as_deref(), 400)
            .await
            .expect("page");
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        seen.extend(page.into_iter().map(|i| i.key));
    }
    assert_eq!(sizes, [400, 400, 250, 0]);
    assert_eq!(seen, keys(&b, "/audit/").await);
    // A page may start between keys, and hold one item.
    let page = b
        .list_page("/audit/", Some("/audit/000499x"), 1)
        .await
        .expect("page");
    assert_eq!(
        page.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["/audit/000500"]
    );
    assert!(
        b.list_page("/audit/", Some("/audit/999999"), 10)
            .await
            .expect("page")
            .is_empty()
    );
    // Backwards: from the last key (never the expired one, nor "/auditx"
    // outside the prefix), pages of 400 down to the first.
    let (mut before, mut back, mut sizes) = (None::<String>, Vec::new(), Vec::new());
    loop {
        let page = b
            .list_page_back("/audit/", before.as_deref(), 400)
            .await
            .expect("page back");
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        before = Some(last.key.clone());
        back.extend(page.into_iter().map(|i| i.key));
    }
    assert_eq!(sizes, [400, 400, 250, 0]);
    back.reverse();
    assert_eq!(back, seen);
    // A bound between keys: the greatest key below it.
    let page = b
        .list_page_back("/audit/", Some("/audit/000499x"), 2)
        .await
        .expect("page back");
    assert_eq!(
        page.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["/audit/000499", "/audit/000498"]
    );
    assert!(
        b.list_page_back("/audit/", Some("/audit/"), 10)
            .await
            .expect("page back")
            .is_empty()
    );
}

async fn keys_with_every_kind_of_character(b: SharedBackend) {
    // Every printable ASCII character, the ones SQL and LIKE treat
    // specially among them, tabs and DEL, and characters of 2, 3 and 4
    // bytes in UTF-8.
    let mut names: Vec<String> = (0x20u8..0x7f)
        .map(|c| format!("/odd/{}", c as char))
        .collect();
    names.extend(
        [
            "/odd/it's",
            "/odd/\"q\"",
            "/odd/a%b_c",
            "/odd/back\\slash",
            "/odd/tab\there",
            "/odd/del\u{7f}",
            "/odd/ü",
            "/odd/日本",
            "/odd/🦀",
            "/odd/\u{10FFFE}",
            "/odd/alice@example.com:22",
            "/odd/a b",
        ]
        .map(String::from),
    );
    for (i, name) in names.iter().enumerate() {
        b.put(name, i.to_string().into_bytes(), None)
            .await
            .unwrap_or_else(|e| panic!("put {name:?}: {e}"));
    }
    for (i, name) in names.iter().enumerate() {
        let got = b.get(name).await.expect("get").expect("stored");
        assert_eq!(got.value, i.to_string().into_bytes(), "{name:?}");
    }
    let sorted: Vec<String> = names
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(keys(&b, "/odd/").await, sorted);
    // LIKE's wildcards in a prefix are plain characters.
    assert_eq!(keys(&b, "/odd/a%").await, ["/odd/a%b_c"]);
    assert_eq!(keys(&b, "/odd/_").await, ["/odd/_"]);
}

async fn keys_no_backend_can_hold(b: SharedBackend) {
    for bad in ["", "/nul/\0x"] {
        assert!(
            matches!(
                b.put(bad, b"v".to_vec(), None).await,
                Err(StoreError::InvalidKey(_))
            ),
            "{bad:?}"
        );
        assert!(matches!(
            b.create(bad, b"v".to_vec(), None).await,
            Err(StoreError::InvalidKey(_))
        ));
        assert_eq!(b.get(bad).await.expect("get"), None);
        assert!(matches!(b.delete(bad).await, Err(StoreError::NotFound(_))));
    }
    assert!(matches!(
        b.create_many(vec![
            ("/ok".into(), b"v".to_vec(), None),
            ("/nul\0".into(), b"v".to_vec(), None)
        ])
        .await,
        Err(StoreError::InvalidKey(_))
    ));
    // A refused batch writes nothing.
    assert_eq!(b.get("/ok").await.expect("get"), None);
}

async fn large_values(b: SharedBackend) {
    let big: Vec<u8> = (0..16 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    b.create("/recordings/big", big.clone(), None)
        .await
        .expect("create");
    let got = b.get("/recordings/big").await.expect("get").expect("some");
    assert!(got.value == big, "16 MiB value came back different");
    let mut bigger = big.clone();
    bigger.extend_from_slice(&big[..1024 * 1024]);
    b.update_if("/recordings/big", 1, bigger.clone(), None)
        .await
        .expect("cas");
    let listed = b.list("/recordings/").await.expect("list");
    assert!(listed.len() == 1 && listed[0].value == bigger);
    // Every byte value, and an empty value.
    let all: Vec<u8> = (0..=255).collect();
    b.put("/bytes", all.clone(), None).await.expect("put");
    b.put("/empty", Vec::new(), None).await.expect("put");
    assert_eq!(
        b.get("/bytes").await.expect("get").map(|i| i.value),
        Some(all)
    );
    assert_eq!(
        b.get("/empty").await.expect("get").map(|i| i.value),
        Some(Vec::new())
    );
}

async fn expiry(b: SharedBackend) {
    let past = Some(now() - 5);
    let future = Some(now() + 3600);
    b.put("/t/gone", b"g".to_vec(), past).await.expect("put");
    b.put("/t/kept", b"k".to_vec(), future).await.expect("put");
    b.put("/t/forever", b"f".to_vec(), None).await.expect("put");
    assert_eq!(b.get("/t/gone").await.expect("get"), None);
    assert_eq!(keys(&b, "/t/").await, ["/t/forever", "/t/kept"]);
    // Gone means gone for every operation.
    assert!(matches!(
        b.update_if("/t/gone", 1, b"x".to_vec(), None).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        b.delete("/t/gone").await,
        Err(StoreError::NotFound(_))
    ));
    let again = b
        .create("/t/gone", b"new".to_vec(), None)
        .await
        .expect("create over expired");
    assert_eq!(again.revision, 1);
    b.put("/t/old1", b"x".to_vec(), past).await.expect("put");
    b.put("/t/old2", b"x".to_vec(), past).await.expect("put");
    // An expiry can be lifted by a write.
    b.put("/t/kept", b"k2".to_vec(), None).await.expect("put");
    assert_eq!(
        b.get("/t/kept").await.expect("get").and_then(|i| i.expires),
        None
    );
    assert_eq!(b.purge_expired().await.expect("purge"), 2);
    // Idempotent: nothing left to purge.
    assert_eq!(b.purge_expired().await.expect("purge"), 0);
    assert_eq!(keys(&b, "/t/").await, ["/t/forever", "/t/gone", "/t/kept"]);
    // Many at once (a retention period ending) go in several batches.
    let many: Vec<(String, Vec<u8>, Option<i64>)> = (0..2500)
        .map(|i| (format!("/old/{i:05}"), b"x".to_vec(), past))
        .collect();
    b.create_many(many).await.expect("batch");
    assert_eq!(b.purge_expired().await.expect("purge"), 2500);
    assert_eq!(b.count("/old/").await.expect("count"), 0);
}

async fn compare_and_swap_race(b: SharedBackend) {
    b.create("/counter", b"0".to_vec(), None)
        .await
        .expect("create");
    let (tasks, each) = (12, 15);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let b = b.clone();
        handles.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _ in 0..each {
                loop {
                    let cur = b.get("/counter").await.expect("get").expect("some");
                    let n: u64 = String::from_utf8_lossy(&cur.value).parse().expect("number");
                    match b
                        .update_if(
                            "/counter",
                            cur.revision,
                            (n + 1).to_string().into_bytes(),
                            None,
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict(_)) => conflicts += 1,
                        Err(e) => panic!("update: {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let end = b.get("/counter").await.expect("get").expect("some");
    // No increment lost, none counted twice.
    assert_eq!(
        String::from_utf8_lossy(&end.value),
        (tasks * each).to_string()
    );
    assert_eq!(end.revision, (tasks * each) as i64 + 1);
}

async fn create_if_absent_race(b: SharedBackend) {
    for round in 0..5 {
        let key = format!("/tokens/{round}");
        let mut handles = Vec::new();
        for t in 0..24u8 {
            let (b, key) = (b.clone(), key.clone());
            handles.push(tokio::spawn(async move {
                b.create(&key, vec![t], None).await.map(|_| t)
            }));
        }
        let mut winners = Vec::new();
        for h in handles {
            match h.await.expect("task") {
                Ok(t) => winners.push(t),
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => panic!("create: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let stored = b.get(&key).await.expect("get").expect("some");
        assert_eq!(stored.value, vec![winners[0]]);
    }
}

async fn delete_race(b: SharedBackend) {
    b.put("/locks/x", b"1".to_vec(), None).await.expect("put");
    let mut handles = Vec::new();
    for _ in 0..16 {
        let b = b.clone();
        handles.push(tokio::spawn(async move { b.delete("/locks/x").await }));
    }
    let mut removed = 0;
    for h in handles {
        match h.await.expect("task") {
            Ok(()) => removed += 1,
            Err(StoreError::NotFound(_)) => {}
            Err(e) => panic!("delete: {e}"),
        }
    }
    assert_eq!(removed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_passes_the_compliance_suite() {
    for (name, case) in CASES {
        let dir = tempfile::tempdir().expect("tempdir");
        let b: SharedBackend =
            Arc::new(SqliteBackend::open(&dir.path().join("jaunt.db")).expect("open"));
        eprintln!("sqlite: {name}");
        case(b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_compliance_suite() {
    let pg = tokio::task::spawn_blocking(|| Postgres::start_with(&[]))
        .await
        .expect("start");
    for (i, (name, case)) in CASES.iter().enumerate() {
        let uri = pg.uri(&format!("case{i}"), "sslmode=disable");
        let b: SharedBackend = Arc::new(
            PostgresBackend::connect(&uri, PgOptions::default())
                .await
                .expect("connect"),
        );
        eprintln!("postgres: {name}");
        case(b).await;
    }
}
