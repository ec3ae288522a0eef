//! Reverse tunnels for nodes behind NAT. A node keeps one control
//! connection open (ALPN `jaunt-tunnel/1`, its node certificate); to reach
//! it the proxy sends `{"dial": id}` down that connection and the node
//! opens a fresh data connection back, `{"data": id}`, which carries the
//! SSH session. One connection per session: no multiplexer to stall. When
//! the proxy grants raw relays, the dial carries a one-time ticket and the
//! data connection is plain TCP (`TUNNEL_DATA_MAGIC`, id, ticket): SSH
//! protects the session end to end, and the proxy splices it unencrypted
//! by a second layer. The ticket went only to the node, on its
//! authenticated control connection, and works only from that node's
//! address.

use crate::lines::{read_json_line, write_json_line};
use crate::upstream::{BoxedStream, Upstream};
use jaunt_types::api::TunnelDial;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// How long a node has to call back for a session.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The first line a node sends on a tunnel connection.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelHello {
    Control,
    Data(u64),
}

pub struct Tunnels {
    /// This proxy instance's ID, told to each node on its control
    /// connection (a node keeps one tunnel to every instance).
    proxy_id: String,
    /// Its tag, the start of the tickets of raw data connections.
    tag: String,
    next_id: AtomicU64,
    /// Data connections may be raw (ticketed plain TCP).
    raw: bool,
    /// Node UUID -> its control connection.
    controls: Mutex<HashMap<String, Control>>,
    /// Dial id -> who waits for the data connection.
    pending: Mutex<HashMap<u64, Waiter>>,
}

struct Control {
    generation: u64,
    commands: mpsc::Sender<TunnelDial>,
    /// Where the node's control connection comes from; raw data
    /// connections must come from there too.
    ip: IpAddr,
}

struct Waiter {
    node: String,
    /// `Some` for a raw data connection: the ticket and the address.
    raw: Option<(String, IpAddr)>,
    tx: oneshot::Sender<Upstream>,
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("node {0} has no tunnel to this proxy (is it running?)")]
    NotConnected(String),
    #[error("node {0} did not answer through its tunnel in time")]
    Timeout(String),
}

impl Tunnels {
    pub fn new(raw: bool, proxy_id: String) -> Self {
        Tunnels {
            tag: crate::peers::tag_of(&proxy_id),
            proxy_id,
            next_id: AtomicU64::new(0),
            raw,
            controls: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_connected(&self, uuid: &str) -> bool {
        self.controls.lock().is_ok_and(|c| c.contains_key(uuid))
    }

    /// Serves a node's control connection until it closes.
    pub async fn serve_control<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &self,
        uuid: String,
        ip: IpAddr,
        mut stream: S,
    ) {
        let greeting = jaunt_types::api::TunnelGreeting {
            proxy: self.proxy_id.clone(),
        };
        if write_json_line(&mut stream, &greeting).await.is_err() {
            return;
        }
        let (tx, mut rx) = mpsc::channel(64);
        let generation = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = self.controls.lock() {
            // A reconnecting node replaces its old tunnel.
            c.insert(
                uuid.clone(),
                Control {
                    generation,
                    commands: tx,
                    ip,
                },
            );
        }
        tracing::info!(node = %uuid, "reverse tunnel connected");
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => if write_json_line(&mut stream, &cmd).await.is_err() { break },
                    None => break,
                },
                // The node sends nothing on the control connection; a read
                // returning is its close (or a protocol error).
                _ = tokio::io::AsyncReadExt::read(&mut stream, &mut probe) => break,
            }
        }
        if let Ok(mut c) = self.controls.lock()
            && c.get(&uuid).is_some_and(|c| c.generation == generation)
        {
            c.remove(&uuid);
        }
        tracing::info!(node = %uuid, "reverse tunnel closed");
    }

    /// Hands a node's TLS data connection (its certificate names `uuid`)
    /// to the session waiting for it.
    pub fn accept_data(&self, uuid: &str, id: u64, stream: BoxedStream) {
        match self.take_waiter(id, |w| w.node == uuid) {
            Some(w) => {
                let _ = w.tx.send(Upstream::Tunnel(stream));
            }
            None => {
                tracing::warn!(node = %uuid, id, "data connection for an unknown or another node's session refused")
            }
        }
    }

    /// Hands a raw data connection from `ip` with `ticket` to the session
    /// waiting for it.
    pub fn accept_raw_data(&self, id: u64, ticket: &str, ip: IpAddr, stream: TcpStream) -> bool {
        let fits = |w: &Waiter| {
            w.raw
                .as_ref()
                .is_some_and(|(t, from)| same(t.as_bytes(), ticket.as_bytes()) && *from == ip)
        };
        match self.take_waiter(id, fits) {
            Some(w) => w.tx.send(Upstream::Tcp(stream)).is_ok(),
            None => {
                tracing::warn!(%ip, id, "raw data connection with a wrong ticket or address refused");
                false
            }
        }
    }

    /// Removes and returns the waiter for `id` if `fits` it: a connection
    /// that does not fit must not cancel the dial.
    fn take_waiter(&self, id: u64, fits: impl FnOnce(&Waiter) -> bool) -> Option<Waiter> {
        let mut pending = self.pending.lock().ok()?;
        if pending.get(&id).is_some_and(fits) {
            pending.remove(&id)
        } else {
            None
        }
    }

    /// Asks `uuid` (a node, or a leaf cluster's `leaf_key`) for a new
    /// connection and waits for it; `request` says what a leaf is to do
    /// with it.
    pub async fn dial(
        &self,
        uuid: &str,
        name: &str,
        request: Option<jaunt_types::trust::ClusterRequest>,
    ) -> Result<Upstream, TunnelError> {
        let (control, ip) = self
            .controls
            .lock()
            .ok()
            .and_then(|c| c.get(uuid).map(|c| (c.commands.clone(), c.ip)))
            .ok_or_else(|| TunnelError::NotConnected(name.to_string()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ticket = self.raw.then(|| crate::peers::new_ticket(&self.tag));
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            let waiter = Waiter {
                node: uuid.to_string(),
                raw: ticket.clone().map(|t| (t, ip)),
                tx,
            };
            p.insert(id, waiter);
        }
        let result = async {
            control
                .send(TunnelDial {
                    dial: id,
                    ticket,
                    request,
                })
                .await
                .map_err(|_| TunnelError::NotConnected(name.to_string()))?;
            tokio::time::timeout(DIAL_TIMEOUT, rx)
                .await
                .map_err(|_| TunnelError::Timeout(name.to_string()))?
                .map_err(|_| TunnelError::Timeout(name.to_string()))
        }
        .await;
        if result.is_err()
            && let Ok(mut p) = self.pending.lock()
        {
            p.remove(&id);
        }
        result
    }
}

