//! The auth service's one error type; callers map it to what their peer sees.

use jaunt_ca::CaError;
use jaunt_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong user, password or second factor: deliberately one message.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error(
        "account {user:?} is locked after too many failed logins until {until_text}; an administrator can run 'jctl users unlock {user}'"
    )]
    Locked {
        user: String,
        until: i64,
        until_text: String,
    },
    /// Too much from one client, or too much at once: try again later.
    #[error("{0}")]
    Throttled(String),
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("cluster store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("internal error: {0}")]
    Internal(String),
}
