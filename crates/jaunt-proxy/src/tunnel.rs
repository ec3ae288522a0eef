//! Reverse tunnels for nodes behind NAT. A node keeps one control
//! connection open (ALPN `jaunt-tunnel/1`, its node certificate); to reach
//! it the proxy sends `{"dial": id}` down that connection and the node
//! opens a fresh data connection back, `{"data": id}`, which carries the
//! SSH session. One TLS connection per session: no multiplexer to stall.

use crate::lines::{read_json_line, write_json_line};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
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

/// What the proxy sends down a control connection.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelCommand {
    Dial(u64),
}

pub type BoxedStream = Box<dyn Stream>;
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[derive(Default)]
pub struct Tunnels {
    next_id: AtomicU64,
    /// Node UUID -> the control connection's command queue.
    controls: Mutex<HashMap<String, (u64, mpsc::Sender<TunnelCommand>)>>,
    /// Dial id -> who waits for the data connection.
    pending: Mutex<HashMap<u64, (String, oneshot::Sender<BoxedStream>)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("node {0} has no tunnel to this proxy (is it running?)")]
    NotConnected(String),
    #[error("node {0} did not answer through its tunnel in time")]
    Timeout(String),
}

impl Tunnels {
    pub fn is_connected(&self, uuid: &str) -> bool {
        self.controls.lock().is_ok_and(|c| c.contains_key(uuid))
    }

    /// Serves a node's control connection until it closes.
    pub async fn serve_control<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &self,
        uuid: String,
        mut stream: S,
    ) {
        let (tx, mut rx) = mpsc::channel(64);
        let generation = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut c) = self.controls.lock() {
            // A reconnecting node replaces its old tunnel.
            c.insert(uuid.clone(), (generation, tx));
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
            && c.get(&uuid).is_some_and(|(g, _)| *g == generation)
        {
            c.remove(&uuid);
        }
        tracing::info!(node = %uuid, "reverse tunnel closed");
    }

    /// Hands a node's data connection to the session waiting for it.
    pub fn accept_data(&self, uuid: &str, id: u64, stream: BoxedStream) {
        let waiter = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        match waiter {
            Some((owner, tx)) if owner == uuid => {
                let _ = tx.send(stream);
            }
            Some(_) => {
                tracing::warn!(node = %uuid, id, "data connection for another node's session refused")
            }
            None => tracing::debug!(node = %uuid, id, "data connection for an unknown session"),
        }
    }

    /// Asks `uuid` for a new connection and waits for it.
    pub async fn dial(&self, uuid: &str, name: &str) -> Result<BoxedStream, TunnelError> {
        let control = self
            .controls
            .lock()
            .ok()
            .and_then(|c| c.get(uuid).map(|(_, tx)| tx.clone()))
            .ok_or_else(|| TunnelError::NotConnected(name.to_string()))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, (uuid.to_string(), tx));
        }
        let result = async {
            control
                .send(TunnelCommand::Dial(id))
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

/// Reads a tunnel connection's hello.
pub async fn read_hello<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<TunnelHello> {
    read_json_line(stream).await
}
