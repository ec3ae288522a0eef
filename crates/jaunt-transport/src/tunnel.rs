//! The far end of a reverse tunnel, as a node or a leaf cluster's proxy
//! keeps one to a proxy: the control connection (ALPN `jaunt-tunnel/1`,
//! the caller's certificate; the proxy greets with its instance ID, then
//! sends one `TunnelDial` line per connection it wants) and the data
//! connections opened for each dial, raw (ticketed plain TCP) or in TLS.

use crate::ApiClient;
use crate::relay::TlsRelay;
use jaunt_types::api::{ALPN_TUNNEL, TUNNEL_DATA_MAGIC, TunnelGreeting};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;

/// The control connection's lines.
pub type Control = Lines<BufReader<TlsRelay>>;

/// How long a proxy has to greet a new control connection. One that says
/// nothing is an earlier version (no ID): the tunnel is kept as it is.
const GREETING_WAIT: Duration = Duration::from_secs(5);
const DATA_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error(transparent)]
    Transport(#[from] crate::TransportError),
    #[error("tunnel: {0}")]
    Io(#[from] io::Error),
}

/// A control connection to the proxy at `addr`: the ID its instance
/// greeted with (`""` from one that gives none), its lines, and the
/// address it reached (raw data connections go there).
pub async fn open_control(
    api: &ApiClient,
    addr: &str,
) -> Result<(String, Control, SocketAddr), TunnelError> {
    let mut control = api.connect_to(addr, ALPN_TUNNEL).await?;
    control.write_all(b"\"control\"\n").await?;
    control.flush().await?;
    let proxy_addr = control.get_ref().0.peer_addr()?;
    let mut lines = BufReader::new(control).lines();
    let id = match tokio::time::timeout(GREETING_WAIT, lines.next_line()).await {
        Ok(line) => {
            let line = line?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "the proxy closed the tunnel")
            })?;
            match serde_json::from_str::<TunnelGreeting>(&line) {
                Ok(g) => g.proxy,
                // An earlier proxy's first line is already a dial; it is
                // dropped (that proxy times it out, its client dials again).
                Err(_) => String::new(),
            }
        }
        Err(_) => String::new(),
    };
    Ok((id, lines, proxy_addr))
}

/// A data connection inside TLS with the caller's certificate, to the
/// instance that asked (the address its control connection reached).
pub async fn open_tls_data(
    api: &ApiClient,
    proxy: SocketAddr,
    id: u64,
) -> Result<TlsRelay, TunnelError> {
    let mut data = api.connect_to(&proxy.to_string(), ALPN_TUNNEL).await?;
    data.write_all(format!("{{\"data\":{id}}}\n").as_bytes())
        .await?;
    Ok(data)
}

/// A raw data connection: plain TCP that the proxy splices to the
/// client's (SSH encrypts the session end to end); the ticket came on the
/// control connection.
pub async fn open_raw_data(
    proxy: SocketAddr,
    id: u64,
    ticket: &str,
) -> Result<TcpStream, TunnelError> {
    let mut tcp = tokio::time::timeout(DATA_CONNECT_TIMEOUT, TcpStream::connect(proxy))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "raw data connection: timed out"))??;
    let _ = tcp.set_nodelay(true);
    let line = [TUNNEL_DATA_MAGIC, format!("{id} {ticket}\n").as_bytes()].concat();
    tcp.write_all(&line).await?;
    Ok(tcp)
}
