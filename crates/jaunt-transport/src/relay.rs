//! Reaching a node through the proxy: a TLS connection on ALPN
//! `jaunt-ssh/1` with the user's certificate, one line naming the target,
//! one line back. The proxy either carries the node's SSH bytes on that
//! connection or (a raw relay, its default) answers with a one-time ticket
//! that a new plain TCP connection redeems; SSH encrypts and authenticates
//! those bytes end to end, and the proxy copies them without a second layer.

use crate::api::ApiClient;
use crate::{Result, TransportError};
use jaunt_types::api::{ALPN_SSH, DialRequest, DialResponse, RAW_RELAY_MAGIC};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

pub type TlsRelay = tokio_rustls::client::TlsStream<TcpStream>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection whose next bytes are the node's SSH server.
pub enum Relayed {
    /// A plain TCP connection to the proxy, which copies it to the node.
    Raw(TcpStream),
    /// Inside the TLS connection of the request.
    Tls(Box<TlsRelay>),
}

/// What the proxy granted a dial request.
pub enum Grant {
    /// Redeem the ticket at this address (the proxy the request reached).
    Ticket {
        addr: SocketAddr,
        ticket: String,
    },
    Stream(Box<TlsRelay>),
}

/// Opens a relayed connection to `target` (`login@host[:port]`).
pub async fn dial(client: &ApiClient, target: &str, cluster: Option<&str>) -> Result<Relayed> {
    Ok(dial_routed(client, target, cluster).await?.0)
}

/// As [`dial`], with the UUID of the node the proxy routed to (when the
/// proxy says: older ones do not).
pub async fn dial_routed(
    client: &ApiClient,
    target: &str,
    cluster: Option<&str>,
) -> Result<(Relayed, Option<String>)> {
    let (grant, node) = request_routed(client, target, cluster, true).await?;
    let relayed = match grant {
        Grant::Ticket { addr, ticket } => Relayed::Raw(redeem(addr, &ticket).await?),
        Grant::Stream(tls) => Relayed::Tls(tls),
    };
    Ok((relayed, node))
}

/// Sends a dial request; `raw` asks for a ticket, which the proxy may
/// decline (`ssh_relay: tls`) by carrying the bytes itself.
pub async fn request(
    client: &ApiClient,
    target: &str,
    cluster: Option<&str>,
    raw: bool,
) -> Result<Grant> {
    Ok(request_routed(client, target, cluster, raw).await?.0)
}

/// As [`request`], with the routed node's UUID.
pub async fn request_routed(
    client: &ApiClient,
    target: &str,
    cluster: Option<&str>,
    raw: bool,
) -> Result<(Grant, Option<String>)> {
    let mut conn = client.connect(ALPN_SSH).await?;
    let addr = conn.get_ref().0.peer_addr().map_err(io_error)?;
    let mut line = serde_json::to_vec(&DialRequest {
        target: target.to_string(),
        cluster: cluster.map(str::to_string),
        raw,
    })
    .map_err(|e| TransportError::Protocol(e.to_string()))?;
    line.push(b'\n');
    conn.write_all(&line).await.map_err(io_error)?;
    conn.flush().await.map_err(io_error)?;
    let answer = read_answer(&mut conn).await?;
    match answer.ticket {
        Some(ticket) => {
            // Close the request's connection properly; its work is done.
            let _ = conn.shutdown().await;
            Ok((Grant::Ticket { addr, ticket }, answer.node))
        }
        None => Ok((Grant::Stream(Box::new(conn)), answer.node)),
    }
}

/// Redeems a raw relay ticket at the proxy's `addr`.
pub async fn redeem(addr: SocketAddr, ticket: &str) -> Result<TcpStream> {
    let mut tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| TransportError::Connect {
            addr: addr.to_string(),
            reason: "timed out".into(),
        })?
        .map_err(|e| TransportError::Connect {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    let mut line = RAW_RELAY_MAGIC.to_vec();
    line.extend_from_slice(ticket.as_bytes());
    line.push(b'\n');
    tcp.write_all(&line).await.map_err(io_error)?;
    read_answer(&mut tcp).await?;
    Ok(tcp)
}

fn io_error(e: std::io::Error) -> TransportError {
    TransportError::Protocol(format!("the proxy closed the connection: {e}"))
}

/// The proxy's answer line, read without consuming a byte past it; its
/// error becomes `Err`.
async fn read_answer<S: AsyncRead + Unpin>(conn: &mut S) -> Result<DialResponse> {
    let mut answer = Vec::new();
    loop {
        let b = conn.read_u8().await.map_err(io_error)?;
        if b == b'\n' {
            break;
        }
        answer.push(b);
        if answer.len() > 8192 {
            return Err(TransportError::Protocol(
                "the proxy sent a malformed answer".into(),
            ));
        }
    }
    let resp: DialResponse =
        serde_json::from_slice(&answer).map_err(|e| TransportError::Protocol(e.to_string()))?;
    match resp.error {
        Some(message) => Err(TransportError::Api {
            code: jaunt_types::api::ErrorCode::AccessDenied,
            message,
        }),
        None => Ok(resp),
    }
}

impl AsyncRead for Relayed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Relayed::Raw(s) => Pin::new(s).poll_read(cx, buf),
            Relayed::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Relayed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Relayed::Raw(s) => Pin::new(s).poll_write(cx, buf),
            Relayed::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Relayed::Raw(s) => Pin::new(s).poll_flush(cx),
            Relayed::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Relayed::Raw(s) => Pin::new(s).poll_shutdown(cx),
            Relayed::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
