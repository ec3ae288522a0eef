//! SSH certificate authorities: key generation and user/host certificate
//! signing with explicit principals, validity, extensions and options.

use crate::{CLOCK_SKEW_SECS, CaError, Result};
use jaunt_types::Secret;
use ssh_key::certificate::{Builder, CertType};
use ssh_key::getrandom::SysRng;
use ssh_key::rand_core::UnwrapErr;
use ssh_key::{Algorithm, Certificate, HashAlg, LineEnding, PrivateKey, PublicKey};

/// What a user certificate says. Built by the auth service only after the
/// user authenticated; this crate signs exactly what it is given.
#[derive(Debug, Clone)]
pub struct UserCertRequest {
    pub public_key: PublicKey,
    /// The Jaunt user name; also the certificate's key id.
    pub user: String,
    /// OS logins the certificate is valid for.
    pub principals: Vec<String>,
    pub now: u64,
    pub ttl_secs: u64,
    pub permit_pty: bool,
    pub permit_port_forwarding: bool,
    pub permit_agent_forwarding: bool,
    /// `source-address` critical option (comma-separated CIDRs), if pinned.
    pub source_address: Option<String>,
    /// The user's roles and `logins` trait, carried as extensions
    /// ([`EXT_ROLES`], [`EXT_LOGINS`]) for the leaf clusters that trust
    /// this one: a leaf maps the roles, it has no record of the user.
    pub roles: Vec<String>,
    pub logins_trait: Vec<String>,
}

/// Extension: the user's roles, comma-separated (role names hold no comma).
pub const EXT_ROLES: &str = "jaunt-roles@jaunt";
/// Extension: the user's `logins` trait, comma-separated (POSIX logins).
pub const EXT_LOGINS: &str = "jaunt-logins@jaunt";

/// What a node's host certificate says.
#[derive(Debug, Clone)]
pub struct HostCertRequest {
    pub public_key: PublicKey,
    /// The node's UUID; also the key id.
    pub host_id: String,
    /// Node name, UUID, advertised host name or address.
    pub principals: Vec<String>,
    pub now: u64,
    pub ttl_secs: u64,
}

/// An SSH certificate authority (user or host): an Ed25519 key pair.
#[derive(Clone)]
pub struct SshCa {
    key: PrivateKey,
}

impl std::fmt::Debug for SshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshCa")
            .field("public", &fingerprint(self.key.public_key()))
            .field("private", &"<redacted>")
            .finish()
    }
}

fn rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

impl SshCa {
    pub fn generate() -> Result<Self> {
        Ok(SshCa {
            key: PrivateKey::random(&mut rng(), Algorithm::Ed25519)?,
        })
    }

    /// Loads a CA from its OpenSSH private key text.
    pub fn from_openssh(text: &str) -> Result<Self> {
        Ok(SshCa {
            key: PrivateKey::from_openssh(text)?,
        })
    }

    pub fn to_openssh(&self) -> Result<Secret<String>> {
        Ok(Secret::new(
            self.key.to_openssh(LineEnding::LF)?.to_string(),
        ))
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The CA's public key as an OpenSSH `authorized_keys`-style line.
    pub fn public_openssh(&self) -> Result<String> {
        Ok(self.key.public_key().to_openssh()?)
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(self.key.public_key())
    }

    pub fn sign_user_cert(&self, req: &UserCertRequest) -> Result<Certificate> {
        if req.principals.is_empty() {
            return Err(CaError::Invalid(format!(
                "user {:?} has no logins: a certificate without principals would be valid for every login",
                req.user
            )));
        }
        let mut b = self.builder(&req.public_key, req.now, req.ttl_secs)?;
        b.cert_type(CertType::User)?;
        b.key_id(req.user.clone())?;
        for p in &req.principals {
            b.valid_principal(p.clone())?;
        }
        if let Some(src) = &req.source_address {
            b.critical_option("source-address", src.clone())?;
        }
        // Extensions must be sorted by name in the encoding; the builder's
        // map keeps them sorted.
        if req.permit_agent_forwarding {
            b.extension("permit-agent-forwarding", "")?;
        }
        if req.permit_port_forwarding {
            b.extension("permit-port-forwarding", "")?;
        }
        if req.permit_pty {
            b.extension("permit-pty", "")?;
        }
        if !req.roles.is_empty() {
            b.extension(EXT_ROLES, req.roles.join(","))?;
        }
        if !req.logins_trait.is_empty() {
            b.extension(EXT_LOGINS, req.logins_trait.join(","))?;
        }
        b.comment(req.user.clone())?;
        Ok(b.sign(&self.key)?)
    }

    pub fn sign_host_cert(&self, req: &HostCertRequest) -> Result<Certificate> {
        if req.principals.is_empty() {
            return Err(CaError::Invalid(
                "a host certificate needs principals".into(),
            ));
        }
        let mut b = self.builder(&req.public_key, req.now, req.ttl_secs)?;
        b.cert_type(CertType::Host)?;
        b.key_id(req.host_id.clone())?;
        for p in &req.principals {
            b.valid_principal(p.clone())?;
        }
        Ok(b.sign(&self.key)?)
    }

    fn builder(&self, key: &PublicKey, now: u64, ttl_secs: u64) -> Result<Builder> {
        if ttl_secs == 0 {
            return Err(CaError::Invalid(
                "certificate lifetime must be positive".into(),
            ));
        }
        let valid_after = now.saturating_sub(CLOCK_SKEW_SECS);
        let valid_before = now.saturating_add(ttl_secs);
        let mut b = Builder::new_with_random_nonce(
            &mut rng(),
            key.key_data().clone(),
            valid_after,
            valid_before,
        )?;
        b.serial(now)?;
        Ok(b)
    }
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Parses an OpenSSH public key line, with a clear error.
pub fn parse_public_key(text: &str) -> Result<PublicKey> {
    PublicKey::from_openssh(text.trim())
        .map_err(|e| CaError::Invalid(format!("not an OpenSSH public key: {e}")))
}
