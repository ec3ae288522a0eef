//! The node's audit events: written to an on-disk queue (a SQLite
//! database in WAL mode with `synchronous=FULL`: one synced append per
//! event) before the action goes on, then delivered to auth in order, in
//! batches, and removed only once auth has stored them. Auth stores an
//! event once by its ID, so a batch re-sent after a lost answer adds
//! nothing: no loss when auth is away or the node is killed, no duplicates.
//!
//! (Nodes before this one kept one synced file per event in
//! `audit-queue/`; those are moved into the database when it opens.)

use jaunt_store::{DurableQueue, StoreError};
use jaunt_sys::clock::now_nanos;
use jaunt_transport::ApiClient;
use jaunt_transport::TransportError;
use jaunt_types::api::{Ack, ErrorCode, NodeEventsRequest, PATH_NODE_EVENTS};
use jaunt_types::audit::AuditEvent;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::Notify;

/// Events per delivery.
const BATCH: usize = 200;
/// JSON bytes per delivery, at most: well under the API's 2 MiB body
/// limit, which a batch of 200 large events once passed for good.
const BATCH_BYTES: usize = 1024 * 1024;

/// The queue's file in the node's data directory.
pub const QUEUE_FILE: &str = "audit-queue.db";

pub struct AuditLog {
    /// Events in emission order, until auth has stored them.
    queue: DurableQueue<AuditEvent>,
    cluster: String,
    wake: Notify,
    seq: jaunt_types::audit::Sequence,
}

