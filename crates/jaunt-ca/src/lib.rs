//! The cluster's certificate authorities. An SSH user CA signs user
//! certificates, an SSH host CA signs node host certificates (both Ed25519),
//! and a TLS CA signs the proxy's server certificate and users' client
//! certificates; the proxy vouches for client addresses to nodes with a key
//! per node (`client_addr`). Every function takes the time as an argument and returns
//! values: this crate does no I/O, keeps no clock and stores nothing.

pub mod client_addr;
mod ssh;

/// The ssh-key crate at the exact version russh uses; dependents use this one.
pub use ssh_key;
mod tls;
mod verify;

pub use ssh::{
    EXT_LOGINS, EXT_ROLES, HostCertRequest, SshCa, UserCertRequest, fingerprint, parse_public_key,
};
pub use tls::{
    ClientIdentity, IdentityKind, TlsCa, ca_pin, client_identity, client_identity_pem,
    generate_client_csr,
};
pub use verify::{
    CertIdentity, CertRefusal, HostCertRefusal, UserCertCheck, check_host_cert, check_user_cert,
    cidr_contains,
};

/// Everything that can go wrong while making or reading keys and certificates.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("SSH key or certificate error: {0}")]
    Ssh(#[from] ssh_key::Error),
    #[error("TLS certificate error: {0}")]
    Tls(#[from] rcgen::Error),
    #[error("invalid certificate request: {0}")]
    Invalid(String),
    #[error("cannot parse certificate: {0}")]
    Parse(String),
}

pub type Result<T, E = CaError> = std::result::Result<T, E>;

/// How far back certificates are dated, so a client whose clock runs a
/// little behind the auth server's can still use a fresh certificate.
pub const CLOCK_SKEW_SECS: u64 = 60;

#[cfg(test)]
mod tests;
