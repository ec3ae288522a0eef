//! The node's life: join once with a token (the identity is then stored, so
//! restarts need none), heartbeat to stay in the inventory and renew
//! certificates, and serve SSH on a direct listener or through a reverse
//! tunnel to the proxy that reconnects with backoff.

use crate::audit::AuditLog;
use crate::recording::Spool;
use crate::server::{Connection, NodeContext, parse_ca_keys};
use jaunt_ca::ssh_key::{Algorithm, Certificate, LineEnding, PrivateKey};
use jaunt_transport::{ApiClient, ClientCert, Trust};
use jaunt_types::Secret;
use jaunt_types::api::*;
use jaunt_types::resources::Labels;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
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
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "this node has not joined a cluster yet: start it with --token (from 'jctl tokens add --type=node')"
    )]
    NoToken,
    #[error("joining the cluster: {0}")]
    Join(String),
    #[error("{path}: {reason}")]
    Identity { path: PathBuf, reason: String },
    #[error("{0}")]
    Client(#[from] jaunt_transport::TransportError),
    #[error("{0}")]
    Key(String),
}

/// The node's credentials, stored in `<data_dir>/node-identity.json` (0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredIdentity {
    uuid: String,
    cluster: String,
    host_key: Secret<String>,
    host_cert: String,
    tls_key: Secret<String>,
    tls_cert: String,
    tls_ca: String,
    user_ca_keys: Vec<String>,
}

const IDENTITY_FILE: &str = "node-identity.json";

fn identity_path(dir: &Path) -> PathBuf {
    dir.join(IDENTITY_FILE)
}

fn load_identity(dir: &Path) -> Result<Option<StoredIdentity>, NodeError> {
    let path = identity_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| NodeError::Identity {
                path,
                reason: format!("{e}; delete it and join again with a new token"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::Identity {
            path,
            reason: e.to_string(),
        }),
    }
}

fn save_identity(dir: &Path, id: &StoredIdentity) -> Result<(), NodeError> {
    let path = identity_path(dir);
    let text = serde_json::to_vec_pretty(id).map_err(|e| NodeError::Key(e.to_string()))?;
    jaunt_sys::fs::write_atomic(&path, &text, jaunt_sys::fs::Mode::Private).map_err(|e| {
        NodeError::Identity {
            path: e.path,
            reason: e.source.to_string(),
        }
    })
}

async fn join(cfg: &NodeConfig) -> Result<StoredIdentity, NodeError> {
    let token = cfg.token.clone().ok_or(NodeError::NoToken)?;
    let mut rng = jaunt_ca::ssh_key::rand_core::UnwrapErr(jaunt_ca::ssh_key::getrandom::SysRng);
    let host_key = PrivateKey::random(&mut rng, Algorithm::Ed25519)
        .map_err(|e| NodeError::Key(e.to_string()))?;
    let (csr, tls_key) =
        jaunt_ca::generate_client_csr(&cfg.nodename).map_err(|e| NodeError::Key(e.to_string()))?;
    let trust = Trust {
        ca_pin: cfg.ca_pin.clone(),
        ..Default::default()
    };
    let api = ApiClient::new(&cfg.proxy, &trust, None)?;
    let resp: NodeJoinResponse = api
        .post(
            PATH_NODE_JOIN,
            &NodeJoinRequest {
                token,
                name: cfg.nodename.clone(),
                labels: cfg.labels.clone(),
                addr: cfg.advertise_addr.clone(),
                host_public_key: host_key
                    .public_key()
                    .to_openssh()
                    .map_err(|e| NodeError::Key(e.to_string()))?,
                tls_csr_pem: csr,
            },
        )
        .await
        .map_err(|e| NodeError::Join(e.to_string()))?;
    Ok(StoredIdentity {
        uuid: resp.uuid,
        cluster: resp.cluster_name,
        host_key: Secret::new(
            host_key
                .to_openssh(LineEnding::LF)
                .map_err(|e| NodeError::Key(e.to_string()))?
                .to_string(),
        ),
        host_cert: resp.host_cert,
        tls_key,
        tls_cert: resp.tls_cert_pem,
        tls_ca: resp.tls_ca_pem,
        user_ca_keys: resp.user_ca_keys,
    })
}

