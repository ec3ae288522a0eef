//! The node's life: join once with a token (the identity is then stored, so
//! restarts need none: `identity.rs`), serve SSH on a direct listener
//! (`serve.rs`) or through reverse tunnels to every proxy instance that
//! reconnect with backoff (`tunnel.rs`), and heartbeat to stay in the
//! inventory, renew certificates and learn the instances (`heartbeat.rs`).

mod heartbeat;
mod identity;
mod locks;
mod penalty;
mod serve;
mod tunnel;

use crate::audit::AuditLog;
use crate::recording::Spool;
use crate::server::{NodeContext, parse_ca_keys};
use identity::{StoredIdentity, api_for, join, load_identity, save_identity};
use jaunt_ca::ssh_key::{Certificate, PrivateKey};
use jaunt_types::Secret;
use jaunt_types::api::RecordingMode;
use jaunt_types::resources::Labels;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// What `jaunt start --roles=node` is told.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub token: Option<Secret<String>>,
    /// `host:port` of the proxy.
    pub proxy: String,
    pub ca_pin: Option<String>,
    pub nodename: String,
    pub labels: Labels,
    /// `host:port` the proxy dials; `None`: reverse tunnel.
    pub advertise_addr: Option<String>,
    /// The `jaunt` binary, for the sftp subsystem (`jaunt sftp-server`).
    pub sftp_helper: Option<PathBuf>,
    /// A connection not authenticated this long after it opened is closed
    /// ([`LOGIN_GRACE`] unless a test wants it shorter).
    pub login_grace: Duration,
    /// The most disk the recordings waiting for upload may take; a
    /// recording that would pass it stops, marked truncated.
    pub recording_disk_limit: u64,
}

