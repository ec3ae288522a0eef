//! The proxy's TLS configuration: its certificates (the cluster-issued one,
//! sent with the cluster CA so clients can check a pin on first contact,
//! and optionally the operator's own for clients that trust system roots),
//! ALPN, and optional client certificates verified against the cluster CA.

use jaunt_types::api::CLUSTER_SERVER_NAME;
use rustls::RootCertStore;
use rustls::server::ResolvesServerCert;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
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

/// A certificate and its key, as PEM.
pub struct CertPem<'a> {
    /// The certificate, then any intermediates.
    pub chain: &'a str,
    pub key: &'a str,
}

fn certified_key(
    provider: &rustls::crypto::CryptoProvider,
    pem: &CertPem<'_>,
    what: &'static str,
    append: &[CertificateDer<'static>],
) -> Result<Arc<CertifiedKey>, TlsError> {
    let mut chain = certs(pem.chain, what)?;
    chain.extend(append.iter().cloned());
    let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).map_err(|e| TlsError::Pem {
        what,
        reason: e.to_string(),
    })?;
    let signing = provider.key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(chain, signing);
    // A key that is not the certificate's would fail every handshake;
    // say so at start instead.
    certified.keys_match().map_err(|e| TlsError::Pem {
        what,
        reason: format!("the key does not belong to the certificate ({e})"),
    })?;
    Ok(Arc::new(certified))
}

/// Which certificate a client gets: the cluster-issued one when it asks
/// for [`CLUSTER_SERVER_NAME`] (it trusts only the cluster's CA) or when
/// no other is configured; else the operator's own (`tls_cert_file`).
#[derive(Debug)]
struct ByServerName {
    cluster: Arc<std::sync::RwLock<Arc<CertifiedKey>>>,
    public: Arc<std::sync::RwLock<Option<Arc<CertifiedKey>>>>,
}

impl ResolvesServerCert for ByServerName {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let public = self.public.read().ok().and_then(|p| p.clone());
        match (public, hello.server_name()) {
            (Some(public), name) if name != Some(CLUSTER_SERVER_NAME) => Some(public),
            _ => self.cluster.read().ok().map(|c| c.clone()),
        }
    }
}

/// Verifies client certificates against the cluster's TLS CAs as they
/// are now: a TLS CA rotation swaps the inner verifier (both CAs during
/// the rotation), and new handshakes use it.
#[derive(Debug)]
struct ClientVerifier {
    inner: std::sync::RwLock<Arc<dyn ClientCertVerifier>>,
}

