//! The proxy: the cluster's one public port. Every connection is TLS; the
//! ALPN protocol the client asks for decides what it is. Today that is the
//! HTTPS JSON API for `jsh` (`http/1.1`, also the default when a client
//! names none); SSH relaying and node reverse tunnels join as further ALPN
//! protocols on the same port.
//!
//! Architecture Invariant: the proxy holds no keys of its own besides its
//! TLS certificate; it asks the auth service for every decision.

mod api;
mod tls;

pub use tls::{TlsError, server_config};

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
}

fn protocol_of(alpn: Option<&[u8]>) -> Option<Protocol> {
    match alpn {
        None => Some(Protocol::Http),
        Some(p) if p == jaunt_types::api::ALPN_HTTP => Some(Protocol::Http),
        Some(_) => None,
    }
}

/// Serves the public port on an already-bound listener until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    auth: Arc<AuthServer>,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let router = api::router(auth);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let acceptor = acceptor.clone();
                    let router = router.clone();
                    tokio::spawn(async move { handle(stream, peer, acceptor, router).await });
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

async fn handle(stream: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor, router: axum::Router) {
    let _ = stream.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
    let (_, conn) = tls.get_ref();
    let client_cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned());
    match protocol_of(conn.alpn_protocol()) {
        Some(Protocol::Http) => api::serve_connection(tls, peer, client_cert, router).await,
        None => tracing::debug!(%peer, "unknown ALPN protocol"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_dispatch() {
        assert_eq!(protocol_of(None), Some(Protocol::Http));
        assert_eq!(protocol_of(Some(b"http/1.1")), Some(Protocol::Http));
        assert_eq!(protocol_of(Some(b"h2")), None);
    }
}