/// A directory only this node's user may read.
fn private_dir(path: &Path) -> Result<PathBuf, NodeError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| NodeError::Identity {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Ok(path.to_path_buf())
}

fn api_for(cfg: &NodeConfig, id: &StoredIdentity) -> Result<ApiClient, NodeError> {
    let trust = Trust {
        ca_pin: cfg.ca_pin.clone(),
        cluster_ca_pem: Some(id.tls_ca.clone()),
        insecure: false,
    };
    Ok(ApiClient::new(
        &cfg.proxy,
        &trust,
        Some(&ClientCert {
            cert_pem: id.tls_cert.clone(),
            key_pem: id.tls_key.expose().clone(),
        }),
    )?)
}

fn ssh_config(id: &StoredIdentity) -> Result<Arc<russh::server::Config>, NodeError> {
    let key = PrivateKey::from_openssh(id.host_key.expose())
        .map_err(|e| NodeError::Key(e.to_string()))?;
    let cert = Certificate::from_openssh(id.host_cert.trim())
        .map_err(|e| NodeError::Key(e.to_string()))?;
    Ok(Arc::new(russh::server::Config {
        keys: vec![key],
        certificates: vec![cert],
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        nodelay: true,
        // Room for a client's pipelined SFTP writes (OpenSSH keeps 64 x
        // 32 KiB in flight) without waiting for a window adjustment.
        window_size: 8 * 1024 * 1024,
        ..Default::default()
    }))
}

/// A running node.
pub struct Node {
    pub uuid: String,
    pub cluster: String,
    pub ssh_addr: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

type SharedConfig = Arc<RwLock<Arc<russh::server::Config>>>;

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
        api: RwLock::new(api_for(&cfg, &id)?),
        sftp_helper: cfg.sftp_helper.clone(),
        nodename: cfg.nodename.clone(),
        audit: AuditLog::open(&cfg.data_dir, &id.cluster).map_err(|e| NodeError::Identity {
            path: cfg.data_dir.join(crate::audit::QUEUE_FILE),
            reason: e.to_string(),
        })?,
        spool: Spool::open(&cfg.data_dir).map_err(|e| NodeError::Identity {
            path: cfg.data_dir.join("recordings"),
            reason: e.to_string(),
        })?,
        recording: RwLock::new(RecordingMode::default()),
        active: Mutex::new(HashMap::new()),
        sessions_changed: Notify::new(),
        running_dir: private_dir(&cfg.data_dir.join("running"))?,
    });
    crate::server::end_interrupted_sessions(&ctx);
    let config: SharedConfig = Arc::new(RwLock::new(ssh_config(&id)?));
    let mut tasks = Vec::new();
    let ssh_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    match listener {
        Some(l) => tasks.push(tokio::spawn(serve_direct(l, ctx.clone(), config.clone()))),
        None => tasks.push(tokio::spawn(serve_tunnel(ctx.clone(), config.clone()))),
    }
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
    tasks.push(tokio::spawn(heartbeat_loop(
        cfg,
        id.clone(),
        ctx.clone(),
        config,
    )));
    Ok(Node {
        uuid: id.uuid,
        cluster: id.cluster,
        ssh_addr,
        tasks,
    })
}

fn current(config: &SharedConfig) -> Option<Arc<russh::server::Config>> {
    config.read().ok().map(|c| c.clone())
}

async fn serve_direct(listener: TcpListener, ctx: Arc<NodeContext>, config: SharedConfig) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "SSH accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // russh sets TCP_NODELAY only on sockets it accepts itself.
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        serve_one(stream, peer, local, ctx.clone(), &config);
    }
}

