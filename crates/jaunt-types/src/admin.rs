//! The admin protocol between `jctl` and the auth service: one JSON request
//! and one JSON response per connection over the owner-only admin socket,
//! or one HTTPS request to the proxy (`jctl --proxy`, [`PATH_ADMIN`]) that
//! the caller's roles must allow ([`AdminRequest::permissions`]).

use crate::api::SecondFactor;
use crate::resources::{Role, TokenInfo, TokenKind, UserInfo};
use crate::{Secret, Ttl};
use serde::{Deserialize, Serialize};

/// The admin socket's file name inside the data directory.
pub const ADMIN_SOCKET: &str = "admin.sock";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminRequest {
    Status,
    UserAdd {
        name: String,
        roles: Vec<String>,
        logins: Vec<String>,
        ttl: Option<Ttl>,
    },
    UserList,
    UserRemove {
        name: String,
    },
    UserReset {
        name: String,
        ttl: Option<Ttl>,
    },
    UserUpdate {
        name: String,
        roles: Option<Vec<String>>,
        logins: Option<Vec<String>>,
    },
    UserUnlock {
        name: String,
    },
    RoleUpsert {
        role: Role,
        /// Without force an existing role is an error.
        force: bool,
    },
    RoleList,
    RoleRemove {
        name: String,
    },
    TokenAdd {
        kind: TokenKind,
        ttl: Option<Ttl>,
        uses: Option<u32>,
        /// Labels every node joining with it has, whatever it says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<crate::resources::Labels>,
    },
    TokenList,
    TokenRemove {
        token: Secret<String>,
    },
    NodeList,
    /// A node by UUID, or by name when one node has it.
    NodeRemove {
        node: String,
    },
    AuditSearch {
        query: crate::audit::AuditQuery,
    },
    /// An agentless (OpenSSH) node registered by hand.
    NodeAddOpenssh {
        name: String,
        addr: String,
        #[serde(default)]
        labels: crate::resources::Labels,
    },
    LockAdd {
        target: crate::resources::LockTarget,
        #[serde(default)]
        message: Option<String>,
        /// Unix seconds.
        #[serde(default)]
        expires: Option<i64>,
    },
    LockList,
    LockRemove {
        id: String,
    },
    /// A CA's public half, in the form its use needs.
    CaExport {
        kind: CaKind,
    },
    /// A host certificate for an agentless host's key.
    HostSign {
        /// The host's names and addresses; the first is its node name.
        principals: Vec<String>,
        public_key: String,
        ttl: Option<Ttl>,
    },
    /// At a leaf: trust a root cluster (or change that trust).
    TrustedClusterUpsert {
        cluster: crate::trust::TrustedCluster,
    },
    TrustedClusterList,
    TrustedClusterRemove {
        name: String,
    },
    /// `jctl auth rotate`: start or move a CA rotation.
    Rotate {
        request: crate::rotation::RotateRequest,
    },
    /// At a root: the leaves that trust it.
    RemoteClusterList,
    RemoteClusterRemove {
        name: String,
    },
}

/// Where `jctl --proxy` sends a request, with a user's certificate.
pub const PATH_ADMIN: &str = "/v1/admin";

/// Rule resources and verbs, as roles name them (`rules: [{resources:
/// [user], verbs: [list, read]}]`).
mod rule {
    pub const LIST: [&str; 2] = ["list", "read"];
}

