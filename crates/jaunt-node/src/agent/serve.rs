//! Serving SSH: each connection, from the direct listener or a tunnel's
//! data connection, gets a russh server with the node's current config.
//! Direct connections from an address whose connections keep ending
//! unauthenticated are turned away first (`penalty.rs`).

use super::SharedConfig;
use super::penalty::Penalties;
use crate::server::{Connection, NodeContext};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

fn current(config: &SharedConfig) -> Option<Arc<russh::server::Config>> {
    config.read().ok().map(|c| c.clone())
}

pub(super) async fn serve_direct(
    listener: TcpListener,
    ctx: Arc<NodeContext>,
    config: SharedConfig,
) {
    let penalties = Arc::new(Penalties::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "SSH accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !penalties.admits(peer.ip()) {
            continue;
        }
        // russh sets TCP_NODELAY only on sockets it accepts itself.
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        let ended = penalties.clone();
        serve_one(
            stream,
            peer,
            local,
            ctx.clone(),
            &config,
            move |authenticated| ended.ended(peer.ip(), authenticated),
        );
    }
}

/// How long a new connection's first byte is waited for, to tell the
/// proxy's client-address line from a client that speaks second.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(1);

/// Bytes read ahead of russh on each SSH connection.
const READ_AHEAD: usize = 128 * 1024;

pub(super) fn serve_one<S>(
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    ctx: Arc<NodeContext>,
    config: &SharedConfig,
    on_end: impl FnOnce(bool) + Send + 'static,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(config) = current(config) else {
        return;
    };
    // russh reads each packet with two exact reads (its length, then the
    // rest): a read-ahead buffer makes that one syscall per READ_AHEAD of
    // a bulk transfer instead of two per 32 KiB packet.
    let mut stream = tokio::io::BufReader::with_capacity(READ_AHEAD, stream);
    let grace = ctx.login_grace;
    let authenticated = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = authenticated.clone();
    tokio::spawn(async move {
        let serve = async {
            // Through the proxy, the client's address comes first, in the
            // proxy's word; a line that is not the proxy's ends it here.
            let client = match client_of(&mut stream, peer, &ctx).await {
                Ok(client) => client,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "connection refused: bad client address line");
                    return;
                }
            };
            let connection = Connection::new(ctx, client, local).with_authenticated(flag);
            match russh::server::run_stream(config, stream, connection).await {
                Ok(session) => {
                    if let Err(e) = session.await {
                        tracing::debug!(%peer, error = %e, "SSH connection ended");
                    }
                }
                Err(e) => tracing::debug!(%peer, error = %e, "SSH handshake failed"),
            }
        };
        // A client that has not authenticated in time is dropped (the
        // connection with it), so silent or stalled clients cannot hold
        // the node's connections.
        let grace_over = async {
            tokio::time::sleep(grace).await;
            if authenticated.load(std::sync::atomic::Ordering::Acquire) {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = serve => {}
            () = grace_over => {
                tracing::info!(%peer, ?grace, "SSH connection closed: not authenticated in time");
            }
        }
        on_end(authenticated.load(std::sync::atomic::Ordering::Acquire));
    });
}

/// The client's address: the proxy's line if the connection starts with
/// one (checked with this node's key), else the connection's own peer (a
/// client that connects straight to the node). An SSH client starts with
/// `SSH-`, so the first byte tells which.
async fn client_of<S>(
    stream: &mut tokio::io::BufReader<S>,
    peer: SocketAddr,
    ctx: &NodeContext,
) -> Result<SocketAddr, String>
where
    S: tokio::io::AsyncRead + Unpin,
{
    use jaunt_ca::client_addr::{CLIENT_ADDR_MAGIC, MAX_CLIENT_LINE, verify_client_line};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    // The proxy's line follows its connect at once; a client that waits
    // for the server's banner before its own (SSH allows either order)
    // sends nothing, and gets the banner after this.
    let first = match tokio::time::timeout(FIRST_BYTE_WAIT, stream.fill_buf()).await {
        Ok(read) => read.map_err(|e| e.to_string())?,
        Err(_) => return Ok(peer),
    };
    if first.first() != CLIENT_ADDR_MAGIC.first() {
        return Ok(peer);
    }
    let mut line = Vec::with_capacity(128);
    let mut limited = (&mut *stream).take(MAX_CLIENT_LINE as u64);
    limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if line.pop() != Some(b'\n') {
        return Err("no end of line".into());
    }
    let key = ctx
        .client_addr_key
        .read()
        .ok()
        .and_then(|k| k.clone())
        .ok_or("this node has no client-address key yet (it comes with a heartbeat)")?;
    verify_client_line(&key, &ctx.uuid, &line, jaunt_sys::clock::now()).map_err(|e| e.to_string())
}
