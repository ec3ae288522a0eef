//! The connection to a node once the proxy has one (dialled, or a reverse
//! tunnel's data connection), and the copy both ways that every relay ends
//! in. A leaf module: the relay (`relay.rs`), raw relays (`raw.rs`) and
//! tunnels (`tunnel.rs`) all build on it and none of them on each other's
//! internals.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Per-direction copy buffer of a relayed connection.
const RELAY_BUFFER: usize = 256 * 1024;

/// Any byte stream a relay can carry.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub type BoxedStream = Box<dyn Stream>;

/// The connection to a node: dialled, or a reverse tunnel's data
/// connection; for an agentless node, its sshd and what the proxy needs
/// to end the client's SSH connection itself.
pub enum Upstream {
    Tcp(TcpStream),
    Tunnel(BoxedStream),
    Agentless(Box<Agentless>),
}

/// An agentless node's sshd, dialled, and who asked for it.
pub struct Agentless {
    pub sshd: TcpStream,
    pub node: jaunt_auth::records::NodeRecord,
    /// The user the relay is for (its TLS certificate).
    pub user: String,
    pub forwarder: Arc<jaunt_forward::Forwarder>,
}

impl Upstream {
    /// Tells a Jaunt node who the client is (`jaunt_ca::client_addr`),
    /// before any SSH byte; an agentless node's sshd is told nothing (the
    /// proxy is its client).
    pub async fn announce_client(&mut self, line: &str) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            Upstream::Tcp(s) => s.write_all(line.as_bytes()).await,
            Upstream::Tunnel(s) => {
                s.write_all(line.as_bytes()).await?;
                s.flush().await
            }
            Upstream::Agentless(_) => Ok(()),
        }
    }
}

impl Upstream {
    /// The one JSON line a leaf cluster's proxy answers with before any
    /// SSH byte (`remote.rs`).
    pub async fn read_answer<T: serde::de::DeserializeOwned>(&mut self) -> std::io::Result<T> {
        match self {
            Upstream::Tcp(s) => crate::lines::read_json_line(s).await,
            Upstream::Tunnel(s) => crate::lines::read_json_line(s).await,
            Upstream::Agentless(_) => Err(std::io::Error::other("not a leaf's connection")),
        }
    }
}

/// Copies bytes both ways until both sides are done.
pub async fn copy_both<A, B>(a: &mut A, b: &mut B, peer: SocketAddr)
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    // Large buffers: the relay moves bulk encrypted bytes, and 8 KiB copies
    // cost a wake-up (and over TLS a record) per few packets.
    let moved = tokio::io::copy_bidirectional_with_sizes(a, b, RELAY_BUFFER, RELAY_BUFFER).await;
    log_relay(peer, moved);
}

/// Carries a client's connection to a node until both sides are done:
/// bytes copied, or (agentless) the SSH connection served by the proxy.
pub async fn relay<C>(mut client: C, node: Upstream, peer: SocketAddr)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match node {
        Upstream::Tcp(mut node) => copy_both(&mut client, &mut node, peer).await,
        Upstream::Tunnel(mut node) => copy_both(&mut client, &mut node, peer).await,
        Upstream::Agentless(a) => {
            let a = *a;
            a.forwarder
                .serve(client, peer, a.sshd, a.node, a.user)
                .await
        }
    }
}

/// `relay` for a client on a plain socket: to a node's socket the kernel
/// moves the bytes (splice), and an agentless node's connection runs on
/// the forwarder's own threads.
pub async fn relay_tcp(client: TcpStream, node: Upstream, peer: SocketAddr) {
    match node {
        #[cfg(target_os = "linux")]
        Upstream::Tcp(node) => log_relay(peer, crate::splice::relay(&client, &node).await),
        Upstream::Agentless(a) => {
            let a = *a;
            a.forwarder
                .serve_tcp(client, peer, a.sshd, a.node, a.user)
                .await
        }
        node => relay(client, node, peer).await,
    }
}

/// How a relay ended: bytes each way, or why it broke.
pub fn log_relay(peer: SocketAddr, moved: std::io::Result<(u64, u64)>) {
    match moved {
        Ok((up, down)) => {
            let bytes = &jaunt_metrics::metrics().proxy_relay_bytes;
            bytes
                .get_or_create(&vec![("direction", "to_node")])
                .inc_by(up);
            bytes
                .get_or_create(&vec![("direction", "to_client")])
                .inc_by(down);
            tracing::debug!(%peer, up, down, "relay finished")
        }
        Err(e) => tracing::debug!(%peer, error = %e, "relay ended"),
    }
}
