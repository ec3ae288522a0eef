//! The proxy: the cluster's one public port. Every connection is TLS but
//! one: the ALPN protocol the client asks for decides what it is: the HTTPS
//! JSON API for `jsh` and nodes (`http/1.1`, also the default when a client
//! names none), a relayed SSH connection (`jaunt-ssh/1`), or a node's (or
//! a leaf cluster's) reverse tunnel (`jaunt-tunnel/1`). The exception is a raw relay
//! connection (`raw`), which redeems a ticket issued on a `jaunt-ssh/1`
//! connection and then carries the SSH bytes as they are.
//!
//! Architecture Invariant: the proxy keeps no keys of its own besides its
//! TLS certificate and, for agentless nodes, an SSH host key made at start
//! and held in memory only (auth certifies it per node); at a leaf cluster
//! it uses the tunnel certificate its root issued, which auth keeps in the
//! store with the trust. It asks the auth service for every decision.

mod api;
mod diag;
mod leaf;
pub mod limits;
pub mod lines;
mod peers;
pub mod raw;
mod relay;
mod remote;
#[cfg(target_os = "linux")]
mod splice;
mod tls;
pub mod tunnel;
mod upstream;

pub use diag::{Readiness, serve_diag};
pub use tls::{CertPem, ClusterTls, PublicCert, TlsError, server_config};

use jaunt_auth::AuthServer;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a connection is, by its negotiated ALPN protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Ssh,
    Tunnel,
}

fn protocol_of(alpn: Option<&[u8]>) -> Option<Protocol> {
    use jaunt_types::api::{ALPN_HTTP, ALPN_SSH, ALPN_TUNNEL};
    match alpn {
        None => Some(Protocol::Http),
        Some(p) if p == ALPN_HTTP => Some(Protocol::Http),
        Some(p) if p == ALPN_SSH => Some(Protocol::Ssh),
        Some(p) if p == ALPN_TUNNEL => Some(Protocol::Tunnel),
        Some(_) => None,
    }
}

/// A graceful stop: once started the proxy closes its port and takes
/// nothing new, while the sessions it relays run on; the daemon waits for
/// [`Drain::sessions`] to reach zero (or its `shutdown_timeout`) before it
/// stops the proxy.
pub struct Drain {
    sessions: std::sync::atomic::AtomicUsize,
    draining: tokio::sync::watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            sessions: Default::default(),
            draining: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Drain {
    pub fn start(&self) {
        self.draining.send_replace(true);
    }

    /// Relayed connections open now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(std::sync::atomic::Ordering::Acquire)
    }

    fn session(self: &Arc<Self>) -> Session {
        self.sessions
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        jaunt_metrics::metrics().proxy_relayed.inc();
        Session(self.clone())
    }
}

/// One relayed connection, counted while it lives.
struct Session(Arc<Drain>);

impl Drop for Session {
    fn drop(&mut self) {
        self.0
            .sessions
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        jaunt_metrics::metrics().proxy_relayed.dec();
    }
}