/// Why a delivery did not happen.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("the audit queue: {0}")]
    Queue(#[from] StoreError),
    #[error("no API client")]
    NoClient,
    #[error(transparent)]
    Transport(#[from] jaunt_transport::TransportError),
}

impl AuditLog {
    /// The queue in `<data_dir>/audit-queue.db` (created 0600).
    pub fn open(data_dir: &Path, cluster: &str) -> Result<Self, StoreError> {
        let log = AuditLog {
            queue: DurableQueue::open(&data_dir.join(QUEUE_FILE))?,
            cluster: cluster.to_string(),
            wake: Notify::new(),
            seq: jaunt_types::audit::Sequence::starting_at(now_nanos() as u64),
        };
        log.import_files(&data_dir.join("audit-queue"))
            .map_err(|e| StoreError::Database(format!("audit-queue/: {e}")))?;
        Ok(log)
    }

    /// Moves the events an older node queued as files (one per event,
    /// named by sequence) into the database, in their order; the files
    /// go once the rows are committed. Unreadable ones stay where they are.
    fn import_files(&self, dir: &Path) -> std::io::Result<()> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut events = Vec::new();
        let mut imported = Vec::new();
        for f in files {
            match serde_json::from_slice::<AuditEvent>(&std::fs::read(&f)?) {
                Ok(e) => {
                    events.push(e);
                    imported.push(f);
                }
                Err(_) => {
                    tracing::error!(file = %f.display(), "unreadable queued audit event left in place")
                }
            }
        }
        self.queue
            .push_all(&events)
            .map_err(std::io::Error::other)?;
        for f in &imported {
            std::fs::remove_file(f)?;
        }
        // Left only when something in it could not be read.
        let _ = std::fs::remove_dir(dir);
        if !imported.is_empty() {
            tracing::info!(
                events = imported.len(),
                "moved queued audit events into {QUEUE_FILE}"
            );
        }
        Ok(())
    }

    /// A new event of this cluster, stamped now.
    pub fn event(&self, name: &str, success: bool) -> AuditEvent {
        let mut e = AuditEvent::new(
            uuid::Uuid::new_v4().to_string(),
            (now_nanos() / 1_000_000) as i64,
            name,
            success,
            &self.cluster,
        );
        e.seq = self.seq.next();
        e
    }

    /// A new event about the same user, node and session as `template`.
    pub fn like(&self, template: &AuditEvent, name: &str, success: bool) -> AuditEvent {
        self.event(name, success).about(template)
    }

    /// Queues an event durably (committed and synced when this returns).
    /// An error means the event may be lost: the caller refuses the action
    /// it records where it can.
    pub fn emit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.queue.push(&event.clone().capped())?;
        self.wake.notify_one();
        Ok(())
    }

    /// Queues an event; a failure is logged loudly (for events whose action
    /// has already happened, such as a disconnect).
    pub fn record(&self, event: &AuditEvent) {
        if let Err(e) = self.emit(event) {
            tracing::error!(event = %event.event, error = %e, "cannot queue an audit event");
        }
    }

    /// How many events wait for delivery.
    pub fn queued(&self) -> usize {
        self.queue.len().unwrap_or(0)
    }

    /// Delivers queued events to auth for ever; `api` gives the current
    /// client (its certificate is renewed over time).
    pub async fn deliver(&self, api: impl Fn() -> Option<ApiClient>) {
        let send = |events: Vec<AuditEvent>| {
            let api = api();
            async move {
                let api = api.ok_or(DeliveryError::NoClient)?;
                let _: Ack = api
                    .post(PATH_NODE_EVENTS, &NodeEventsRequest { events })
                    .await?;
                Ok(())
            }
        };
        let mut backoff = Duration::from_millis(200);
        let mut limit = BATCH;
        loop {
            match self.deliver_once(&send, &mut limit).await {
                Ok(Delivery::Empty) => {
                    backoff = Duration::from_millis(200);
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), self.wake.notified()).await;
                }
                Ok(_) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(error = %e, queued = self.queued(), retry_in = ?backoff, "audit events not delivered yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Sends one batch from the front of the queue: at most `limit` events
    /// and [`BATCH_BYTES`] of JSON. When auth refuses a batch's content,
    /// the next is half as long, down to the one event auth refuses, which
    /// is set aside (kept, reported, no longer blocking those behind it).
    async fn deliver_once<S, F>(
        &self,
        send: &S,
        limit: &mut usize,
    ) -> Result<Delivery, DeliveryError>
    where
        S: Fn(Vec<AuditEvent>) -> F,
        F: Future<Output = Result<(), DeliveryError>>,
    {
        let mut events = Vec::new();
        let (mut bytes, mut last) = (0, None);
        for q in self.queue.read_batch(*limit)? {
            let event = match q.item {
                Ok(e) => e,
                Err(e) => {
                    // Kept aside, never silently dropped, never blocking the rest.
                    tracing::error!(row = q.id, error = %e, "unreadable audit event set aside");
                    self.queue.set_aside(q.id)?;
                    return Ok(Delivery::SetAside);
                }
            };
            let size = serde_json::to_vec(&event).map_or(usize::MAX, |j| j.len());
            if !events.is_empty() && bytes + size > BATCH_BYTES {
                break;
            }
            bytes = bytes.saturating_add(size);
            events.push(event);
            last = Some(q.id);
        }
        let m = jaunt_metrics::metrics();
        m.node_audit_queue.set(self.queued() as i64);
        let Some(last) = last else {
            m.node_audit_lag_seconds.set(0);
            return Ok(Delivery::Empty);
        };
        // The oldest event waiting: how far behind delivery is.
        let lag = (jaunt_sys::clock::now_millis() - events[0].time).max(0) / 1000;
        m.node_audit_lag_seconds.set(lag);
        let n = events.len();
        let first = events[0].id.clone();
        match send(events).await {
            Ok(()) => {
                self.queue.acknowledge_through(last)?;
                *limit = BATCH;
                Ok(Delivery::Sent(n))
            }
            Err(DeliveryError::Transport(TransportError::Api {
                code: ErrorCode::BadRequest,
                message,
            })) => {
                if n > 1 {
                    *limit = n / 2;
                    return Ok(Delivery::Narrowed);
                }
                tracing::error!(event = %first, reason = %message, "auth refused an audit event; set aside in the queue's bad table");
                self.queue.set_aside(last)?;
                *limit = BATCH;
                Ok(Delivery::SetAside)
            }
            Err(e) => Err(e),
        }
    }
}

/// What one delivery step did.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    /// Nothing was queued.
    Empty,
    /// This many events reached auth.
    Sent(usize),
    /// Auth refused the batch; the next is shorter.
    Narrowed,
    /// One event was set aside (unreadable, or refused alone).
    SetAside,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(log: &AuditLog) -> Vec<String> {
        log.queue
            .read_batch(1000)
            .expect("pending")
            .into_iter()
            .map(|q| q.item.expect("json").id)
            .collect()
    }

    #[test]
    fn queue_keeps_order_across_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AuditLog::open(dir.path(), "c").expect("open");
        let mut want: Vec<String> = (0..5)
            .map(|i| {
                let e = log.event("exec", i % 2 == 0);
                log.emit(&e).expect("emit");
                e.id
            })
            .collect();
        drop(log);
        let reopened = AuditLog::open(dir.path(), "c").expect("reopen");
        let later = reopened.event("exec", true);
        reopened.emit(&later).expect("emit");
        want.push(later.id);
        assert_eq!(ids(&reopened), want);
        assert_eq!(reopened.queued(), 6);
        assert_eq!(reopened.queue.read_batch(2).expect("pending").len(), 2);
    }

    #[test]
    fn files_queued_by_an_older_node_are_moved_in_first_and_bad_ones_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let old = dir.path().join("audit-queue");
        std::fs::create_dir(&old).expect("dir");
        let maker = AuditLog::open(tempfile::tempdir().expect("tmp").path(), "c").expect("open");
        let (a, b) = (maker.event("exec", true), maker.event("session.end", true));
        // Named by sequence: b's name sorts first, so it goes first.
        std::fs::write(old.join("002.json"), serde_json::to_vec(&a).expect("json")).expect("write");
        std::fs::write(old.join("001.json"), serde_json::to_vec(&b).expect("json")).expect("write");
        std::fs::write(old.join("003.json"), b"{torn").expect("write");
        let log = AuditLog::open(dir.path(), "c").expect("open");
        let c = log.event("exec", false);
        log.emit(&c).expect("emit");
        assert_eq!(ids(&log), vec![b.id, a.id, c.id]);
        let left: Vec<_> = std::fs::read_dir(&old)
            .expect("kept for the bad file")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("003.json")]);
        // Opening again imports nothing twice.
        drop(log);
        assert_eq!(AuditLog::open(dir.path(), "c").expect("open").queued(), 3);
    }

    /// A stand-in for auth: takes batches, refuses one that holds an
    /// event named `poison` or more than `max_bytes` of JSON (as auth's
    /// body limit does), and keeps what it took.
    struct Auth {
        taken: std::sync::Mutex<Vec<Vec<String>>>,
        max_bytes: usize,
    }

    impl Auth {
        fn new(max_bytes: usize) -> Self {
            Auth {
                taken: std::sync::Mutex::new(Vec::new()),
                max_bytes,
            }
        }

        fn send(&self, events: Vec<AuditEvent>) -> std::future::Ready<Result<(), DeliveryError>> {
            let size = serde_json::to_vec(&events).map_or(0, |j| j.len());
            let refused = events.iter().any(|e| e.event == "poison") || size > self.max_bytes;
            std::future::ready(if refused {
                Err(DeliveryError::Transport(TransportError::Api {
                    code: ErrorCode::BadRequest,
                    message: "refused".into(),
                }))
            } else {
                if let Ok(mut t) = self.taken.lock() {
                    t.push(events.into_iter().map(|e| e.id).collect());
                }
                Ok(())
            })
        }

        fn taken(&self) -> Vec<Vec<String>> {
            self.taken.lock().map(|t| t.clone()).unwrap_or_default()
        }
    }

    /// Delivers until the queue is empty (or `steps` run out).
    fn drain(log: &AuditLog, auth: &Auth, steps: usize) -> Vec<Delivery> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut limit = BATCH;
        let mut done = Vec::new();
        for _ in 0..steps {
            match rt
                .block_on(log.deliver_once(&|e| auth.send(e), &mut limit))
                .expect("deliver")
            {
                Delivery::Empty => break,
                d => done.push(d),
            }
        }
        done
    }

    #[test]
    fn an_unreadable_row_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().expect("tmp");
        // An older writer's torn row, pushed through another view of the
        // same file that does not decode as an event.
        DurableQueue::<String>::open(&dir.path().join(QUEUE_FILE))
            .expect("open")
            .push(&"not an event".to_string())
            .expect("push");
        let log = AuditLog::open(dir.path(), "c").expect("open");
        let e = log.event("exec", true);
        log.emit(&e).expect("emit");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let no_client = |_| std::future::ready(Err(DeliveryError::NoClient));
        let mut limit = BATCH;
        // No API client: the bad row is moved before any delivery is tried.
        assert_eq!(
            rt.block_on(log.deliver_once(&no_client, &mut limit))
                .expect("moved"),
            Delivery::SetAside
        );
        assert_eq!(ids(&log), vec![e.id]);
        assert_eq!(
            log.queue.set_aside_items().expect("kept"),
            [b"\"not an event\"".to_vec()]
        );
        assert!(matches!(
            rt.block_on(log.deliver_once(&no_client, &mut limit)),
            Err(DeliveryError::NoClient)
        ));
        assert_eq!(log.queued(), 1, "undelivered events stay");
    }

    #[test]
    fn an_event_auth_refuses_is_set_aside_and_the_rest_delivered_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AuditLog::open(dir.path(), "c").expect("open");
        let mut want = Vec::new();
        for i in 0..9 {
            let e = log.event(if i == 4 { "poison" } else { "exec" }, true);
            log.emit(&e).expect("emit");
            if i != 4 {
                want.push(e.id);
            }
        }
        let auth = Auth::new(usize::MAX);
        let steps = drain(&log, &auth, 50);
        assert!(steps.contains(&Delivery::Narrowed), "{steps:?}");
        assert_eq!(
            steps.iter().filter(|d| **d == Delivery::SetAside).count(),
            1
        );
        assert_eq!(auth.taken().concat(), want, "the rest, in order");
        assert_eq!(log.queued(), 0);
        assert_eq!(log.queue.set_aside_len().expect("bad"), 1);
    }

    #[test]
    fn batches_stay_under_the_byte_cap_and_large_fields_are_capped() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AuditLog::open(dir.path(), "c").expect("open");
        // Events as large as capping lets them be: 20 fields of 4 KiB of
        // control bytes each (before capping, 120 KiB each in JSON).
        for _ in 0..60 {
            let mut e = log.event("exec", true);
            for f in 0..20 {
                e = e.with(&format!("f{f}"), "\u{1}".repeat(20_000));
            }
            log.emit(&e).expect("emit");
        }
        // Auth's real limit is 2 MiB; this one refuses past the node's cap.
        let auth = Auth::new(BATCH_BYTES + 4096);
        let steps = drain(&log, &auth, 100);
        assert!(
            steps.iter().all(|d| matches!(d, Delivery::Sent(_))),
            "{steps:?}"
        );
        assert!(steps.len() > 1, "more than one batch: {steps:?}");
        assert_eq!(auth.taken().concat().len(), 60);
        assert_eq!(log.queued(), 0);
    }
}