impl ClientVerifier {
    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        match self.inner.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // The API's anonymous calls (ping, signup, login) come without one.
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // Hints are optional; our clients hold one certificate each.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

fn webpki_verifier(
    provider: &Arc<rustls::crypto::CryptoProvider>,
    trusted: &[CertificateDer<'static>],
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in trusted {
        roots.add(c.clone())?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))
}

/// The cluster-issued certificate the proxy shows and the CAs it verifies
/// client certificates against, replaceable while it runs (a TLS CA
/// rotation); new handshakes get the new ones.
#[derive(Clone)]
pub struct ClusterTls {
    cert: Arc<std::sync::RwLock<Arc<CertifiedKey>>>,
    verifier: Arc<ClientVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClusterTls {
    /// Shows `cluster` (sent with `ca_pem`, the CA that issued it, so a
    /// client can check a pin) and verifies client certificates against
    /// `trusted_pem` (every cluster CA trusted now) from now on.
    pub fn replace(
        &self,
        cluster: CertPem<'_>,
        ca_pem: &str,
        trusted_pem: &str,
    ) -> Result<(), TlsError> {
        let ca = certs(ca_pem, "cluster TLS CA")?;
        let key = certified_key(&self.provider, &cluster, "proxy TLS certificate", &ca)?;
        let verifier = webpki_verifier(&self.provider, &certs(trusted_pem, "cluster TLS CAs")?)?;
        if let Ok(mut slot) = self.cert.write() {
            *slot = key;
        }
        if let Ok(mut inner) = self.verifier.inner.write() {
            *inner = verifier;
        }
        Ok(())
    }
}

/// The operator's certificate the proxy shows, replaceable while it runs
/// (a renewed `tls_cert_file`, on SIGHUP); new handshakes get the new one.
#[derive(Clone)]
pub struct PublicCert {
    slot: Arc<std::sync::RwLock<Option<Arc<CertifiedKey>>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl PublicCert {
    /// Checks `pem` (the key must be the certificate's) and shows it from
    /// now on; `None` shows the cluster-issued certificate to everyone.
    pub fn replace(&self, pem: Option<CertPem<'_>>) -> Result<(), TlsError> {
        let key = pem
            .map(|p| certified_key(&self.provider, &p, "tls_cert_file", &[]))
            .transpose()?;
        if let Ok(mut slot) = self.slot.write() {
            *slot = key;
        }
        Ok(())
    }
}

/// Builds the server configuration. `cluster` is the certificate the
/// cluster's TLS CA issued the proxy (sent with that CA, so a client can
/// check a pin on first contact); `public`, the operator's certificate
/// (`tls_cert_file`), shown to clients that trust system roots.
/// `cluster_ca_pem` is the CA that issued `cluster`; `trusted_pem`, every
/// cluster CA trusted now, verifies client certificates.
pub fn server_config(
    cluster: CertPem<'_>,
    public: Option<CertPem<'_>>,
    cluster_ca_pem: &str,
    trusted_pem: &str,
) -> Result<(Arc<rustls::ServerConfig>, PublicCert, ClusterTls), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = certs(cluster_ca_pem, "cluster TLS CA")?;
    let public_cert = PublicCert {
        slot: Arc::default(),
        provider: provider.clone(),
    };
    public_cert.replace(public)?;
    let cluster_tls = ClusterTls {
        cert: Arc::new(std::sync::RwLock::new(certified_key(
            &provider,
            &cluster,
            "proxy TLS certificate",
            &ca,
        )?)),
        verifier: Arc::new(ClientVerifier {
            inner: std::sync::RwLock::new(webpki_verifier(
                &provider,
                &certs(trusted_pem, "cluster TLS CAs")?,
            )?),
        }),
        provider: provider.clone(),
    };
    let resolver = ByServerName {
        cluster: cluster_tls.cert.clone(),
        public: public_cert.slot.clone(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(cluster_tls.verifier.clone())
        .with_cert_resolver(Arc::new(resolver));
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
    Ok((Arc::new(config), public_cert, cluster_tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_with_another_key_is_refused_at_start() {
        let ca = jaunt_ca::TlsCa::generate("c", 1_800_000_000).expect("ca");
        let issue = |name: &str| {
            ca.issue_server_cert(&[name.to_string()], 1_800_000_000, 3600)
                .expect("cert")
        };
        let (cluster_cert, cluster_key) = issue(CLUSTER_SERVER_NAME);
        let (public_cert, public_key) = issue("proxy.example.com");
        let (_, other_key) = issue("other.example.com");
        let cluster = || CertPem {
            chain: &cluster_cert,
            key: cluster_key.expose(),
        };
        let (_, public, _) =
            server_config(cluster(), None, ca.cert_pem(), ca.cert_pem()).expect("config");
        let mismatched = || CertPem {
            chain: &public_cert,
            key: other_key.expose(),
        };
        let err = server_config(cluster(), Some(mismatched()), ca.cert_pem(), ca.cert_pem())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("tls_cert_file"), "{err}");
        assert!(err.to_string().contains("does not belong"), "{err}");
        // A reload is checked the same way, and a refused one changes nothing.
        assert!(public.replace(Some(mismatched())).is_err());
        assert!(public.slot.read().expect("slot").is_none());
        // A good pair is shown from then on; none again, the cluster's.
        let good = CertPem {
            chain: &public_cert,
            key: public_key.expose(),
        };
        public.replace(Some(good)).expect("replaced");
        assert!(public.slot.read().expect("slot").is_some());
        public.replace(None).expect("removed");
        assert!(public.slot.read().expect("slot").is_none());
    }
}