/// Serves the public port on an already-bound listener until `shutdown`;
/// from `drain`'s start it accepts nothing new.
pub async fn serve(
    listener: TcpListener,
    auth: Arc<AuthServer>,
    tls: Arc<rustls::ServerConfig>,
    options: Options,
    limiter: Arc<limits::Limiter>,
    drain: Arc<Drain>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let instance = jaunt_types::api::ProxyInstance {
        id: uuid::Uuid::new_v4().to_string(),
        addr: options.public_addr.clone(),
        peer_addr: options.peer_addr.clone(),
    };
    let peer_key = match auth.peer_key().await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "the proxy cannot read the cluster's peer key");
            return;
        }
    };
    let peers = Arc::new(peers::Peers::new(
        peers::PeerKey::new(&instance.id, &peer_key),
        auth.clone(),
    ));
    let tunnels = Arc::new(tunnel::Tunnels::new(options.raw_relay, instance.id.clone()));
    let registration = tokio::spawn(register_forever(auth.clone(), instance.clone()));
    let tickets = options
        .raw_relay
        .then(|| Arc::new(raw::Tickets::new(peers.tag())));
    let dial_policy = Arc::new(options.dial_policy);
    let forwarder = match jaunt_forward::Forwarder::new(auth.clone()) {
        Ok(f) => Arc::new(f),
        Err(e) => {
            tracing::error!(error = %e, "the proxy cannot serve agentless nodes");
            return;
        }
    };
    let router = api::router(auth.clone(), tunnels.clone());
    // At a leaf: a tunnel to each root this cluster trusts.
    let roots = tokio::spawn(leaf::serve_roots(
        auth.clone(),
        tunnels.clone(),
        dial_policy.clone(),
        forwarder.clone(),
    ));
    tokio::pin!(shutdown);
    // Live connections end with the proxy, as they would with its process.
    let mut connections = tokio::task::JoinSet::new();
    let mut listener = Some(listener);
    let mut draining = drain.draining.subscribe();
    loop {
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // (The watch's guard is dropped before the select! holds it.)
            Ok(()) = async { draining.wait_for(|d| *d).await.map(|_| ()) }, if listener.is_some() => {
                // The port closes: clients and nodes turn to another
                // instance (or wait for the restart).
                listener = None;
                tracing::info!(sessions = drain.sessions(), "draining: the proxy takes no new connections");
            }
            _ = &mut shutdown => {
                connections.abort_all();
                registration.abort();
                roots.abort();
                auth.unregister_proxy(&instance.id).await;
                return;
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = accept => match accepted {
                Ok((stream, peer)) => {
                    // Over a limit: closed before any work (dropped here).
                    let Some(admitted) = limiter.admit(peer.ip()) else { continue };
                    let ctx = Ctx { acceptor: acceptor.clone(), router: router.clone(), auth: auth.clone(), tunnels: tunnels.clone(), tickets: tickets.clone(), dial_policy: dial_policy.clone(), forwarder: forwarder.clone(), peers: peers.clone(), drain: drain.clone() };
                    connections.spawn(async move { handle(stream, peer, ctx, admitted).await });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Keeps this instance on the cluster's proxy list while it runs.
async fn register_forever(auth: Arc<AuthServer>, instance: jaunt_types::api::ProxyInstance) {
    let mut tick = tokio::time::interval(jaunt_auth::proxies::RENEW_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = auth.register_proxy(&instance).await {
            tracing::warn!(error = %e, "cannot register this proxy instance");
        }
    }
}

/// What every connection needs.
struct Ctx {
    acceptor: TlsAcceptor,
    router: axum::Router,
    auth: Arc<AuthServer>,
    tunnels: Arc<tunnel::Tunnels>,
    /// `None` when raw relays are turned off.
    tickets: Option<Arc<raw::Tickets>>,
    dial_policy: Arc<jaunt_types::addr::DialPolicy>,
    forwarder: Arc<jaunt_forward::Forwarder>,
    peers: Arc<peers::Peers>,
    drain: Arc<Drain>,
}

/// The proxy's settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Grant raw relays (SSH bytes on a plain TCP connection after a TLS
    /// dial request) to clients that ask; otherwise SSH stays inside TLS.
    pub raw_relay: bool,
    /// Which addresses direct-mode nodes may be dialled at.
    pub dial_policy: jaunt_types::addr::DialPolicy,
    /// `host:port` where nodes reach this instance (registered for tunnel
    /// nodes, which keep a tunnel to every instance).
    pub public_addr: String,
    /// `host:port` where the other instances reach this one.
    pub peer_addr: String,
}

/// Serves one connection; `admitted` holds its place under the limits
/// until it ends.
async fn handle(stream: TcpStream, peer: SocketAddr, ctx: Ctx, mut admitted: limits::Admitted) {
    let _ = stream.set_nodelay(true);
    if let Some(tickets) = &ctx.tickets {
        let mut first = [0u8; 1];
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] == jaunt_types::api::RAW_RELAY_MAGIC[0] => {
                // Its first line has a deadline of its own.
                admitted.established();
                count_connection("raw");
                let _session = ctx.drain.session();
                return raw::serve(stream, peer, tickets, &ctx.tunnels, &ctx.peers).await;
            }
            Ok(Ok(1)) => {}
            _ => return,
        }
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, ctx.acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    admitted.established();
    let (_, conn) = tls.get_ref();
    // A resumed TLS session carries the certificate of its first handshake,
    // which is not verified again: one that has expired since counts as none.
    let now = jaunt_sys::clock::now();
    let client_cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
        .filter(|c| jaunt_ca::client_identity(c).is_ok_and(|id| id.not_after >= now));
    count_connection(match protocol_of(conn.alpn_protocol()) {
        Some(Protocol::Http) => "http",
        Some(Protocol::Ssh) => "ssh",
        Some(Protocol::Tunnel) => "tunnel",
        None => "unknown",
    });
    match protocol_of(conn.alpn_protocol()) {
        Some(Protocol::Http) => api::serve_connection(tls, peer, client_cert, ctx.router).await,
        Some(Protocol::Ssh) => {
            let _session = ctx.drain.session();
            relay::serve(
                tls,
                peer,
                client_cert,
                relay::Routes {
                    auth: &ctx.auth,
                    tunnels: &ctx.tunnels,
                    tickets: ctx.tickets.as_ref(),
                    dial_policy: &ctx.dial_policy,
                    forwarder: &ctx.forwarder,
                },
            )
            .await
        }
        Some(Protocol::Tunnel) => serve_tunnel(tls, peer, client_cert, &ctx).await,
        None => tracing::debug!(%peer, "unknown ALPN protocol"),
    }
}

/// A node's tunnel connection: its certificate says which node it is.
async fn serve_tunnel<S>(
    mut stream: S,
    peer: SocketAddr,
    cert: Option<rustls_pki_types::CertificateDer<'static>>,
    ctx: &Ctx,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let now = jaunt_sys::clock::now();
    let id = cert
        .and_then(|der| jaunt_ca::client_identity(&der).ok())
        .filter(|id| id.cluster == ctx.auth.identity().cluster_name && id.not_after > now);
    let node = match id {
        Some(id) if id.kind == jaunt_ca::IdentityKind::Node => id,
        Some(id) if id.kind == jaunt_ca::IdentityKind::RemoteCluster => {
            return serve_leaf_tunnel(stream, peer, id.user, ctx).await;
        }
        _ => {
            tracing::warn!(%peer, "tunnel connection without a node certificate refused");
            return;
        }
    };
    match tunnel::read_hello(&mut stream).await {
        Ok(tunnel::TunnelHello::Control) => {
            ctx.tunnels
                .serve_control(node.user, peer.ip(), stream)
                .await
        }
        Ok(tunnel::TunnelHello::Data(id)) => {
            ctx.tunnels.accept_data(&node.user, id, Box::new(stream))
        }
        Err(e) => tracing::debug!(%peer, error = %e, "bad tunnel hello"),
    }
}

fn count_connection(protocol: &'static str) {
    let m = jaunt_metrics::metrics();
    jaunt_metrics::Metrics::inc(&m.proxy_connections, &[("protocol", protocol)]);
}

/// A leaf cluster's tunnel: kept while the leaf is a remote cluster here
/// (removing it closes the tunnel within seconds).
async fn serve_leaf_tunnel<S>(mut stream: S, peer: SocketAddr, leaf: String, ctx: &Ctx)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let auth = &ctx.auth;
    match auth.remote_cluster(&leaf).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::warn!(%peer, %leaf, "tunnel of a leaf cluster that is not trusted here refused");
            return;
        }
        Err(e) => {
            tracing::warn!(%peer, %leaf, error = %e, "cannot check a leaf cluster's tunnel");
            return;
        }
    }
    let key = remote::leaf_key(&leaf);
    match tunnel::read_hello(&mut stream).await {
        Ok(tunnel::TunnelHello::Control) => {
            auth.leaf_link(&leaf, true);
            tokio::select! {
                _ = ctx.tunnels.serve_control(key, peer.ip(), stream) => {}
                _ = leaf_removed(auth, &leaf) => {
                    tracing::info!(%leaf, "remote cluster removed: its tunnel is closed");
                }
            }
            auth.leaf_link(&leaf, false);
        }
        Ok(tunnel::TunnelHello::Data(id)) => ctx.tunnels.accept_data(&key, id, Box::new(stream)),
        Err(e) => tracing::debug!(%peer, error = %e, "bad tunnel hello"),
    }
}

/// Returns once remote cluster `leaf` is no longer stored.
async fn leaf_removed(auth: &AuthServer, leaf: &str) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(None) = auth.remote_cluster(leaf).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_dispatch() {
        assert_eq!(protocol_of(None), Some(Protocol::Http));
        assert_eq!(protocol_of(Some(b"http/1.1")), Some(Protocol::Http));
        assert_eq!(protocol_of(Some(b"jaunt-ssh/1")), Some(Protocol::Ssh));
        assert_eq!(protocol_of(Some(b"jaunt-tunnel/1")), Some(Protocol::Tunnel));
        assert_eq!(protocol_of(Some(b"h2")), None);
    }
}
