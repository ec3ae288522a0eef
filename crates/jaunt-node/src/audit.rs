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
use jaunt_types::api::{Ack, NodeEventsRequest, PATH_NODE_EVENTS};
use jaunt_types::audit::AuditEvent;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::Notify;

/// Events per delivery.
const BATCH: usize = 200;

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
        let mut e = self.event(name, success);
        e.user = template.user.clone();
        e.login = template.login.clone();
        e.node = template.node.clone();
        e.node_uuid = template.node_uuid.clone();
        e.addr = template.addr.clone();
        e.session_id = template.session_id.clone();
        e
    }

    /// Queues an event durably (committed and synced when this returns).
    /// An error means the event may be lost: the caller refuses the action
    /// it records where it can.
    pub fn emit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.queue.push(event)?;
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
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.deliver_once(&api).await {
                Ok(0) => {
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

    /// Sends one batch; returns how many events it carried (or set aside).
    async fn deliver_once(
        &self,
        api: &impl Fn() -> Option<ApiClient>,
    ) -> Result<usize, DeliveryError> {
        let queued = self.queue.read_batch(BATCH)?;
        let Some(last) = queued.last().map(|q| q.id) else {
            return Ok(0);
        };
        let mut events = Vec::with_capacity(queued.len());
        for q in queued {
            match q.item {
                Ok(e) => events.push(e),
                Err(e) => {
                    // Kept aside, never silently dropped, never blocking the rest.
                    tracing::error!(row = q.id, error = %e, "unreadable audit event set aside");
                    self.queue.set_aside(q.id)?;
                    return Ok(1);
                }
            }
        }
        let api = api().ok_or(DeliveryError::NoClient)?;
        let n = events.len();
        let _: Ack = api
            .post(PATH_NODE_EVENTS, &NodeEventsRequest { events })
            .await?;
        self.queue.acknowledge_through(last)?;
        Ok(n)
    }
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
        // No API client: the bad row is moved before any delivery is tried.
        assert_eq!(rt.block_on(log.deliver_once(&|| None)).expect("moved"), 1);
        assert_eq!(ids(&log), vec![e.id]);
        assert_eq!(
            log.queue.set_aside_items().expect("kept"),
            [b"\"not an event\"".to_vec()]
        );
        assert!(matches!(
            rt.block_on(log.deliver_once(&|| None)),
            Err(DeliveryError::NoClient)
        ));
        assert_eq!(log.queued(), 1, "undelivered events stay");
    }
}
