//! The cluster's identity: its name and certificate authorities, created on
//! the first start and reused ever after; and the proxy's TLS certificate.

use crate::records::{IDENTITY_KEY, PROXY_TLS_KEY};
use crate::rotation::{Authorities, StoredRotation};
use crate::{AuthError, AuthServer, now};
use jaunt_ca::{SshCa, TlsCa};
use jaunt_store::{Store, StoreError};
use jaunt_types::Secret;
use jaunt_types::rotation::CaType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredIdentity {
    pub cluster_name: String,
    /// The SSH user and host CAs' and the TLS CA's current keys (see
    /// `rotations`).
    pub user_ca: Secret<String>,
    pub host_ca: Secret<String>,
    pub tls_ca_cert: String,
    pub tls_ca_key: Secret<String>,
    /// The OpenSSH CA's current key. Added after the first release: made
    /// on the first start that lacks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openssh_ca: Option<Secret<String>>,
    /// The rotations in progress, with their new keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rotations: BTreeMap<CaType, StoredRotation>,
}

/// What of the identity never changes (the certificate authorities,
/// which rotate, are `AuthServer::authorities`).
#[derive(Debug, Clone)]
pub struct ClusterIdentity {
    pub cluster_name: String,
}

pub(crate) async fn load_or_create(
    store: &Store,
    cluster_name: &str,
) -> Result<(ClusterIdentity, Authorities), AuthError> {
    let stored = match store.get::<StoredIdentity>(IDENTITY_KEY).await? {
        Some(v) => v.value,
        None => {
            let fresh = StoredIdentity {
                cluster_name: cluster_name.to_string(),
                user_ca: SshCa::generate()?.to_openssh()?,
                host_ca: SshCa::generate()?.to_openssh()?,
                tls_ca_cert: String::new(),
                tls_ca_key: Secret::default(),
                openssh_ca: Some(SshCa::generate()?.to_openssh()?),
                rotations: BTreeMap::new(),
            };
            let tls = TlsCa::generate(cluster_name, now() as u64)?;
            let fresh = StoredIdentity {
                tls_ca_cert: tls.cert_pem().to_string(),
                tls_ca_key: tls.key_pem().clone(),
                ..fresh
            };
            // Instances sharing one database may race on the first start:
            // the first writer wins and everyone uses its identity.
            match store.create(IDENTITY_KEY, &fresh, None).await {
                Ok(_) => {
                    tracing::info!(
                        cluster = cluster_name,
                        "created the cluster's certificate authorities"
                    );
                    fresh
                }
                Err(StoreError::AlreadyExists(_)) => {
                    store
                        .get::<StoredIdentity>(IDENTITY_KEY)
                        .await?
                        .ok_or_else(|| AuthError::Internal("cluster identity vanished".into()))?
                        .value
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let stored = with_openssh_ca(store, stored).await?;
    if stored.cluster_name != cluster_name {
        return Err(AuthError::BadRequest(format!(
            "this data directory belongs to cluster {:?}, not {cluster_name:?}; a cluster cannot be renamed (set cluster_name: {:?})",
            stored.cluster_name, stored.cluster_name
        )));
    }
    let authorities = Authorities::load(&stored)?;
    let identity = ClusterIdentity {
        cluster_name: stored.cluster_name,
    };
    Ok((identity, authorities))
}

/// A cluster created before agentless nodes gains its OpenSSH CA, once:
/// instances racing here all end with the one that was stored first.
async fn with_openssh_ca(
    store: &Store,
    stored: StoredIdentity,
) -> Result<StoredIdentity, AuthError> {
    if stored.openssh_ca.is_some() {
        return Ok(stored);
    }
    loop {
        let current = store
            .get::<StoredIdentity>(IDENTITY_KEY)
            .await?
            .ok_or_else(|| AuthError::Internal("cluster identity vanished".into()))?;
        if current.value.openssh_ca.is_some() {
            return Ok(current.value);
        }
        let next = StoredIdentity {
            openssh_ca: Some(SshCa::generate()?.to_openssh()?),
            ..current.value
        };
        match store
            .update_if(IDENTITY_KEY, current.revision, &next, None)
            .await
        {
            Ok(_) => {
                tracing::info!("created the cluster's OpenSSH CA (agentless nodes)");
                return Ok(next);
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The proxy's TLS server certificate and key, and the CA to send along.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyTls {
    pub names: Vec<String>,
    pub cert_pem: String,
    pub key_pem: Secret<String>,
    pub ca_pem: String,
    pub not_after: i64,
}

const PROXY_CERT_TTL: u64 = 365 * 86400;
const PROXY_CERT_RENEW_BEFORE: i64 = 30 * 86400;

impl AuthServer {
    /// The proxy's server certificate for `names`, issued by the cluster TLS
    /// CA; reused across restarts while the names match, it is not near
    /// expiry and the CA that signs servers' certificates now issued it (a
    /// TLS CA rotation's `update_servers` changes that).
    pub async fn proxy_tls(&self, names: &[String]) -> Result<ProxyTls, AuthError> {
        let now = now();
        let cas = self.authorities();
        let signer = cas.tls.server_signer();
        if let Some(v) = self.store.get::<ProxyTls>(PROXY_TLS_KEY).await?
            && v.value.names == names
            && v.value.not_after - PROXY_CERT_RENEW_BEFORE > now
            && v.value.ca_pem == signer.cert_pem()
        {
            return Ok(v.value);
        }
        let (cert_pem, key_pem) = signer.issue_server_cert(names, now as u64, PROXY_CERT_TTL)?;
        let tls = ProxyTls {
            names: names.to_vec(),
            cert_pem,
            key_pem,
            ca_pem: signer.cert_pem().to_string(),
            not_after: now + PROXY_CERT_TTL as i64,
        };
        self.store.put(PROXY_TLS_KEY, &tls, None).await?;
        Ok(tls)
    }
}
