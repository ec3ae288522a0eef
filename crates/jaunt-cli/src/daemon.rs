//! Assembles the daemon's services from a resolved [`Config`]: the store,
//! the auth service with its admin socket, and the proxy on an already-bound
//! listener. `jaunt start` and the in-process test harness both use this.

use anyhow::{Context, bail};
use jaunt_auth::{AuthConfig, AuthServer, RecordingStorage};
use jaunt_config::{Config, Recordings, Service};
use jaunt_store::{PgOptions, PostgresBackend, SharedBackend, SqliteBackend, Store};
use jaunt_types::admin::ADMIN_SOCKET;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often expired tokens are swept from the store.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// A running daemon. Dropping it does not stop it; call [`Daemon::stop`].
pub struct Daemon {
    pub auth: Option<Arc<AuthServer>>,
    /// Where the proxy listens, if it runs.
    pub proxy_addr: Option<SocketAddr>,
    /// Where the diagnostics port (`/healthz`, `/readyz`, `/metrics`)
    /// listens, if it is on.
    pub diag_addr: Option<SocketAddr>,
    /// The cluster CA pin, when this process runs auth.
    pub ca_pin: Option<String>,
    pub node: Option<jaunt_node::Node>,
    /// The proxy's graceful stop, when it runs.
    drain: Option<Arc<jaunt_proxy::Drain>>,
    /// What a SIGHUP changes in the running proxy.
    reload: Option<Reload>,
    admin_socket: Option<PathBuf>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Creates the data directory readable by its owner only.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
        tracing::warn!(dir = %dir.display(), "data directory was readable by others; set it to 0700");
    }
    Ok(())
}

fn bind_admin_socket(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        // A live daemon would answer; a stale socket from a crash does not.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another jaunt is already running with this data directory (its admin socket {} answers)",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding admin socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn read_file(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// What starting auth (and the proxy) gives the daemon.
struct Started {
    auth: Arc<AuthServer>,
    admin_socket: PathBuf,
    proxy_addr: Option<SocketAddr>,
    drain: Option<Arc<jaunt_proxy::Drain>>,
    diag_addr: Option<SocketAddr>,
    reload: Option<Reload>,
}

/// The running proxy's settings a reload changes in place.
struct Reload {
    limiter: Arc<jaunt_proxy::limits::Limiter>,
    public_cert: jaunt_proxy::PublicCert,
}

fn conn_limits(config: &Config) -> jaunt_proxy::limits::ConnLimits {
    jaunt_proxy::limits::ConnLimits {
        max_connections: config.limits.max_connections,
        max_connections_per_ip: config.limits.max_connections_per_ip,
        max_pending_per_ip: config.limits.max_pending_per_ip,
    }
}

/// The operator's certificate and key (`tls_cert_file`, `tls_key_file`).
fn read_public_cert(config: &Config) -> anyhow::Result<Option<(String, String)>> {
    match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some((
            read_file(cert, "tls_cert_file")?,
            read_file(key, "tls_key_file")?,
        ))),
        _ => Ok(None),
    }
}

