//! The node's check of a user certificate, made explicit: signed by this
//! cluster's user CA or a trusted (root) cluster's (compared exactly, and
//! verified), of type user, inside
//! its validity window, listing the requested login, and honouring its
//! critical options. Pure: the caller passes the time and client address.

use ssh_key::certificate::CertType;
use ssh_key::public::KeyData;
use ssh_key::{Certificate, HashAlg};
use std::net::IpAddr;

/// What the node knows when a certificate arrives.
#[derive(Debug, Clone)]
pub struct UserCertCheck<'a> {
    /// This cluster's user CA public keys (more than one during rotation).
    pub user_cas: &'a [KeyData],
    /// The user CAs of the clusters this one trusts, by cluster name: their
    /// users are remote users here, whose roles auth maps.
    pub trusted: &'a [(String, KeyData)],
    /// The OS login the client asked for.
    pub login: &'a str,
    pub now: u64,
    pub client_ip: Option<IpAddr>,
}

/// What an accepted certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The Jaunt user (the certificate's key id).
    pub user: String,
    pub permit_pty: bool,
    pub permit_port_forwarding: bool,
    pub permit_agent_forwarding: bool,
    pub valid_before: u64,
    /// `Some` for a user of a trusted cluster: which, and the roles and
    /// logins trait the certificate carries from there.
    pub remote: Option<jaunt_types::trust::RemoteIdentity>,
}

/// Why a certificate was refused; the text goes to the node's log and audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRefusal {
    #[error(
        "certificate is signed by {signer}, which is not the user CA of this cluster or of a cluster it trusts"
    )]
    WrongCa { signer: String },
    #[error("certificate signature does not verify")]
    BadSignature,
    #[error("a {0} certificate cannot log in as a user")]
    NotUserCert(&'static str),
    #[error("certificate is not valid until {valid_after} (now {now})")]
    NotYetValid { valid_after: u64, now: u64 },
    #[error("certificate expired at {valid_before} (now {now}); run 'jsh login' for a new one")]
    Expired { valid_before: u64, now: u64 },
    #[error("certificate does not allow login {login:?} (it allows: {allowed})")]
    Principal { login: String, allowed: String },
    #[error("certificate may only be used from {allowed}, not from {client}")]
    SourceAddress { allowed: String, client: String },
    #[error("certificate has critical option {0:?}, which Jaunt does not support")]
    UnsupportedOption(String),
    #[error("certificate has no key id (user name)")]
    NoKeyId,
}