/// Compares secrets in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a tunnel connection's hello.
pub async fn read_hello<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<TunnelHello> {
    read_json_line(stream).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncBufReadExt;

    const NODE_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const OTHER_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    async fn tcp() -> TcpStream {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback");
        let (a, _b) = tokio::join!(
            TcpStream::connect(l.local_addr().expect("loopback")),
            l.accept()
        );
        a.expect("loopback")
    }

    type Dial = tokio::task::JoinHandle<Result<Upstream, TunnelError>>;

    /// A node's control connection on `Tunnels::new(raw)` and one dial
    /// through it: the dial's task and the command the node received.
    async fn one_dial(raw: bool) -> (Arc<Tunnels>, Dial, TunnelDial) {
        let tunnels = Arc::new(Tunnels::new(raw, "proxy-a".into()));
        let (node_end, proxy_end) = tokio::io::duplex(4096);
        let t = tunnels.clone();
        tokio::spawn(async move { t.serve_control("uuid-1".into(), NODE_IP, proxy_end).await });
        let mut commands = tokio::io::BufReader::new(node_end).lines();
        // First the instance says who it is.
        let first = commands.next_line().await.expect("io").expect("a line");
        let greeting: jaunt_types::api::TunnelGreeting =
            serde_json::from_str(&first).expect("a greeting");
        assert_eq!(greeting.proxy, "proxy-a");
        // The control connection is registered once its task runs.
        while !tunnels.is_connected("uuid-1") {
            tokio::task::yield_now().await;
        }
        let t = tunnels.clone();
        let dial = tokio::spawn(async move { t.dial("uuid-1", "node1", None).await });
        let line = commands.next_line().await.expect("io").expect("a line");
        let cmd = serde_json::from_str(&line).expect("a dial command");
        (tunnels, dial, cmd)
    }

    #[tokio::test]
    async fn a_raw_data_connection_needs_the_ticket_and_the_nodes_address() {
        let (tunnels, dial, cmd) = one_dial(true).await;
        let ticket = cmd.ticket.expect("raw tunnels send a ticket");
        let wrong = "f".repeat(40);
        assert!(!tunnels.accept_raw_data(cmd.dial, &wrong, NODE_IP, tcp().await));
        assert!(!tunnels.accept_raw_data(cmd.dial, &ticket, OTHER_IP, tcp().await));
        assert!(!tunnels.accept_raw_data(cmd.dial + 1, &ticket, NODE_IP, tcp().await));
        // Those refusals did not cancel the dial: the right one still lands.
        assert!(tunnels.accept_raw_data(cmd.dial, &ticket, NODE_IP, tcp().await));
        assert!(matches!(
            dial.await.expect("dial task"),
            Ok(Upstream::Tcp(_))
        ));
        // And only once.
        assert!(!tunnels.accept_raw_data(cmd.dial, &ticket, NODE_IP, tcp().await));
    }

    #[tokio::test]
    async fn without_raw_relays_a_dial_carries_no_ticket() {
        let (tunnels, _dial, cmd) = one_dial(false).await;
        assert_eq!(cmd.ticket, None);
        assert!(!tunnels.accept_raw_data(cmd.dial, &"0".repeat(40), NODE_IP, tcp().await));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
