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
    let stream = tokio::io::BufReader::with_capacity(READ_AHEAD, stream);
    let grace = ctx.login_grace;
    let connection = Connection::new(ctx, peer, local);
    let authenticated = connection.authenticated();
    tokio::spawn(async move {
        let serve = async {
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
