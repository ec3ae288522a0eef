//! `audit-fill`: writes a stopped cluster's SQLite store a large audit log
//! as auth would have written it (the same rows, through
//! `jaunt_auth::audit::event_rows`), spread evenly over the last DAYS:
//! sessions of five events each (session.start, three exec or sftp,
//! session.end) by USERS users on 50 nodes, in batches of 1000.

use anyhow::Context;
use jaunt_store::Backend;
use jaunt_types::audit::AuditEvent;
use std::time::Instant;

const BATCH: usize = 1000;

pub async fn run(db: &std::path::Path, events: u64, days: u64, users: u64) -> anyhow::Result<()> {
    let store = jaunt_store::SqliteBackend::open(db)
        .with_context(|| format!("cannot open {}", db.display()))?;
    let now = jaunt_sys::clock::now_millis();
    let span = (days * 86_400_000) as i64;
    let step = span / events.max(1) as i64;
    let retention = 365 * 86_400;
    let started = Instant::now();
    let mut rows = Vec::with_capacity(BATCH * 5);
    let mut session = String::new();
    for i in 0..events {
        let time = now - span + i as i64 * step;
        let (name, user) = match i % 5 {
            0 => {
                session = uuid::Uuid::new_v4().to_string();
                ("session.start", i / 5 % users)
            }
            4 => ("session.end", i / 5 % users),
            _ if i % 7 == 0 => ("sftp", i / 5 % users),
            _ => ("exec", i / 5 % users),
        };
        let mut e = AuditEvent::new(uuid::Uuid::new_v4().to_string(), time, name, true, "bench");
        e.user = Some(format!("user{user}"));
        e.login = Some("root".into());
        e.node = Some(format!("node{}", i / 5 % 50));
        e.addr = Some("127.0.0.1:40000".into());
        e.session_id = Some(session.clone());
        e.received = Some(time + 5);
        e.fields
            .insert("command".into(), format!("uptime # {i}").into());
        let expires = Some(time / 1000 + retention);
        rows.extend(jaunt_auth::audit::event_rows(&e, expires)?);
        if rows.len() >= BATCH * 5 || i + 1 == events {
            store.create_many(std::mem::take(&mut rows)).await?;
        }
        if (i + 1) % 100_000 == 0 {
            eprintln!("{} events, {:.0} s", i + 1, started.elapsed().as_secs_f64());
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {events} events over {days} days in {secs:.0} s ({:.0} events/s)",
        events as f64 / secs
    );
    Ok(())
}