/// How long a client has to authenticate, as OpenSSH's LoginGraceTime
/// (120 s there): enough to read a host-key prompt, not enough to hold
/// connections open for nothing.
pub const LOGIN_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "this node has not joined a cluster yet: start it with --token (from 'jctl tokens add --type=node')"
    )]
    NoToken,
    /// The proxy refused the join, or could not be reached for it.
    #[error("joining the cluster: {0}")]
    Join(#[source] jaunt_transport::TransportError),
    #[error("{path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error(transparent)]
    Transport(#[from] jaunt_transport::TransportError),
    /// A key or certificate could not be made, read or encoded.
    #[error("node credentials: {0}")]
    Credentials(String),
    /// The reverse tunnel's connection failed.
    #[error("reverse tunnel: {0}")]
    Tunnel(#[source] std::io::Error),
    #[error(transparent)]
    TunnelOpen(#[from] jaunt_transport::tunnel::TunnelError),
    /// A thread panicked while holding the node's shared state.
    #[error("the node's shared state is unusable after a panic; restart the node")]
    Poisoned,
}

fn credentials(e: impl std::fmt::Display) -> NodeError {
    NodeError::Credentials(e.to_string())
}

/// A directory only this node's user may read.
fn private_dir(path: &Path) -> Result<PathBuf, NodeError> {
    jaunt_sys::fs::ensure_private_dir(path).map_err(|e| NodeError::Identity {
        path: e.path,
        reason: e.source.to_string(),
    })?;
    Ok(path.to_path_buf())
}

/// The SSH server's settings; `idle`: close connections idle this long.
fn ssh_config(
    id: &StoredIdentity,
    idle: Option<Duration>,
) -> Result<Arc<russh::server::Config>, NodeError> {
    let key = PrivateKey::from_openssh(id.host_key.expose()).map_err(credentials)?;
    let cert = Certificate::from_openssh(id.host_cert.trim()).map_err(credentials)?;
    Ok(Arc::new(russh::server::Config {
        keys: vec![key],
        certificates: vec![cert],
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        // russh restarts its inactivity clock on any traffic but its own
        // keepalives, and the client's answers to those are traffic: with
        // an idle timeout, it alone finds dead clients (as it closes idle
        // ones), so there are no keepalives. A client's own keepalives
        // (OpenSSH's ServerAliveInterval) count as activity.
        inactivity_timeout: idle,
        keepalive_interval: match idle {
            Some(_) => None,
            None => Some(Duration::from_secs(30)),
        },
        nodelay: true,
        // Room for a client's pipelined SFTP writes (OpenSSH keeps 64 x
        // 32 KiB in flight) without waiting for a window adjustment.
        window_size: 8 * 1024 * 1024,
        preferred: hardened_algorithms(),
        ..Default::default()
    }))
}

/// The node's SSH algorithms, after current hardening advice (ssh-audit
/// finds nothing to fail or warn about but curve25519's lack of
/// post-quantum protection): hybrid ML-KEM and curve25519 key exchange
/// only (no finite-field Diffie-Hellman: group14's 2048 bits are weak and
/// each group costs the server a modular exponentiation per unauthenticated
/// client), encrypt-then-MAC MACs only, and compression only once
/// authenticated (`zlib@openssh.com`). PuTTY 0.78, OpenSSH 9.2 and jsh
/// all negotiate curve25519 with chacha20-poly1305 or AES-GCM.
fn hardened_algorithms() -> russh::Preferred {
    use russh::{compression, kex, mac};
    russh::Preferred {
        kex: std::borrow::Cow::Borrowed(&[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]),
        mac: std::borrow::Cow::Borrowed(&[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM]),
        compression: std::borrow::Cow::Borrowed(&[compression::NONE, compression::ZLIB_LEGACY]),
        ..russh::Preferred::DEFAULT
    }
}

type SharedConfig = Arc<RwLock<Arc<russh::server::Config>>>;

/// A running node.
pub struct Node {
    pub uuid: String,
    pub cluster: String,
    pub ssh_addr: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// What brings connections: the direct listener, or the tunnels.
    accept: Option<tokio::task::JoinHandle<()>>,
    ctx: Arc<NodeContext>,
}

impl Node {
    pub fn stop(self) {
        for t in self.tasks.into_iter().chain(self.accept) {
            t.abort();
        }
    }

    /// The first step of a graceful stop: no new connection (the listener
    /// closes, the tunnels end); open ones go on.
    pub fn stop_accepting(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            tracing::info!(
                open = self.connections(),
                "draining: the node takes no new connections"
            );
        }
    }

    /// Authenticated connections open now.
    pub fn connections(&self) -> usize {
        *self.ctx.live.borrow()
    }

    /// The node's readiness check, for the diagnostics port: joined, and
    /// its last heartbeat answered within three of its intervals (at least
    /// 30 s); the reason if not.
    pub fn readiness(&self) -> Arc<dyn Fn() -> Result<(), String> + Send + Sync> {
        let ctx = self.ctx.clone();
        Arc::new(move || {
            use std::sync::atomic::Ordering;
            let last = ctx.heartbeat_ok.load(Ordering::Relaxed);
            if last == 0 {
                return Err("no heartbeat answered yet".into());
            }
            let every = ctx.heartbeat_every.load(Ordering::Relaxed) as i64;
            let ago = jaunt_sys::clock::now() - last;
            if ago > (3 * every).max(30) {
                return Err(format!("the last heartbeat auth answered was {ago} s ago"));
            }
            Ok(())
        })
    }

    /// Ends every open connection, telling its client `message`.
    pub fn end_connections(&self, message: &str) {
        self.ctx.shutdown.send_replace(Some(message.to_string()));
    }
}

/// Joins (or loads the stored identity) and starts serving. `listener` is
/// the bound SSH port in direct mode.
pub async fn start(cfg: NodeConfig, listener: Option<TcpListener>) -> Result<Node, NodeError> {
    let id = match load_identity(&cfg.data_dir)? {
        Some(id) => id,
        None => {
            let id = join(&cfg).await?;
            save_identity(&cfg.data_dir, &id)?;
            tracing::info!(uuid = %id.uuid, cluster = %id.cluster, "joined the cluster");
            id
        }
    };
    let ctx = Arc::new(NodeContext {
        cluster: id.cluster.clone(),
        uuid: id.uuid.clone(),
        proxy_addr: cfg.proxy.clone(),
        user_cas: RwLock::new(parse_ca_keys(&id.user_ca_keys)),
        trusted_cas: RwLock::default(),
        api: RwLock::new(api_for(&cfg, &id)?),
        sftp_helper: cfg.sftp_helper.clone(),
        login_grace: cfg.login_grace,
        nodename: cfg.nodename.clone(),
        audit: AuditLog::open(&cfg.data_dir, &id.cluster).map_err(|e| NodeError::Identity {
            path: cfg.data_dir.join(crate::audit::QUEUE_FILE),
            reason: e.to_string(),
        })?,
        spool: Spool::open(&cfg.data_dir, cfg.recording_disk_limit).map_err(|e| {
            NodeError::Identity {
                path: cfg.data_dir.join("recordings"),
                reason: e.to_string(),
            }
        })?,
        recording: RwLock::new(RecordingMode::default()),
        active: Mutex::new(HashMap::new()),
        sessions_changed: Notify::new(),
        running_dir: private_dir(&cfg.data_dir.join("running"))?,
        locks: tokio::sync::watch::Sender::new(Arc::new(Vec::new())),
        live: tokio::sync::watch::Sender::new(0),
        shutdown: tokio::sync::watch::Sender::new(None),
        heartbeat_ok: Default::default(),
        heartbeat_every: Default::default(),
        user_connections: Mutex::new(HashMap::new()),
        client_addr_key: RwLock::new(None),
    });
    crate::server::end_interrupted_sessions(&ctx);
    // The idle timeout comes with the first heartbeat, sent at once.
    let config: SharedConfig = Arc::new(RwLock::new(ssh_config(&id, None)?));
    // The proxy instances, as heartbeats report them (for the tunnels).
    let (proxies_tx, proxies) = tokio::sync::watch::channel(Vec::new());
    let mut tasks = Vec::new();
    // The first heartbeat (its answer carries the key the proxy's client
    // address lines are checked with) before serving, unless auth is out
    // of reach: then there is no proxy to bring connections either.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    tasks.push(tokio::spawn(heartbeat::heartbeat_loop(
        cfg.clone(),
        id.clone(),
        ctx.clone(),
        config.clone(),
        proxies_tx,
        first_tx,
    )));
    let _ = tokio::time::timeout(Duration::from_secs(10), first_rx).await;
    let ssh_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let accept = match listener {
        Some(l) => tokio::spawn(serve::serve_direct(l, ctx.clone(), config.clone())),
        None => tokio::spawn(tunnel::serve_tunnels(ctx.clone(), config.clone(), proxies)),
    };
    // Queued events and recordings (a killed node's too) go to auth.
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        c.audit.deliver(|| c.api_client()).await
    }));
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        c.spool.upload_forever(|| c.api_client()).await
    }));
    let c = ctx.clone();
    tasks.push(tokio::spawn(async move {
        c.report_sessions_forever(Duration::from_secs(5)).await
    }));
    tasks.push(tokio::spawn(locks::follow_locks(ctx.clone())));

    Ok(Node {
        uuid: id.uuid,
        cluster: id.cluster,
        ssh_addr,
        tasks,
        accept: Some(accept),
        ctx,
    })
}
