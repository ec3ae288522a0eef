//! How a Jaunt program reaches a proxy: a TLS connection that trusts only
//! what the cluster says (a pinned CA, the CA saved at join or login, and
//! system roots only where neither exists), the pooled HTTPS client for the
//! proxy's API, and the dial of a relayed SSH connection. `jsh`, the node
//! and the benchmarks all use it; it knows nothing of `~/.jsh` or of nodes.

pub mod api;
pub mod relay;
pub mod tunnel;

pub use api::{ApiClient, ClientCert, Trust};

use jaunt_types::api::ErrorCode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("cannot reach the proxy at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("TLS with the proxy at {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    /// The proxy refused; `message` is what it said.
    #[error("{message}")]
    Api { code: ErrorCode, message: String },
    #[error("unexpected answer from the proxy: {0}")]
    Protocol(String),
}

pub type Result<T, E = TransportError> = std::result::Result<T, E>;