/// Starts the configured services. `listener` is the proxy's bound port;
/// `ssh_listener` the node's, in direct mode.
pub async fn start(
    config: &Config,
    listener: Option<TcpListener>,
    ssh_listener: Option<TcpListener>,
) -> anyhow::Result<Daemon> {
    prepare_data_dir(&config.data_dir)?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut daemon = Daemon {
        auth: None,
        proxy_addr: None,
        diag_addr: None,
        ca_pin: None,
        node: None,
        drain: None,
        reload: None,
        admin_socket: None,
        stop,
        tasks: Vec::new(),
    };
    if config.runs(Service::Auth) {
        let started = start_auth(config, listener, &stopped, &mut tasks).await?;
        daemon.drain = started.drain;
        daemon.reload = started.reload;
        daemon.diag_addr = started.diag_addr;
        daemon.ca_pin = Some(started.auth.authorities().tls.pin()?);
        daemon.auth = Some(started.auth);
        daemon.admin_socket = Some(started.admin_socket);
        daemon.proxy_addr = started.proxy_addr;
    }
    if let Some(node) = &config.node {
        let mut advertise_addr = node.advertise_addr.clone();
        let listener = match (ssh_listener, node.ssh_listen) {
            (Some(l), _) => Some(l),
            (None, Some(addr)) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening for SSH on {addr}"))?,
            ),
            (None, None) => None,
        };
        // With port 0 the kernel picks; the proxy must be told the real one.
        if let (Some(l), Some(adv)) = (&listener, &advertise_addr)
            && adv.ends_with(":0")
        {
            advertise_addr = Some(format!(
                "{}:{}",
                &adv[..adv.len() - 2],
                l.local_addr()?.port()
            ));
        }
        let node_config = jaunt_node::NodeConfig {
            data_dir: config.data_dir.clone(),
            token: node.token.clone(),
            proxy: node.proxy.clone(),
            ca_pin: node.ca_pin.clone().or_else(|| daemon.ca_pin.clone()),
            nodename: node.nodename.clone(),
            labels: node.labels.clone(),
            advertise_addr,
            // This very binary serves SFTP as `jaunt sftp-server`.
            sftp_helper: std::env::current_exe().ok(),
            login_grace: jaunt_node::LOGIN_GRACE,
            recording_disk_limit: node.recording_disk_limit,
        };
        let started = jaunt_node::start(node_config, listener).await?;
        // A node alone serves the diagnostics port with its own readiness.
        if let Some(addr) = config.diag_addr.filter(|_| daemon.auth.is_none()) {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("diagnostics port {addr}"))?;
            daemon.diag_addr = listener.local_addr().ok();
            let mut rx = stopped.clone();
            tasks.push(tokio::spawn(jaunt_proxy::serve_diag(
                listener,
                jaunt_proxy::Readiness::Node(started.readiness()),
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                },
            )));
        }
        daemon.node = Some(started);
    }
    daemon.tasks = tasks;
    Ok(daemon)
}

/// Opens the cluster's store: the SQLite file, or the shared PostgreSQL
/// database (waiting a while for it to answer).
pub async fn open_backend(storage: &jaunt_config::Storage) -> anyhow::Result<SharedBackend> {
    use anyhow::Context;
    let what = || format!("opening the store {}", storage.describe());
    Ok(match storage {
        jaunt_config::Storage::Sqlite { path } => {
            Arc::new(SqliteBackend::open(path).with_context(what)?)
        }
        jaunt_config::Storage::Postgres {
            conn_string,
            pool_size,
        } => {
            let options = PgOptions {
                pool_size: *pool_size,
                ..PgOptions::default()
            };
            Arc::new(
                PostgresBackend::connect(conn_string.expose(), options)
                    .await
                    .with_context(what)?,
            )
        }
    })
}

