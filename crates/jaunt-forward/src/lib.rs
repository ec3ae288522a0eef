//! Agentless (OpenSSH) nodes. A stock sshd cannot check this cluster's
//! roles, audit or record, so for such a node the proxy does not splice
//! bytes: it ends the user's SSH connection itself, presenting a host
//! certificate for the node's names (so clients trust it as they trust any
//! node), checks and authorizes the user as a node would (`server.rs`),
//! logs in to sshd with a certificate made for that one login by the
//! cluster's OpenSSH CA, which no user ever holds (`upstream.rs`), and
//! carries each channel between the two (`channel.rs`), auditing and
//! recording on the way (`sftp.rs`, `record.rs`).

mod channel;
mod record;
mod server;
pub mod sftp;
mod upstream;
mod workers;

use jaunt_auth::AuthServer;
use jaunt_auth::records::NodeRecord;
use jaunt_ca::ssh_key::{Algorithm, PrivateKey};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The SSH window the user's client is granted at most: what OpenSSH's
/// sshd grants a session channel. A client that pipelines as far as its
/// window lets it (PuTTY's psftp) then has no more requests queued at the
/// sshd behind the proxy than it would have without it; with 8 MiB here
/// sshd's SFTP server held megabytes of requests, and it copies its whole
/// input queue per request, so uploads crawled (measured: ~400 KB/s).
pub(crate) const WINDOW: u32 = 2 * 1024 * 1024;
/// The window sshd is granted (its replies, downloads).
pub(crate) const SSHD_WINDOW: u32 = 8 * 1024 * 1024;

/// The read-ahead buffer of each of a session's two SSH connections: one
/// packet's worth. 128 KiB moved no more bytes a second (1 GiB sftp, scp
/// and psftp each way, alternating builds) and cost 29 KiB more per idle
/// session (docs/benchmarks.md).
pub(crate) const READ_AHEAD: usize = 32 * 1024;

/// How long a client may take to authenticate.
const LOGIN_GRACE: Duration = Duration::from_secs(60);
/// A host certificate is made again when less than this is left of it.
const RENEW_BEFORE: u64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot make the proxy's host key: {0}")]
    Key(String),
    #[error("cannot certify the proxy for node {node}: {reason}")]
    Certificate { node: String, reason: String },
    #[error("cannot start the agentless relay's threads: {0}")]
    Threads(std::io::Error),
}

/// The proxy's side of every agentless node: one host key, and a
/// certificate for it per node (made by auth, kept until near its end).
pub struct Forwarder {
    auth: Arc<AuthServer>,
    host_key: PrivateKey,
    configs: Mutex<HashMap<String, CachedConfig>>,
    workers: workers::Workers,
}

/// The server settings presenting one node's names, until its
/// certificate's end, and the host CA key that signed it.
#[derive(Clone)]
struct CachedConfig {
    config: Arc<russh::server::Config>,
    until: u64,
    signer: String,
}

impl Forwarder {
    pub fn new(auth: Arc<AuthServer>) -> Result<Self, ForwardError> {
        let host_key = PrivateKey::random(
            &mut jaunt_ca::ssh_key::rand_core::UnwrapErr(jaunt_ca::ssh_key::getrandom::SysRng),
            Algorithm::Ed25519,
        )
        .map_err(|e| ForwardError::Key(e.to_string()))?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Forwarder {
            auth,
            host_key,
            configs: Mutex::new(HashMap::new()),
            workers: workers::Workers::start(threads).map_err(ForwardError::Threads)?,
        })
    }

    /// The SSH server settings that present `node`'s names.
    fn config(&self, node: &NodeRecord) -> Result<Arc<russh::server::Config>, ForwardError> {
        let now = jaunt_sys::clock::now().max(0) as u64;
        // A certificate from the key that signs host certificates now (a
        // rotation's update_servers changes it) and not near its end.
        let signer = self.auth.authorities().host.signer().fingerprint();
        if let Some(cached) = self
            .configs
            .lock()
            .ok()
            .and_then(|c| c.get(&node.uuid).cloned())
            && cached.until > now + RENEW_BEFORE
            && cached.signer == signer
        {
            return Ok(cached.config);
        }
        let cert = self
            .auth
            .sign_forwarding_host(node, self.host_key.public_key().clone())
            .map_err(|e| ForwardError::Certificate {
                node: node.name.clone(),
                reason: e.to_string(),
            })?;
        let until = cert.valid_before();
        let config = Arc::new(russh::server::Config {
            keys: vec![self.host_key.clone()],
            certificates: vec![cert],
            methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey][..]),
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keepalive_interval: Some(Duration::from_secs(30)),
            nodelay: true,
            window_size: WINDOW,
            ..Default::default()
        });
        if let Ok(mut c) = self.configs.lock() {
            c.insert(
                node.uuid.clone(),
                CachedConfig {
                    config: config.clone(),
                    until,
                    signer,
                },
            );
        }
        Ok(config)
    }

    /// `serve` for a client on a plain socket, on one of the forwarder's
    /// threads (`workers.rs`): both sockets move there, so that thread
    /// alone reads and writes them.
    pub async fn serve_tcp(
        self: &Arc<Self>,
        client: TcpStream,
        peer: SocketAddr,
        sshd: TcpStream,
        node: NodeRecord,
        relay_user: String,
    ) {
        let (client, sshd) = match (client.into_std(), sshd.into_std()) {
            (Ok(client), Ok(sshd)) => (client, sshd),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(%peer, error = %e, "agentless relay failed: cannot hand its sockets over");
                return;
            }
        };
        let this = self.clone();
        let task = self.workers.pick().spawn(async move {
            match (TcpStream::from_std(client), TcpStream::from_std(sshd)) {
                (Ok(client), Ok(sshd)) => this.serve(client, peer, sshd, node, relay_user).await,
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(%peer, error = %e, "agentless relay failed: cannot take its sockets over")
                }
            }
        });
        let _stop = workers::AbortOnDrop(task.abort_handle());
        let _ = task.await;
    }

    /// Serves one client connection for `node`, whose sshd is `sshd`,
    /// until it ends. `relay_user` opened the relay (its TLS identity):
    /// the SSH certificate must be the same user's.
    pub async fn serve<S>(
        &self,
        client: S,
        peer: SocketAddr,
        sshd: TcpStream,
        node: NodeRecord,
        relay_user: String,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let config = match self.config(&node) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "agentless relay failed");
                return;
            }
        };
        let name = node.name.clone();
        let connection = server::Connection::new(self.auth.clone(), node, peer, relay_user, sshd);
        let authenticated = connection.authenticated();
        let client = tokio::io::BufReader::with_capacity(READ_AHEAD, client);
        let serve = async {
            match russh::server::run_stream(config, client, connection).await {
                Ok(session) => {
                    if let Err(e) = session.await {
                        tracing::debug!(%peer, node = %name, error = %e, "agentless SSH connection ended");
                    }
                }
                Err(e) => tracing::debug!(%peer, error = %e, "agentless SSH handshake failed"),
            }
        };
        let grace_over = async {
            tokio::time::sleep(LOGIN_GRACE).await;
            if authenticated.load(std::sync::atomic::Ordering::Acquire) {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = serve => {}
            () = grace_over => tracing::info!(%peer, "agentless SSH connection closed: not authenticated in time"),
        }
    }
}