/// Checks `cert` for a login. Every rule is its own step, in this order.
pub fn check_user_cert(
    cert: &Certificate,
    check: &UserCertCheck<'_>,
) -> Result<CertIdentity, CertRefusal> {
    let signer = cert.signature_key();
    // Our own CA first: a trusted cluster never speaks for our users.
    let trusted_by = match check.user_cas.iter().any(|ca| ca == signer) {
        true => None,
        false => match check.trusted.iter().find(|(_, ca)| ca == signer) {
            Some((cluster, _)) => Some(cluster.clone()),
            None => {
                return Err(CertRefusal::WrongCa {
                    signer: signer.fingerprint(HashAlg::Sha256).to_string(),
                });
            }
        },
    };
    // The signer is our CA; now prove the CA really signed these bytes.
    cert.verify_signature()
        .map_err(|_| CertRefusal::BadSignature)?;
    match cert.cert_type() {
        CertType::User => {}
        CertType::Host => return Err(CertRefusal::NotUserCert("host")),
    }
    if check.now < cert.valid_after() {
        return Err(CertRefusal::NotYetValid {
            valid_after: cert.valid_after(),
            now: check.now,
        });
    }
    if check.now >= cert.valid_before() {
        return Err(CertRefusal::Expired {
            valid_before: cert.valid_before(),
            now: check.now,
        });
    }
    // An empty principal list means "any login" in OpenSSH; Jaunt never
    // issues one, and refuses it rather than treat it as a wildcard.
    if !cert.valid_principals().iter().any(|p| p == check.login) {
        return Err(CertRefusal::Principal {
            login: check.login.to_string(),
            allowed: cert.valid_principals().join(", "),
        });
    }
    for (name, value) in cert.critical_options().iter() {
        match name.as_str() {
            "source-address" => check_source(value, check.client_ip)?,
            other => return Err(CertRefusal::UnsupportedOption(other.to_string())),
        }
    }
    if cert.key_id().is_empty() {
        return Err(CertRefusal::NoKeyId);
    }
    let ext = cert.extensions();
    let list = |name: &str| -> Vec<String> {
        ext.get(name)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let remote = trusted_by.map(|cluster| jaunt_types::trust::RemoteIdentity {
        cluster,
        roles: list(crate::EXT_ROLES),
        logins: list(crate::EXT_LOGINS),
    });
    Ok(CertIdentity {
        user: cert.key_id().to_string(),
        permit_pty: ext.contains_key("permit-pty"),
        permit_port_forwarding: ext.contains_key("permit-port-forwarding"),
        permit_agent_forwarding: ext.contains_key("permit-agent-forwarding"),
        valid_before: cert.valid_before(),
        remote,
    })
}

fn check_source(allowed: &str, client: Option<IpAddr>) -> Result<(), CertRefusal> {
    let refuse = |client: String| CertRefusal::SourceAddress {
        allowed: allowed.to_string(),
        client,
    };
    let Some(ip) = client else {
        return Err(refuse("an unknown address".into()));
    };
    if allowed
        .split(',')
        .any(|cidr| cidr_contains(cidr.trim(), ip))
    {
        Ok(())
    } else {
        Err(refuse(ip.to_string()))
    }
}

/// Does `cidr` (`10.0.0.0/8`, `::1/128` or a bare address) contain `ip`?
/// An unparsable entry matches nothing.
pub fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match cidr.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    let ip = match (net, ip) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        _ => ip,
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32);
            bits <= 32 && mask_eq(u128::from(u32::from(n)), u128::from(u32::from(i)), bits, 32)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128);
            bits <= 128 && mask_eq(u128::from(n), u128::from(i), bits, 128)
        }
        _ => false,
    }
}

fn mask_eq(a: u128, b: u128, bits: u32, width: u32) -> bool {
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

/// Why a node's host certificate was refused by a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostCertRefusal {
    #[error("the node's host certificate is signed by {signer}, not by this cluster's host CA")]
    WrongCa { signer: String },
    #[error("the node's host certificate signature does not verify")]
    BadSignature,
    #[error("the node presented a user certificate as its host certificate")]
    NotHostCert,
    #[error(
        "the node's host certificate is not valid now (valid {valid_after}..{valid_before}, now {now})"
    )]
    Expired {
        valid_after: u64,
        valid_before: u64,
        now: u64,
    },
    #[error("the node's host certificate is for {allowed}, not {host:?}")]
    Principal { host: String, allowed: String },
}

/// Checks a node's host certificate as a client: signed by one of this
/// cluster's host CA keys, of type host, valid now, naming `host`.
pub fn check_host_cert(
    cert: &Certificate,
    host_cas: &[KeyData],
    host: &str,
    now: u64,
) -> Result<(), HostCertRefusal> {
    let signer = cert.signature_key();
    if !host_cas.iter().any(|ca| ca == signer) {
        return Err(HostCertRefusal::WrongCa {
            signer: signer.fingerprint(HashAlg::Sha256).to_string(),
        });
    }
    cert.verify_signature()
        .map_err(|_| HostCertRefusal::BadSignature)?;
    if cert.cert_type() != CertType::Host {
        return Err(HostCertRefusal::NotHostCert);
    }
    if now < cert.valid_after() || now >= cert.valid_before() {
        return Err(HostCertRefusal::Expired {
            valid_after: cert.valid_after(),
            valid_before: cert.valid_before(),
            now,
        });
    }
    if !cert.valid_principals().iter().any(|p| p == host) {
        return Err(HostCertRefusal::Principal {
            host: host.to_string(),
            allowed: cert.valid_principals().join(", "),
        });
    }
    Ok(())
}
