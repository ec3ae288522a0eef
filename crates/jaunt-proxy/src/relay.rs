//! The SSH relay (ALPN `jaunt-ssh/1`): a logged-in user names a target; the
//! proxy checks the user may see that node, connects to it (dialling its
//! address or through its reverse tunnel) and then only copies bytes, on
//! this connection or (a raw relay, `raw.rs`) on the plain TCP connection
//! that redeems the ticket it answers with. The SSH session is end to end
//! between the client and the node.

use crate::lines::{read_json_line, write_json_line};
use crate::raw::Tickets;
use crate::tunnel::{BoxedStream, Tunnels};
use jaunt_auth::AuthServer;
use jaunt_ca::IdentityKind;
use jaunt_types::api::{DialRequest, DialResponse};
use jaunt_types::route::{parse_target, resolve};
use jaunt_types::timefmt::format_unix;
use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-direction copy buffer of a relayed connection.
const RELAY_BUFFER: usize = 256 * 1024;

pub async fn serve<S>(
    mut client: S,
    peer: SocketAddr,
    cert: Option<CertificateDer<'static>>,
    auth: &AuthServer,
    tunnels: &Tunnels,
    tickets: Option<&Arc<Tickets>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (node, raw) = match connect(&mut client, cert, auth, tunnels).await {
        Ok(connected) => connected,
        Err(message) => {
            tracing::info!(%peer, reason = %message, "relay refused");
            let _ = write_json_line(&mut client, &DialResponse::refused(message)).await;
            return;
        }
    };
    if let Some(tickets) = tickets.filter(|_| raw) {
        let answer = DialResponse {
            error: None,
            ticket: Some(tickets.issue(peer.ip(), node)),
        };
        let _ = write_json_line(&mut client, &answer).await;
        return;
    }
    if write_json_line(&mut client, &DialResponse::default())
        .await
        .is_err()
    {
        return;
    }
    match node {
        Upstream::Tcp(mut node) => copy_both(&mut client, &mut node, peer).await,
        Upstream::Tunnel(mut node) => copy_both(&mut client, &mut node, peer).await,
    }
}

/// The connection to a node: dialled, or a reverse tunnel's data
/// connection.
pub enum Upstream {
    Tcp(TcpStream),
    Tunnel(BoxedStream),
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

/// How a relay ended: bytes each way, or why it broke.
pub fn log_relay(peer: SocketAddr, moved: std::io::Result<(u64, u64)>) {
    match moved {
        Ok((up, down)) => tracing::debug!(%peer, up, down, "relay finished"),
        Err(e) => tracing::debug!(%peer, error = %e, "relay ended"),
    }
}

async fn connect<S: AsyncRead + Unpin>(
    client: &mut S,
    cert: Option<CertificateDer<'static>>,
    auth: &AuthServer,
    tunnels: &Tunnels,
) -> Result<(Upstream, bool), String> {
    let der = cert.ok_or("the proxy needs your certificate: run 'jsh login'")?;
    let id = jaunt_ca::client_identity(&der).map_err(|e| e.to_string())?;
    if id.kind != IdentityKind::User || id.cluster != auth.identity().cluster_name {
        return Err("this certificate cannot open SSH sessions".into());
    }
    let req: DialRequest = read_json_line(client)
        .await
        .map_err(|e| format!("malformed dial request: {e}"))?;
    let cluster = &auth.identity().cluster_name;
    if let Some(asked) = req
        .cluster
        .as_deref()
        .filter(|c| !c.is_empty() && *c != cluster)
    {
        return Err(format!(
            "cluster {asked:?} is not known to this proxy (it serves {cluster:?})"
        ));
    }
    let target = parse_target(&req.target)?;
    let nodes = auth
        .nodes_for(&id.user, false)
        .await
        .map_err(|e| e.to_string())?;
    let infos: Vec<_> = nodes.iter().map(|n| n.info()).collect();
    let chosen = resolve(&infos, &target.host, target.port, cluster).map_err(|e| e.to_string())?;
    let node = nodes
        .iter()
        .find(|n| n.uuid == chosen.uuid)
        .ok_or("node vanished")?;
    if !auth.is_online(node) && !tunnels.is_connected(&node.uuid) {
        return Err(format!(
            "node {} is offline: its last heartbeat was at {}; check that it is running ('jsh ls' lists online nodes)",
            node.name,
            format_unix(node.last_seen)
        ));
    }
    match &node.addr {
        Some(addr) => {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| format!("node {} at {addr} did not answer in time", node.name))?
                .map_err(|e| format!("cannot reach node {} at {addr}: {e}", node.name))?;
            let _ = stream.set_nodelay(true);
            Ok((Upstream::Tcp(stream), req.raw))
        }
        None => tunnels
            .dial(&node.uuid, &node.name)
            .await
            .map(|s| (s, req.raw))
            .map_err(|e| e.to_string()),
    }
}
