//! The proxy's TLS configuration: its certificate chain (leaf, then the
//! cluster CA so clients can check a pin on first contact), ALPN, and
//! optional client certificates verified against the cluster TLS CA.

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// Builds the server configuration. `chain_pem` is the server certificate
/// followed by any intermediates; `cluster_ca_pem` verifies client
/// certificates and, when the proxy uses a cluster-issued certificate, is
/// appended to the chain.
pub fn server_config(
    chain_pem: &str,
    key_pem: &str,
    cluster_ca_pem: &str,
    send_cluster_ca: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut chain = certs(chain_pem, "proxy TLS certificate")?;
    let ca = certs(cluster_ca_pem, "cluster TLS CA")?;
    if send_cluster_ca {
        chain.extend(ca.iter().cloned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Pem {
        what: "proxy TLS key",
        reason: e.to_string(),
    })?;
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots.add(c)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    // Stateless session tickets: nodes' heartbeats and authorization calls,
    // and a client's repeated connections, resume instead of repeating the
    // full handshake (the certificate's expiry is re-checked on each use).
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    config.alpn_protocols = [
        jaunt_types::api::ALPN_HTTP,
        jaunt_types::api::ALPN_SSH,
        jaunt_types::api::ALPN_TUNNEL,
    ]
    .iter()
    .map(|p| p.to_vec())
    .collect();
    Ok(Arc::new(config))
}