/// Bytes read ahead of russh on each SSH connection.
const READ_AHEAD: usize = 128 * 1024;

fn serve_one<S>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    ctx: Arc<NodeContext>,
    config: &SharedConfig,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(config) = current(config) else {
        return;
    };
    // russh reads each packet with two exact reads (its length, then the
    // rest): a read-ahead buffer makes that one syscall per READ_AHEAD of
    // a bulk transfer instead of two per 32 KiB packet.
    let stream = tokio::io::BufReader::with_capacity(READ_AHEAD, stream);
    tokio::spawn(async move {
        match russh::server::run_stream(config, stream, Connection::new(ctx, peer, local)).await {
            Ok(session) => {
                if let Err(e) = session.await {
                    tracing::debug!(%peer, error = %e, "SSH connection ended");
                }
            }
            Err(e) => tracing::debug!(%peer, error = %e, "SSH handshake failed"),
        }
    });
}

/// Keeps the reverse tunnel up; reconnects with backoff.
async fn serve_tunnel(ctx: Arc<NodeContext>, config: SharedConfig) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match tunnel_once(&ctx, &config).await {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) => tracing::warn!(error = %e, retry_in = ?backoff, "reverse tunnel down"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

async fn tunnel_once(ctx: &Arc<NodeContext>, config: &SharedConfig) -> Result<(), NodeError> {
    let api = ctx
        .api
        .read()
        .map_err(|_| NodeError::Key("lock".into()))?
        .clone();
    let mut control = api.connect(ALPN_TUNNEL).await?;
    control
        .write_all(b"\"control\"\n")
        .await
        .map_err(|e| NodeError::Join(e.to_string()))?;
    control
        .flush()
        .await
        .map_err(|e| NodeError::Join(e.to_string()))?;
    tracing::info!("reverse tunnel to the proxy is up");
    // Raw data connections go to the proxy this control connection reached.
    let proxy_addr = control
        .get_ref()
        .0
        .peer_addr()
        .map_err(|e| NodeError::Join(e.to_string()))?;
    let mut lines = BufReader::new(control).lines();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| NodeError::Join(e.to_string()))?
    {
        let Ok(dial) = serde_json::from_str::<TunnelDial>(&line) else {
            continue;
        };
        let api = api.clone();
        let ctx = ctx.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let opened = match &dial.ticket {
                Some(ticket) => open_raw_data(proxy_addr, dial.dial, ticket)
                    .await
                    .map(|tcp| {
                        let local = tcp.local_addr().unwrap_or(proxy_addr);
                        serve_one(tcp, proxy_addr, local, ctx, &config);
                    }),
                None => open_tls_data(&api, dial.dial).await.map(|data| {
                    let peer = data.get_ref().0.peer_addr().unwrap_or(proxy_addr);
                    let local = data.get_ref().0.local_addr().unwrap_or(peer);
                    serve_one(data, peer, local, ctx, &config);
                }),
            };
            if let Err(e) = opened {
                tracing::warn!(error = %e, "tunnel data connection failed");
            }
        });
    }
    Ok(())
}

/// A data connection inside TLS with the node's certificate.
async fn open_tls_data(
    api: &ApiClient,
    id: u64,
) -> Result<jaunt_transport::relay::TlsRelay, NodeError> {
    let mut data = api.connect(ALPN_TUNNEL).await?;
    data.write_all(format!("{{\"data\":{id}}}\n").as_bytes())
        .await
        .map_err(|e| NodeError::Join(e.to_string()))?;
    Ok(data)
}

