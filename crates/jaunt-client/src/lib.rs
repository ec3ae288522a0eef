//! The client library behind `jsh`: the on-disk layout of `~/.jsh`
//! (profiles, keys, certificates, known_hosts), the HTTPS client for the
//! proxy API with CA pinning, and the login and logout procedures.

pub mod api;
pub mod home;
pub mod login;
pub mod profile;
pub mod putty;
pub mod relay;
pub mod ssh;
pub mod stdio;

use jaunt_types::api::ErrorCode;
use std::path::PathBuf;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the proxy at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("TLS with the proxy at {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    /// The proxy refused; `message` is what it said.
    #[error("{message}")]
    Api { code: ErrorCode, message: String },
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
