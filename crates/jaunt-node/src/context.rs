//! What every connection of a node shares: its identity and API client,
//! its audit queue and recordings, the cluster's recording mode, and the
//! sessions running now (reported to auth, and marked on disk so that a
//! node killed meanwhile ends them in the audit log when it starts again).

use jaunt_transport::ApiClient;
use jaunt_types::api::{Ack, NodeSessionsRequest, PATH_NODE_SESSIONS, RecordingMode};
use jaunt_types::audit::{ActiveSession, AuditEvent};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// What every connection of this node shares.
pub struct NodeContext {
    pub cluster: String,
    pub uuid: String,
    pub proxy_addr: String,
    /// This cluster's user CA keys, refreshed by heartbeats.
    pub user_cas: RwLock<Vec<jaunt_ca::ssh_key::public::KeyData>>,
    /// The user CAs of the clusters this one trusts (by cluster name),
    /// from heartbeats: in memory only, so a trust removed is gone at the
    /// next heartbeat or restart.
    pub trusted_cas: RwLock<Vec<(String, jaunt_ca::ssh_key::public::KeyData)>>,
    /// The API client with this node's certificate.
    pub api: RwLock<ApiClient>,
    /// The `jaunt` binary, run as `jaunt sftp-server` for the sftp subsystem.
    pub sftp_helper: Option<std::path::PathBuf>,
    pub nodename: String,
    pub audit: crate::audit::AuditLog,
    pub spool: crate::recording::Spool,
    /// The cluster's recording mode, from the last heartbeat.
    pub recording: RwLock<RecordingMode>,
    /// Running sessions by ID, reported to auth.
    pub active: Mutex<HashMap<String, ActiveSession>>,
    pub sessions_changed: Notify,
    /// One marker file per running session (`<data_dir>/running`).
    pub running_dir: std::path::PathBuf,
    /// How long a connection may stay unauthenticated.
    pub login_grace: std::time::Duration,
    /// The cluster's locks, followed while connections are open
    /// (`agent/locks.rs`); each connection ends when one stops it.
    pub locks: tokio::sync::watch::Sender<std::sync::Arc<Vec<jaunt_types::resources::Lock>>>,
    /// How many authenticated connections are open.
    pub live: tokio::sync::watch::Sender<usize>,
    /// Set (with the words clients are told) when the node ends every
    /// connection at the end of a graceful stop.
    pub shutdown: tokio::sync::watch::Sender<Option<String>>,
    /// The last heartbeat auth answered (Unix seconds, 0: none yet), and
    /// the interval it asked for: what the node's readiness says.
    pub heartbeat_ok: std::sync::atomic::AtomicI64,
    pub heartbeat_every: std::sync::atomic::AtomicU64,
    /// Authenticated connections open per user (roles' `max_connections`).
    pub user_connections: Mutex<HashMap<String, u32>>,
    /// The key the proxy's client-address lines are checked with (from
    /// heartbeats; `jaunt_ca::client_addr`).
    pub client_addr_key: RwLock<Option<Vec<u8>>>,
}

/// What a running session leaves on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunningMarker {
    session: ActiveSession,
    template: AuditEvent,
}

/// Ends the sessions a previous run of the node left running (it was
/// killed): each gets its `session.end`, marked as cut.
pub fn end_interrupted_sessions(ctx: &NodeContext) {
    let Ok(entries) = std::fs::read_dir(&ctx.running_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let marker = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunningMarker>(&b).ok());
        if let Some(m) = marker {
            let e = ctx
                .audit
                .like(&m.template, "session.end", false)
                .with("kind", m.session.kind)
                .with("participants", vec![m.session.user])
                .with("reason", "the node stopped while the session ran");
            if ctx.audit.emit(&e).is_err() {
                continue;
            }
            tracing::info!(session = %m.session.id, "ended a session cut by the node's stop");
        }
        let _ = std::fs::remove_file(&path);
    }
}

impl NodeContext {
    /// Counts a new connection of `user`, unless it already holds `max`.
    pub fn count_connection(&self, user: &str, max: Option<u32>) -> Result<(), String> {
        let mut open = self.user_connections.lock().map_err(|_| "lock poisoned")?;
        let n = open.entry(user.to_string()).or_insert(0);
        if let Some(max) = max.filter(|m| *n >= *m) {
            return Err(format!(
                "user {user:?} already holds {max} connections to this node (max_connections)"
            ));
        }
        *n += 1;
        Ok(())
    }

    pub fn uncount_connection(&self, user: &str) {
        if let Ok(mut open) = self.user_connections.lock()
            && let Some(n) = open.get_mut(user)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(user);
            }
        }
    }

    pub fn api_client(&self) -> Option<ApiClient> {
        self.api.read().ok().map(|a| a.clone())
    }

    pub fn recording_mode(&self) -> RecordingMode {
        self.recording.read().map(|m| *m).unwrap_or_default()
    }

    pub(crate) fn session_started(&self, s: ActiveSession, template: &AuditEvent) {
        // Left on disk while the session runs: a node killed meanwhile
        // writes the session's end when it starts again.
        let marker = RunningMarker {
            session: s.clone(),
            template: template.clone(),
        };
        if let Err(e) = serde_json::to_vec(&marker)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(self.running_dir.join(format!("{}.json", s.id)), b))
        {
            tracing::warn!(error = %e, "cannot mark the session as running");
        }
        if let Ok(mut a) = self.active.lock() {
            a.insert(s.id.clone(), s);
            jaunt_metrics::metrics().node_sessions.set(a.len() as i64);
        }
        self.sessions_changed.notify_one();
    }

    pub(crate) fn session_ended(&self, id: &str) {
        let _ = std::fs::remove_file(self.running_dir.join(format!("{id}.json")));
        if let Ok(mut a) = self.active.lock() {
            a.remove(id);
            jaunt_metrics::metrics().node_sessions.set(a.len() as i64);
        }
        self.sessions_changed.notify_one();
    }

    /// Tells auth the running sessions whenever they change, and every
    /// `every` besides, so they stay listed while they run (auth drops the
    /// list of a node that stops telling).
    pub async fn report_sessions_forever(&self, every: Duration) {
        // An idle node says "none" once, not at every heartbeat.
        let mut reported_none = false;
        loop {
            let _ = tokio::time::timeout(every, self.sessions_changed.notified()).await;
            let sessions: Vec<ActiveSession> = self
                .active
                .lock()
                .map(|a| a.values().cloned().collect())
                .unwrap_or_default();
            if sessions.is_empty() && reported_none {
                continue;
            }
            let Some(api) = self.api_client() else {
                continue;
            };
            let none = sessions.is_empty();
            let sent: Result<Ack, _> = api
                .post(PATH_NODE_SESSIONS, &NodeSessionsRequest { sessions })
                .await;
            match sent {
                Ok(_) => reported_none = none,
                Err(e) => tracing::debug!(error = %e, "cannot report running sessions"),
            }
        }
    }
}