/// A raw data connection: plain TCP that the proxy splices to the client's
/// (SSH encrypts the session end to end); the ticket came on the control
/// connection.
async fn open_raw_data(proxy: SocketAddr, id: u64, ticket: &str) -> Result<TcpStream, NodeError> {
    let io = |e: std::io::Error| NodeError::Join(format!("raw data connection: {e}"));
    let mut tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(proxy))
        .await
        .map_err(|_| NodeError::Join("raw data connection: timed out".into()))?
        .map_err(io)?;
    let _ = tcp.set_nodelay(true);
    let line = [TUNNEL_DATA_MAGIC, format!("{id} {ticket}\n").as_bytes()].concat();
    tcp.write_all(&line).await.map_err(io)?;
    Ok(tcp)
}

fn cert_valid_before(pem: &str) -> u64 {
    Certificate::from_openssh(pem.trim())
        .map(|c| c.valid_before())
        .unwrap_or(0)
}

async fn heartbeat_loop(
    cfg: NodeConfig,
    mut id: StoredIdentity,
    ctx: Arc<NodeContext>,
    config: SharedConfig,
) {
    let mut every = Duration::from_secs(5);
    loop {
        match heartbeat_once(&cfg, &mut id, &ctx, &config).await {
            Ok(secs) => every = Duration::from_secs(secs.max(1)),
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        tokio::time::sleep(every).await;
    }
}

async fn heartbeat_once(
    cfg: &NodeConfig,
    id: &mut StoredIdentity,
    ctx: &NodeContext,
    config: &SharedConfig,
) -> Result<u64, NodeError> {
    let host_key = PrivateKey::from_openssh(id.host_key.expose())
        .map_err(|e| NodeError::Key(e.to_string()))?;
    let tls_expiry = jaunt_ca::client_identity_pem(&id.tls_cert)
        .map(|i| i.not_after)
        .unwrap_or(0);
    let now = jaunt_sys::clock::now();
    let tls_half_life = (NODE_CERT_TTL_SECS / 2) as i64;
    let new_tls = if tls_expiry - now < tls_half_life {
        Some(
            jaunt_ca::generate_client_csr(&cfg.nodename)
                .map_err(|e| NodeError::Key(e.to_string()))?,
        )
    } else {
        None
    };
    let api = ctx
        .api
        .read()
        .map_err(|_| NodeError::Key("lock".into()))?
        .clone();
    let resp: HeartbeatResponse = api
        .post_once(
            PATH_NODE_HEARTBEAT,
            &HeartbeatRequest {
                name: cfg.nodename.clone(),
                labels: cfg.labels.clone(),
                addr: cfg.advertise_addr.clone(),
                host_public_key: host_key
                    .public_key()
                    .to_openssh()
                    .map_err(|e| NodeError::Key(e.to_string()))?,
                host_cert_valid_before: cert_valid_before(&id.host_cert),
                tls_csr_pem: new_tls.as_ref().map(|(csr, _)| csr.clone()),
            },
        )
        .await?;
    let mut changed = false;
    if let Some(cert) = resp.host_cert {
        id.host_cert = cert;
        changed = true;
    }
    if let (Some(cert), Some((_, key))) = (resp.tls_cert_pem, new_tls) {
        id.tls_cert = cert;
        id.tls_key = key;
        changed = true;
    }
    if let Ok(mut mode) = ctx.recording.write() {
        *mode = resp.recording;
    }
    // Running sessions are re-reported at the heartbeat's pace, so they
    // stay listed exactly as long as the node stays online.
    ctx.sessions_changed.notify_one();
    if resp.user_ca_keys != id.user_ca_keys {
        id.user_ca_keys = resp.user_ca_keys;
        changed = true;
    }
    if changed {
        save_identity(&cfg.data_dir, id)?;
        if let Ok(mut cas) = ctx.user_cas.write() {
            *cas = parse_ca_keys(&id.user_ca_keys);
        }
        let api = api_for(cfg, id)?;
        if let Ok(mut a) = ctx.api.write() {
            *a = api;
        }
        let fresh = ssh_config(id)?;
        if let Ok(mut c) = config.write() {
            *c = fresh;
        }
        tracing::info!("node certificates renewed");
    }
    Ok(resp.heartbeat_secs)
}
