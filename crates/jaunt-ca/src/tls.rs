//! The cluster TLS CA: it signs the proxy's server certificate and users'
//! client certificates (from a CSR, so private keys never leave the client).
//! Clients pin it by the SHA-256 of its SubjectPublicKeyInfo.

use crate::{CLOCK_SKEW_SECS, CaError, Result};
use jaunt_types::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// A TLS certificate authority: a self-signed CA certificate and its key.
#[derive(Clone)]
pub struct TlsCa {
    cert_pem: String,
    key_pem: Secret<String>,
}

impl std::fmt::Debug for TlsCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCa")
            .field("pin", &self.pin().ok())
            .finish()
    }
}

/// What a client certificate identifies: a person or a node. Carried in
/// the subject's organizational unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    User,
    Node,
    /// A leaf cluster's proxy (its name as the user): its tunnel to a
    /// root cluster that it trusts.
    RemoteCluster,
}

impl IdentityKind {
    fn unit(self) -> &'static str {
        match self {
            IdentityKind::User => "user",
            IdentityKind::Node => "node",
            IdentityKind::RemoteCluster => "remote_cluster",
        }
    }
}

/// Who a client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The user name, or the node's UUID.
    pub user: String,
    pub kind: IdentityKind,
    pub cluster: String,
    /// Unix seconds.
    pub not_after: i64,
    /// The issuing CA's name (a rotation's new TLS CA has a name of its
    /// own): which CA signed it.
    pub issuer: String,
}

impl ClientIdentity {
    /// Whether this identity may make a call that needs `kind` in
    /// `cluster` at `now` (Unix seconds). Checked on every request, not
    /// only at the TLS handshake: a kept-alive connection can outlive its
    /// certificate.
    pub fn check(&self, cluster: &str, kind: IdentityKind, now: i64) -> Result<(), &'static str> {
        if self.cluster != cluster || self.kind != kind {
            return Err("this certificate is not valid for this call");
        }
        if self.not_after <= now {
            return Err("this certificate has expired; log in again (nodes renew theirs)");
        }
        Ok(())
    }
}

fn when(unix: u64) -> Result<OffsetDateTime> {
    let secs = i64::try_from(unix).map_err(|_| CaError::Invalid("time out of range".into()))?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| CaError::Invalid(e.to_string()))
}

fn key_pair_err(e: rcgen::Error) -> CaError {
    CaError::Tls(e)
}

impl TlsCa {
    /// A new CA for `cluster`, valid for ten years from `now`.
    pub fn generate(cluster: &str, now: u64) -> Result<Self> {
        Self::generate_named(cluster, format!("Jaunt TLS CA {cluster}"), now)
    }

    /// A CA to rotate to: its name is its own (it carries `now`), so the
    /// certificates of the old and the new CA tell apart by issuer and
    /// build their paths to the right one.
    pub fn generate_next(cluster: &str, now: u64) -> Result<Self> {
        Self::generate_named(cluster, format!("Jaunt TLS CA {cluster} {now}"), now)
    }

    fn generate_named(cluster: &str, name: String, now: u64) -> Result<Self> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(key_pair_err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, cluster.to_string());
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = when(now.saturating_sub(CLOCK_SKEW_SECS))?;
        params.not_after = when(now + 10 * 365 * 86400)?;
        let cert = params.self_signed(&key)?;
        Ok(TlsCa {
            cert_pem: cert.pem(),
            key_pem: Secret::new(key.serialize_pem()),
        })
    }

    pub fn from_pem(cert_pem: String, key_pem: Secret<String>) -> Result<Self> {
        let ca = TlsCa { cert_pem, key_pem };
        ca.issuer()?;
        Ok(ca)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &Secret<String> {
        &self.key_pem
    }

    pub fn cert_der(&self) -> Result<CertificateDer<'static>> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| CaError::Parse(format!("TLS CA certificate: {e}")))
    }

    /// The CA's name, as a certificate it issued names its issuer.
    pub fn subject(&self) -> Result<String> {
        let der = self.cert_der()?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(&der).map_err(|e| CaError::Parse(e.to_string()))?;
        Ok(cert.subject().to_string())
    }

    /// `sha256:<hex>` of the CA's SubjectPublicKeyInfo.
    pub fn pin(&self) -> Result<String> {
        ca_pin(&self.cert_der()?)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(self.key_pem.expose()).map_err(key_pair_err)?;
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, key)?)
    }

    /// A server certificate for `names` (DNS names or IP addresses). Returns
    /// the certificate PEM and its private key PEM.
    pub fn issue_server_cert(
        &self,
        names: &[String],
        now: u64,
        ttl_secs: u64,
    ) -> Result<(String, Secret<String>)> {
        if names.is_empty() {
            return Err(CaError::Invalid(
                "a server certificate needs at least one name".into(),
            ));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(key_pair_err)?;
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0].clone());
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = when(now.saturating_sub(CLOCK_SKEW_SECS))?;
        params.not_after = when(now + ttl_secs)?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok((cert.pem(), Secret::new(key.serialize_pem())))
    }

    /// Signs a client certificate for `user` from the client's CSR. Only the
    /// CSR's public key is used: the names and lifetime are ours.
    pub fn sign_client_csr(
        &self,
        csr_pem: &str,
        kind: IdentityKind,
        user: &str,
        cluster: &str,
        now: u64,
        ttl_secs: u64,
    ) -> Result<String> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::Invalid(format!("TLS certificate signing request: {e}")))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user.to_string());
        dn.push(DnType::OrganizationName, cluster.to_string());
        dn.push(DnType::OrganizationalUnitName, kind.unit().to_string());
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = when(now.saturating_sub(CLOCK_SKEW_SECS))?;
        params.not_after = when(now + ttl_secs)?;
        let cert = params.signed_by(&csr.public_key, &self.issuer()?)?;
        Ok(cert.pem())
    }
}

/// `sha256:<hex>` of a certificate's SubjectPublicKeyInfo (the CA pin).
pub fn ca_pin(cert_der: &[u8]) -> Result<String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| CaError::Parse(e.to_string()))?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(spki))))
}

/// Reads who a (verified) client certificate names.
pub fn client_identity(cert_der: &[u8]) -> Result<ClientIdentity> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(cert_der).map_err(|e| CaError::Parse(e.to_string()))?;
    let subject = cert.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let user = first(&mut subject.iter_common_name())
        .ok_or_else(|| CaError::Parse("client certificate has no common name".into()))?;
    let cluster = first(&mut subject.iter_organization()).unwrap_or_default();
    let kind = match first(&mut subject.iter_organizational_unit()).as_deref() {
        Some("user") => IdentityKind::User,
        Some("node") => IdentityKind::Node,
        Some("remote_cluster") => IdentityKind::RemoteCluster,
        other => {
            return Err(CaError::Parse(format!(
                "client certificate of unknown kind {other:?}"
            )));
        }
    };
    Ok(ClientIdentity {
        user,
        kind,
        cluster,
        not_after: cert.validity().not_after.timestamp(),
        issuer: cert.issuer().to_string(),
    })
}

/// Reads who a PEM client certificate names.
pub fn client_identity_pem(pem: &str) -> Result<ClientIdentity> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| CaError::Parse(e.to_string()))?;
    client_identity(&der)
}

/// A new client key and a CSR for it: `(csr_pem, key_pem)`.
pub fn generate_client_csr(user: &str) -> Result<(String, Secret<String>)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(key_pair_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, user.to_string());
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, Secret::new(key.serialize_pem())))
}
