//! The client library behind `jsh`: the on-disk layout of `~/.jsh`
//! (profiles, keys, certificates, known_hosts), login and logout, the SSH
//! client, and PuTTY's settings stores. How it reaches the proxy (TLS, the
//! API client, the relay dial) is `jaunt-transport`, which the node shares.

pub mod ciphers;
pub mod clusters;
pub mod home;
pub mod login;
pub mod profile;
pub mod putty;
pub mod scp;
pub mod shell;
pub mod ssh;

pub use jaunt_transport::{ApiClient, ClientCert, TransportError, Trust};
use std::path::PathBuf;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Reaching the proxy failed, or it refused.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The node refused the login.
    #[error("{0}")]
    AccessDenied(String),
    #[error("unexpected answer from the proxy: {0}")]
    Protocol(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("No proxy address specified, missed --proxy flag?")]
    NoProxy,
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

pub(crate) fn file_err(path: &std::path::Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}
