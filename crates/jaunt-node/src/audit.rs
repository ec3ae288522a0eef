//! The node's audit events: written to an on-disk queue (one synced file
//! per event) before the action goes on, then delivered to auth in order,
//! in batches, and removed only once auth has stored them. Auth stores an
//! event once by its ID, so a batch re-sent after a lost answer adds
//! nothing: no loss when auth is away or the node is killed, no duplicates.

use jaunt_client::api::ApiClient;
use jaunt_types::api::{Ack, NodeEventsRequest, PATH_NODE_EVENTS};
use jaunt_types::audit::AuditEvent;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// Events per delivery.
const BATCH: usize = 200;

pub struct AuditLog {
    dir: PathBuf,
    cluster: String,
    /// The last queue file's sequence number (Unix nanoseconds, made
    /// strictly increasing), so file names sort in emission order.
    last: Mutex<u128>,
    wake: Notify,
    seq: jaunt_types::audit::Sequence,
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn sequence_of(path: &Path) -> Option<u128> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

impl AuditLog {
    /// The queue in `<data_dir>/audit-queue` (created 0700).
    pub fn open(data_dir: &Path, cluster: &str) -> std::io::Result<Self> {
        let dir = data_dir.join("audit-queue");
        std::fs::create_dir_all(&dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let log = AuditLog {
            dir,
            cluster: cluster.to_string(),
            last: Mutex::new(0),
            wake: Notify::new(),
            seq: jaunt_types::audit::Sequence::starting_at(now_nanos() as u64),
        };
        let last = log.pending()?.last().and_then(|p| sequence_of(p));
        *log.last.lock().map_err(|_| std::io::Error::other("lock"))? = last.unwrap_or(0);
        Ok(log)
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

    /// Queues an event durably. An error means the event may be lost: the
    /// caller refuses the action it records where it can.
    pub fn emit(&self, event: &AuditEvent) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        // The lock also orders the writes, so sequence order is file order.
        let mut last = self
            .last
            .lock()
            .map_err(|_| std::io::Error::other("lock"))?;
        let seq = now_nanos().max(*last + 1);
        let path = self.dir.join(format!("{seq:039}.json"));
        let tmp = self.dir.join(format!("{seq:039}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        *last = seq;
        drop(last);
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

    /// The queued events' files, oldest first.
    fn pending(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| sequence_of(p).is_some())
            .collect();
        files.sort();
        Ok(files)
    }

    /// How many events wait for delivery.
    pub fn queued(&self) -> usize {
        self.pending().map(|p| p.len()).unwrap_or(0)
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

    /// Sends one batch; returns how many events it carried.
    async fn deliver_once(&self, api: &impl Fn() -> Option<ApiClient>) -> Result<usize, String> {
        let files = self.pending().map_err(|e| e.to_string())?;
        let files = &files[..files.len().min(BATCH)];
        if files.is_empty() {
            return Ok(0);
        }
        let mut events = Vec::with_capacity(files.len());
        for f in files {
            let parsed = std::fs::read(f)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<AuditEvent>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(e) => events.push(e),
                Err(e) => {
                    // Kept aside, never silently dropped, never blocking the rest.
                    tracing::error!(file = %f.display(), error = %e, "unreadable audit event set aside");
                    let _ = std::fs::rename(f, f.with_extension("bad"));
                    return Ok(1);
                }
            }
        }
        let api = api().ok_or("no API client")?;
        let _: Ack = api
            .post(PATH_NODE_EVENTS, &NodeEventsRequest { events })
            .await
            .map_err(|e| e.to_string())?;
        for f in files {
            std::fs::remove_file(f).map_err(|e| e.to_string())?;
        }
        Ok(files.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keeps_order_across_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AuditLog::open(dir.path(), "c").expect("open");
        let ids: Vec<String> = (0..5)
            .map(|i| {
                let e = log.event("exec", i % 2 == 0);
                log.emit(&e).expect("emit");
                e.id
            })
            .collect();
        let reopened = AuditLog::open(dir.path(), "c").expect("reopen");
        let later = reopened.event("exec", true);
        reopened.emit(&later).expect("emit");
        let order: Vec<String> = reopened
            .pending()
            .expect("pending")
            .iter()
            .map(|p| {
                let e: AuditEvent =
                    serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json");
                e.id
            })
            .collect();
        let mut want = ids;
        want.push(later.id);
        assert_eq!(order, want);
    }
}