async fn start_auth(
    config: &Config,
    listener: Option<TcpListener>,
    stopped: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<Started> {
    let stopped_signal = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let store = Store::new(open_backend(&config.storage).await?);
    let auth = Arc::new(
        AuthServer::start(
            store,
            AuthConfig {
                cluster_name: config.cluster_name.clone(),
                public_addr: config.public_addr.clone(),
                second_factor: config.second_factor,
                max_login_attempts: config.max_login_attempts,
                lockout_duration: config.lockout_duration,
                node_offline_after: config.node_offline_after,
                recording: config.recording,
                client_idle_timeout: config.client_idle_timeout,
                audit_retention: config.audit_retention,
                recording_retention: config.recording_retention,
                recordings: match &config.recordings {
                    Recordings::Store => RecordingStorage::Store,
                    Recordings::Dir(dir) => RecordingStorage::Dir(dir.clone()),
                },
            },
        )
        .await?,
    );
    let admin_socket = config.data_dir.join(ADMIN_SOCKET);
    let admin = bind_admin_socket(&admin_socket)?;
    tasks.push(tokio::spawn(jaunt_auth::admin::serve(
        admin,
        auth.clone(),
        stopped_signal(stopped.clone()),
    )));

    let mut proxy_addr = None;
    let mut drain = None;
    let mut reload = None;
    if config.runs(Service::Proxy) {
        let listener = match listener {
            Some(l) => l,
            None => bind_public(config.listen)
                .with_context(|| format!("listening on {}", config.listen))?,
        };
        let bound = listener.local_addr()?;
        proxy_addr = Some(bound);
        let peer_addr =
            config
                .peer_addr
                .clone()
                .unwrap_or_else(|| match bound.ip().is_unspecified() {
                    true => format!("{}:{}", config.host_name, bound.port()),
                    false => bound.to_string(),
                });
        // The cluster-issued certificate is always there: clients that
        // trust only the cluster's CA (nodes, jsh after login) ask for it
        // by name; an operator's certificate serves everyone else.
        let mut names = vec![
            config.public_host.clone(),
            jaunt_types::api::CLUSTER_SERVER_NAME.to_string(),
        ];
        for local in ["localhost", "127.0.0.1", "::1"] {
            if !names.iter().any(|n| n == local) {
                names.push(local.to_string());
            }
        }
        let issued = auth.proxy_tls(&names).await?;
        let cluster = jaunt_proxy::CertPem {
            chain: &issued.cert_pem,
            key: issued.key_pem.expose(),
        };
        let public = read_public_cert(config)?;
        let public_pem = public
            .as_ref()
            .map(|(chain, key)| jaunt_proxy::CertPem { chain, key });
        let (tls, public_cert, cluster_tls) = jaunt_proxy::server_config(
            cluster,
            public_pem,
            &issued.ca_pem,
            &auth.authorities().tls.bundle(),
        )?;
        // A TLS CA rotation reaches the proxy within a second: the CAs
        // client certificates are checked against, and from
        // update_servers its own certificate from the new CA.
        tasks.push(tokio::spawn(follow_tls_rotation(
            auth.clone(),
            cluster_tls,
            names,
            issued.ca_pem.clone(),
            stopped_signal(stopped.clone()),
        )));
        let limiter = jaunt_proxy::limits::Limiter::new(conn_limits(config));
        reload = Some(Reload {
            limiter: limiter.clone(),
            public_cert,
        });
        let proxy_drain = Arc::new(jaunt_proxy::Drain::default());
        drain = Some(proxy_drain.clone());
        tasks.push(tokio::spawn(jaunt_proxy::serve(
            listener,
            auth.clone(),
            tls,
            jaunt_proxy::Options {
                raw_relay: config.raw_relay,
                dial_policy: config.dial_policy.clone(),
                public_addr: config.public_addr.clone(),
                peer_addr,
            },
            limiter,
            proxy_drain,
            stopped_signal(stopped.clone()),
        )));
    }

    let mut diag_addr = None;
    if let Some(addr) = config.diag_addr {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("diagnostics port {addr}"))?;
        diag_addr = listener.local_addr().ok();
        tasks.push(tokio::spawn(jaunt_proxy::serve_diag(
            listener,
            jaunt_proxy::Readiness::Auth(auth.clone()),
            stopped_signal(stopped.clone()),
        )));
    }

    let purger = auth.clone();
    tasks.push(tokio::spawn(every(
        PURGE_INTERVAL,
        stopped_signal(stopped.clone()),
        "purging expired records failed",
        move || {
            let auth = purger.clone();
            async move { auth.purge_expired().await.map(|_| ()) }
        },
    )));
    // Locks made through another instance hold here within a second.
    let locks = auth.clone();
    tasks.push(tokio::spawn(every(
        jaunt_auth::locks::REFRESH_EVERY,
        stopped_signal(stopped.clone()),
        "reading the locks failed",
        move || {
            let auth = locks.clone();
            async move { auth.refresh_locks().await }
        },
    )));
    // So are CA rotations (and an automatic one moves on when due).
    let authorities = auth.clone();
    tasks.push(tokio::spawn(every(
        jaunt_auth::locks::REFRESH_EVERY,
        stopped_signal(stopped.clone()),
        "reading the certificate authorities failed",
        move || {
            let auth = authorities.clone();
            async move { auth.refresh_authorities().await }
        },
    )));
    Ok(Started {
        auth,
        admin_socket,
        proxy_addr,
        drain,
        diag_addr,
        reload,
    })
}

