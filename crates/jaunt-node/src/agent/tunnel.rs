//! The reverse tunnel, for nodes the proxy cannot dial: one control
//! connection to the proxy (ALPN `jaunt-tunnel/1`, the node's certificate),
//! and for each session a fresh data connection back, raw (ticketed plain
//! TCP) or in TLS. It reconnects with backoff.

use super::serve::serve_one;
use super::{NodeError, SharedConfig};
use crate::server::NodeContext;
use jaunt_transport::ApiClient;
use jaunt_types::api::{ALPN_TUNNEL, TUNNEL_DATA_MAGIC, TunnelDial};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Keeps the reverse tunnel up; reconnects with backoff.
pub(super) async fn serve_tunnel(ctx: Arc<NodeContext>, config: SharedConfig) {
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
    let api = ctx.api.read().map_err(|_| NodeError::Poisoned)?.clone();
    let mut control = api.connect(ALPN_TUNNEL).await?;
    control
        .write_all(b"\"control\"\n")
        .await
        .map_err(NodeError::Tunnel)?;
    control.flush().await.map_err(NodeError::Tunnel)?;
    tracing::info!("reverse tunnel to the proxy is up");
    // Raw data connections go to the proxy this control connection reached.
    let proxy_addr = control.get_ref().0.peer_addr().map_err(NodeError::Tunnel)?;
    let mut lines = BufReader::new(control).lines();
    while let Some(line) = lines.next_line().await.map_err(NodeError::Tunnel)? {
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
        .map_err(NodeError::Tunnel)?;
    Ok(data)
}

/// A raw data connection: plain TCP that the proxy splices to the client's
/// (SSH encrypts the session end to end); the ticket came on the control
/// connection.
async fn open_raw_data(proxy: SocketAddr, id: u64, ticket: &str) -> Result<TcpStream, NodeError> {
    let io = NodeError::Tunnel;
    let mut tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(proxy))
        .await
        .map_err(|_| {
            NodeError::Tunnel(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "raw data connection: timed out",
            ))
        })?
        .map_err(io)?;
    let _ = tcp.set_nodelay(true);
    let line = [TUNNEL_DATA_MAGIC, format!("{id} {ticket}\n").as_bytes()].concat();
    tcp.write_all(&line).await.map_err(io)?;
    Ok(tcp)
}