impl AdminRequest {
    /// What a role's rules must allow for a user to make this request
    /// remotely: every `(resource, verb)` pair. Listing takes `list` and
    /// `read`, as reading recordings does; an upsert that may replace
    /// takes `create` and `update`.
    pub fn permissions(&self) -> Vec<(&'static str, &'static str)> {
        use AdminRequest::*;
        let each = |resource: &'static str, verbs: &[&'static str]| {
            verbs.iter().map(|v| (resource, *v)).collect::<Vec<_>>()
        };
        match self {
            Status => each("cluster", &["read"]),
            UserAdd { .. } => each("user", &["create"]),
            UserList => each("user", &rule::LIST),
            UserRemove { .. } => each("user", &["delete"]),
            UserReset { .. } | UserUpdate { .. } | UserUnlock { .. } => each("user", &["update"]),
            RoleUpsert { force: false, .. } => each("role", &["create"]),
            RoleUpsert { force: true, .. } => each("role", &["create", "update"]),
            RoleList => each("role", &rule::LIST),
            RoleRemove { .. } => each("role", &["delete"]),
            TokenAdd { .. } => each("token", &["create"]),
            TokenList => each("token", &rule::LIST),
            TokenRemove { .. } => each("token", &["delete"]),
            NodeList => each("node", &rule::LIST),
            NodeRemove { .. } => each("node", &["delete"]),
            NodeAddOpenssh { .. } => each("node", &["create"]),
            AuditSearch { .. } => each("event", &rule::LIST),
            LockAdd { .. } => each("lock", &["create"]),
            LockList => each("lock", &rule::LIST),
            LockRemove { .. } => each("lock", &["delete"]),
            CaExport { .. } => each("cert_authority", &["read"]),
            Rotate { .. } => each("cert_authority", &["update"]),
            HostSign { .. } => each("host_cert", &["create"]),
            TrustedClusterUpsert { .. } => each("trusted_cluster", &["create", "update"]),
            TrustedClusterList => each("trusted_cluster", &rule::LIST),
            TrustedClusterRemove { .. } => each("trusted_cluster", &["delete"]),
            RemoteClusterList => each("remote_cluster", &rule::LIST),
            RemoteClusterRemove { .. } => each("remote_cluster", &["delete"]),
        }
    }
}

/// A CA rotation in progress, as `jctl status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationStatus {
    pub ca: crate::rotation::CaType,
    pub rotation: crate::rotation::Rotation,
    /// `SHA256:...` of every key trusted now (for the TLS CA, its pin),
    /// the current one first.
    pub trusted: Vec<String>,
}

/// Which authority `jctl auth export` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaKind {
    /// Users' SSH certificates (`cert-authority` key line).
    User,
    /// Hosts' SSH certificates (`@cert-authority *.<cluster>` line).
    Host,
    /// What an agentless host's sshd trusts (`TrustedUserCAKeys`).
    OpensshUserCa,
    /// The TLS CA (PEM).
    Tls,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AdminResponse {
    Status(ClusterStatus),
    /// A signup token for a new or reset user, and the command they run.
    Signup {
        user: String,
        token: Secret<String>,
        expires: i64,
        command: String,
    },
    Users {
        users: Vec<UserInfo>,
    },
    Roles {
        roles: Vec<Role>,
    },
    Tokens {
        tokens: Vec<TokenInfo>,
    },
    Nodes {
        nodes: Vec<AdminNode>,
    },
    TokenAdded {
        token: TokenInfo,
        command: String,
    },
    Done {
        message: String,
    },
    Locks {
        locks: Vec<crate::resources::Lock>,
    },
    /// Text to print as it is (a key, a certificate).
    Text {
        text: String,
    },
    Events {
        events: Vec<crate::audit::AuditEvent>,
    },
    TrustedClusters {
        clusters: Vec<crate::trust::TrustedClusterInfo>,
    },
    RemoteClusters {
        clusters: Vec<crate::trust::RemoteClusterInfo>,
    },
    Error {
        message: String,
    },
}

/// A node as an administrator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminNode {
    #[serde(flatten)]
    pub info: crate::api::NodeInfo,
    pub online: bool,
    /// Its labels came from its join token.
    #[serde(default)]
    pub labels_pinned: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster_name: String,
    pub public_addr: String,
    pub second_factor: SecondFactor,
    /// `SHA256:...` fingerprints of the SSH CAs' public keys.
    pub user_ca_fingerprint: String,
    pub host_ca_fingerprint: String,
    /// `sha256:<hex>` of the TLS CA's SubjectPublicKeyInfo.
    pub ca_pin: String,
    /// The rotations in progress (none: both CAs in standby).
    #[serde(default)]
    pub rotations: Vec<RotationStatus>,
    pub users: usize,
    pub roles: usize,
}
