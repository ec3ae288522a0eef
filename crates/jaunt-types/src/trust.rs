//! Trust between clusters: a leaf cluster trusts a root cluster's users.
//! The resources each side stores and shows, the messages the leaf's auth
//! and proxy exchange with the root's proxy, and what a root proxy asks a
//! leaf through its tunnel.

use crate::resources::{Labels, Metadata};
use crate::{Secret, resources::validate_name};
use serde::{Deserialize, Serialize};

/// What the leaf's administrator writes (`jctl create -f`): trust the
/// root at `proxy_addr`, proven by `ca_pin`, joined with `token`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrustedCluster {
    pub kind: String,
    #[serde(default = "v1")]
    pub version: String,
    pub metadata: Metadata,
    pub spec: TrustedClusterSpec,
}

fn v1() -> String {
    "v1".into()
}

fn yes() -> bool {
    true
}

fn no_token(token: &Secret<String>) -> bool {
    token.expose().is_empty()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedClusterSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The root's `trusted_cluster` token; spent when trust is made, not
    /// shown again.
    #[serde(default, skip_serializing_if = "no_token")]
    pub token: Secret<String>,
    /// The root's proxy, `host:port`.
    pub proxy_addr: String,
    /// The root's TLS CA pin (`sha256:...`): the leaf never trusts the
    /// root by system roots alone.
    pub ca_pin: String,
    pub role_map: Vec<RoleMapping>,
}

/// Root roles matching `remote` (a name, `*`, or a regex `^...$` whose
/// captures `$1`... may appear in `local`) become the `local` roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    pub remote: String,
    pub local: Vec<String>,
}

impl TrustedCluster {
    pub const KIND: &'static str = "trusted_cluster";

    /// Shape checks; the role map's patterns and local roles are checked
    /// by auth, which knows the roles.
    pub fn validate(&self) -> Result<(), String> {
        if self.kind != Self::KIND {
            return Err(format!(
                "kind: expected {:?}, got {:?}",
                Self::KIND,
                self.kind
            ));
        }
        validate_name(&self.metadata.name).map_err(|e| format!("metadata.name: {e}"))?;
        crate::addr::split_host_port(&self.spec.proxy_addr, 3080)
            .map_err(|e| format!("spec.proxy_addr: {e}"))?;
        if !self.spec.ca_pin.starts_with("sha256:") {
            return Err("spec.ca_pin: the root's CA pin (sha256:...) is required".into());
        }
        if self.spec.role_map.is_empty() {
            return Err(
                "spec.role_map: map at least one of the root's roles to a role of this cluster"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A trusted (root) cluster as the leaf's `jctl get trusted_clusters`
/// shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrustedClusterInfo {
    /// The root's own cluster name.
    pub name: String,
    pub enabled: bool,
    pub proxy_addr: String,
    pub role_map: Vec<RoleMapping>,
    /// `online` while the leaf's tunnel to the root stands.
    pub status: String,
}

/// A leaf as the root's `jctl get remote_clusters` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RemoteClusterInfo {
    pub name: String,
    /// `online` or `offline`: whether its tunnel to this instance stands.
    pub status: String,
    /// Unix seconds; 0 before the first.
    pub last_heartbeat: i64,
    pub labels: Labels,
}

/// Leaf -> root (anonymous, the token proves it): make the trust.
pub const PATH_TRUST_REGISTER: &str = "/v1/trust/register";
/// Leaf -> root, with the leaf's certificate: still here; renew the
/// certificate when asked.
pub const PATH_TRUST_HEARTBEAT: &str = "/v1/trust/heartbeat";
/// The root and its leaves, as `jsh clusters` lists them.
pub const PATH_CLUSTERS: &str = "/v1/clusters";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrustRegisterRequest {
    pub token: Secret<String>,
    /// The leaf's cluster name.
    pub cluster_name: String,
    /// The leaf's SSH host CA keys: the root's users check leaf nodes'
    /// host certificates against them.
    pub host_ca_keys: Vec<String>,
    /// For the leaf's tunnel certificate (TLS client, signed by the root).
    pub tls_csr_pem: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrustRegisterResponse {
    /// The root's cluster name.
    pub cluster_name: String,
    pub user_ca_keys: Vec<String>,
    pub host_ca_keys: Vec<String>,
    pub tls_ca_pem: String,
    pub tls_cert_pem: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrustHeartbeatRequest {
    /// A CSR when the leaf's certificate is past half its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_csr_pem: Option<String>,
    /// The leaf's trusted host CA keys now (a CA rotation changes them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ca_keys: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrustHeartbeatResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_pem: Option<String>,
    /// The root's trusted user and host CA keys now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ca_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ca_keys: Vec<String>,
    /// The root's TLS CAs now (a PEM bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_pem: Option<String>,
    /// The leaf's certificate is from a TLS CA that no longer signs: send
    /// a CSR.
    #[serde(default)]
    pub tls_renew: bool,
}

/// A cluster as `jsh clusters` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    /// `online` or `offline`.
    pub status: String,
    /// `root` or `leaf`.
    #[serde(rename = "type")]
    pub kind: String,
    pub labels: Labels,
    /// Its SSH host CA keys (OpenSSH lines): a leaf's nodes present host
    /// certificates from their own cluster's CA.
    pub host_ca_keys: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClustersResponse {
    pub clusters: Vec<ClusterInfo>,
}

/// A user of another (root) cluster, as a leaf node saw its certificate:
/// the leaf's auth maps its roles through the trust's role map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteIdentity {
    /// The cluster whose user CA signed the certificate.
    pub cluster: String,
    /// The user's roles there.
    pub roles: Vec<String>,
    /// The user's `logins` trait there, for `{{internal.logins}}`.
    #[serde(default)]
    pub logins: Vec<String>,
}

/// A trusted cluster's user CA keys, as nodes get them in heartbeats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedUserCa {
    pub cluster: String,
    pub keys: Vec<String>,
}

/// A leaf's answer to [`ClusterRequest::ListNodes`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LeafNodes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub nodes: Vec<crate::api::NodeInfo>,
}

/// Root proxy -> leaf proxy, with a tunnel dial: what the data connection
/// is for. The leaf answers on the data connection with one JSON line
/// (`DialResponse`, or `NodeListResponse`), then (a dial) the SSH bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRequest {
    /// Reach a node of the leaf for a root user.
    Dial {
        target: String,
        user: String,
        remote: RemoteIdentity,
        /// The user's address, for the node's `source-address` and audit.
        client: String,
    },
    /// The leaf's nodes this root user may see.
    ListNodes {
        user: String,
        remote: RemoteIdentity,
    },
}