/// Applies the TLS CA's changes to the proxy as auth sees them (a step
/// made here at once, one made elsewhere within a second): when the
/// trusted CAs or the CA that signs servers' certificates change, the
/// proxy's certificate (re-issued by auth when its issuer no longer
/// signs) and the client verifier's CAs are replaced.
async fn follow_tls_rotation(
    auth: Arc<AuthServer>,
    cluster_tls: jaunt_proxy::ClusterTls,
    names: Vec<String>,
    mut shown_ca: String,
    stopped: impl std::future::Future<Output = ()>,
) {
    let mut changes = auth.watch_authorities();
    let mut trusted = auth.authorities().tls.bundle();
    let mut failed = false;
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            changed = changes.changed() => if changed.is_err() { return },
            // A failed attempt is tried again.
            _ = tokio::time::sleep(jaunt_auth::locks::REFRESH_EVERY), if failed => {}
        }
        let cas = auth.authorities();
        let (now_trusted, signer) = (cas.tls.bundle(), cas.tls.server_signer().cert_pem());
        if now_trusted == trusted && signer == shown_ca {
            continue;
        }
        let replaced = match auth.proxy_tls(&names).await {
            Ok(issued) => cluster_tls
                .replace(
                    jaunt_proxy::CertPem {
                        chain: &issued.cert_pem,
                        key: issued.key_pem.expose(),
                    },
                    &issued.ca_pem,
                    &now_trusted,
                )
                .map(|()| issued.ca_pem)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        failed = replaced.is_err();
        match replaced {
            Ok(ca) => {
                tracing::info!(phase = %cas.tls.phase(), "the proxy's TLS certificate and CAs follow the TLS CA");
                (trusted, shown_ca) = (now_trusted, ca);
            }
            Err(e) => tracing::error!(error = %e, "cannot apply the TLS CA's change; retrying"),
        }
    }
}

impl Daemon {
    /// Stops every service and removes the admin socket.
    /// Applies what can change while running from `config` (SIGHUP): the
    /// proxy's connection limits and its `tls_cert_file`, read again.
    /// Says what it changed.
    pub fn reload(&self, config: &Config) -> anyhow::Result<Vec<String>> {
        let Some(r) = &self.reload else {
            return Ok(Vec::new());
        };
        let mut said = Vec::new();
        let (old, new) = (r.limiter.limits(), conn_limits(config));
        if old != new {
            r.limiter.set_limits(new);
            said.push(format!("connection limits {old:?} -> {new:?}"));
        }
        let public = read_public_cert(config)?;
        let pem = public
            .as_ref()
            .map(|(chain, key)| jaunt_proxy::CertPem { chain, key });
        r.public_cert.replace(pem)?;
        said.push(match public {
            Some(_) => "tls_cert_file read again".to_string(),
            None => "no tls_cert_file: the cluster's certificate for everyone".to_string(),
        });
        Ok(said)
    }

    /// A graceful stop (SIGTERM): the proxy closes its port and the node
    /// takes no new connection; running sessions get `timeout` to finish,
    /// then the node ends its own with a message and everything stops.
    pub async fn drain(mut self, timeout: std::time::Duration) {
        if let Some(d) = &self.drain {
            d.start();
        }
        if let Some(node) = &mut self.node {
            node.stop_accepting();
        }
        let open = |d: &Daemon| {
            d.drain.as_ref().map_or(0, |p| p.sessions())
                + d.node.as_ref().map_or(0, |n| n.connections())
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut said = tokio::time::Instant::now();
        while open(&self) > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    open = open(&self),
                    ?timeout,
                    "shutdown_timeout reached: ending the sessions left"
                );
                if let Some(node) = &self.node {
                    node.end_connections("the node is shutting down; reconnect in a moment");
                    // Long enough for the disconnect messages to go out.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                        while node.connections() > 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    })
                    .await;
                }
                break;
            }
            if said.elapsed() >= std::time::Duration::from_secs(5) {
                tracing::info!(open = open(&self), "draining: waiting for sessions to end");
                said = tokio::time::Instant::now();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.stop().await
    }

    pub async fn stop(self) {
        if let Some(node) = self.node {
            node.stop();
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(sock) = self.admin_socket {
            let _ = std::fs::remove_file(sock);
        }
    }
}

/// The proxy's listening socket, with a backlog for bursts of connections
/// (the kernel caps it at `net.core.somaxconn`): a connection the backlog
/// cannot queue waits seconds for a SYN-ACK retry, while the accept loop
/// would have turned it away, or served it, at once.
pub fn bind_public(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Runs `work` every `period` until `stop`, logging its failures as `what`.
async fn every<F, Fut>(
    period: std::time::Duration,
    stop: impl std::future::Future<Output = ()>,
    what: &'static str,
    mut work: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), jaunt_auth::AuthError>>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                if let Err(e) = work().await {
                    tracing::warn!(error = %e, "{what}");
                }
            }
        }
    }
}
