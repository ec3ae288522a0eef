//! The node's stored identity (`<data_dir>/node-identity.json`, 0600):
//! made once by joining with a token, then loaded at every start, and
//! rewritten when a heartbeat renews a certificate.

use super::{NodeConfig, NodeError, credentials};
use jaunt_ca::ssh_key::{Algorithm, LineEnding, PrivateKey};
use jaunt_transport::{ApiClient, ClientCert, Trust};
use jaunt_types::Secret;
use jaunt_types::api::{NodeJoinRequest, NodeJoinResponse, PATH_NODE_JOIN};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The node's credentials, stored in `<data_dir>/node-identity.json` (0600).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredIdentity {
    pub uuid: String,
    pub cluster: String,
    pub host_key: Secret<String>,
    pub host_cert: String,
    pub tls_key: Secret<String>,
    pub tls_cert: String,
    pub tls_ca: String,
    pub user_ca_keys: Vec<String>,
}

const IDENTITY_FILE: &str = "node-identity.json";

fn identity_path(dir: &Path) -> PathBuf {
    dir.join(IDENTITY_FILE)
}

pub(super) fn load_identity(dir: &Path) -> Result<Option<StoredIdentity>, NodeError> {
    let path = identity_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| NodeError::Identity {
                path,
                reason: format!("{e}; delete it and join again with a new token"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::Identity {
            path,
            reason: e.to_string(),
        }),
    }
}

pub(super) fn save_identity(dir: &Path, id: &StoredIdentity) -> Result<(), NodeError> {
    let path = identity_path(dir);
    let text = serde_json::to_vec_pretty(id).map_err(credentials)?;
    jaunt_sys::fs::write_atomic(&path, &text, jaunt_sys::fs::Mode::Private).map_err(|e| {
        NodeError::Identity {
            path: e.path,
            reason: e.source.to_string(),
        }
    })
}

pub(super) async fn join(cfg: &NodeConfig) -> Result<StoredIdentity, NodeError> {
    let token = cfg.token.clone().ok_or(NodeError::NoToken)?;
    let mut rng = jaunt_ca::ssh_key::rand_core::UnwrapErr(jaunt_ca::ssh_key::getrandom::SysRng);
    let host_key = PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(credentials)?;
    let (csr, tls_key) = jaunt_ca::generate_client_csr(&cfg.nodename).map_err(credentials)?;
    let trust = Trust {
        ca_pin: cfg.ca_pin.clone(),
        ..Default::default()
    };
    let api = ApiClient::new(&cfg.proxy, &trust, None)?;
    let resp: NodeJoinResponse = api
        .post(
            PATH_NODE_JOIN,
            &NodeJoinRequest {
                token,
                name: cfg.nodename.clone(),
                labels: cfg.labels.clone(),
                addr: cfg.advertise_addr.clone(),
                host_public_key: host_key.public_key().to_openssh().map_err(credentials)?,
                tls_csr_pem: csr,
                sub_kind: None,
                additional_principals: Vec::new(),
            },
        )
        .await
        .map_err(NodeError::Join)?;
    Ok(StoredIdentity {
        uuid: resp.uuid,
        cluster: resp.cluster_name,
        host_key: Secret::new(
            host_key
                .to_openssh(LineEnding::LF)
                .map_err(credentials)?
                .to_string(),
        ),
        host_cert: resp.host_cert,
        tls_key,
        tls_cert: resp.tls_cert_pem,
        tls_ca: resp.tls_ca_pem,
        user_ca_keys: resp.user_ca_keys,
    })
}

pub(super) fn api_for(cfg: &NodeConfig, id: &StoredIdentity) -> Result<ApiClient, NodeError> {
    let trust = Trust {
        ca_pin: cfg.ca_pin.clone(),
        cluster_ca_pem: Some(id.tls_ca.clone()),
        insecure: false,
    };
    Ok(ApiClient::new(
        &cfg.proxy,
        &trust,
        Some(&ClientCert {
            cert_pem: id.tls_cert.clone(),
            key_pem: id.tls_key.expose().clone(),
        }),
    )?)
}
