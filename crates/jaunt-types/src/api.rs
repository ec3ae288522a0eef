//! The HTTPS JSON API the proxy serves to `jsh` (ALPN `http/1.1`). Paths are
//! the constants below; every error body is an [`ApiErrorBody`].

use crate::Secret;
use serde::{Deserialize, Serialize};

pub const PATH_PING: &str = "/v1/ping";
pub const PATH_SIGNUP_START: &str = "/v1/signup/start";
pub const PATH_SIGNUP_FINISH: &str = "/v1/signup/finish";
pub const PATH_LOGIN: &str = "/v1/login";
pub const PATH_WHOAMI: &str = "/v1/whoami";

/// The ALPN protocol of the HTTPS API on the proxy's one public port.
pub const ALPN_HTTP: &[u8] = b"http/1.1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecondFactor {
    /// TOTP codes from an authenticator app (the default).
    #[default]
    Otp,
    Off,
}

impl std::fmt::Display for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecondFactor::Otp => "otp",
            SecondFactor::Off => "off",
        })
    }
}

impl std::str::FromStr for SecondFactor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "otp" => Ok(SecondFactor::Otp),
            "off" => Ok(SecondFactor::Off),
            other => Err(format!("unknown second factor {other:?}: use otp or off")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PingResponse {
    pub cluster_name: String,
    pub public_addr: String,
    pub second_factor: SecondFactor,
    pub server_version: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignupStartRequest {
    pub token: Secret<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignupStartResponse {
    pub user: String,
    pub second_factor: SecondFactor,
    /// `otpauth://` URI to enrol in an authenticator app, when OTP is on.
    pub totp_uri: Option<Secret<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignupFinishRequest {
    pub token: Secret<String>,
    pub password: Secret<String>,
    pub otp: Option<Secret<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignupFinishResponse {
    pub user: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginRequest {
    pub user: String,
    pub password: Secret<String>,
    pub otp: Option<Secret<String>>,
    /// The user's SSH public key (OpenSSH format). The private key stays on
    /// the client.
    pub ssh_public_key: String,
    /// PEM certificate signing request for the TLS client certificate.
    pub tls_csr_pem: String,
    /// Requested certificate lifetime; capped by the user's roles.
    pub ttl_secs: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub cluster_name: String,
    /// The SSH user certificate (OpenSSH `-cert.pub` line).
    pub ssh_cert: String,
    pub tls_cert_pem: String,
    pub tls_ca_pem: String,
    /// The cluster's SSH host CA public keys (OpenSSH format).
    pub host_ca_keys: Vec<String>,
    pub roles: Vec<String>,
    pub logins: Vec<String>,
    /// Unix seconds.
    pub valid_until: i64,
}

/// Who the proxy saw on a TLS client certificate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WhoAmIResponse {
    pub user: String,
    pub roles: Vec<String>,
    pub logins: Vec<String>,
    pub cluster_name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    /// Try again later (too many attempts from one address, or a busy
    /// cluster).
    Throttled,
    InvalidCredentials,
    Locked,
    AccessDenied,
    NotFound,
    Internal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

// ---- Nodes ----------------------------------------------------------------

/// How long node certificates (SSH host and TLS client) live; nodes renew
/// them past half their life.
pub const NODE_CERT_TTL_SECS: u64 = 7 * 86400;

pub const PATH_NODE_JOIN: &str = "/v1/nodes/join";
pub const PATH_NODE_HEARTBEAT: &str = "/v1/nodes/heartbeat";
pub const PATH_NODE_AUTHORIZE: &str = "/v1/nodes/authorize";
/// `GET`: the nodes the caller (a user certificate) may see.
pub const PATH_NODES: &str = "/v1/nodes";

/// ALPN of a relayed SSH connection from a client (`jsh proxy ssh`).
pub const ALPN_SSH: &[u8] = b"jaunt-ssh/1";
/// ALPN of a node's reverse tunnel (control and data connections).
pub const ALPN_TUNNEL: &[u8] = b"jaunt-tunnel/1";

/// The server name a client asks for when it trusts the proxy by the
/// cluster's own CA (a pin, or the CA saved at login or join): the proxy
/// then presents its cluster-issued certificate, which names it, even when
/// it shows a certificate from a public CA to everyone else. Such a client
/// never trusts the system's roots.
pub const CLUSTER_SERVER_NAME: &str = "proxy.jaunt.cluster.local";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeJoinRequest {
    pub token: Secret<String>,
    pub name: String,
    pub labels: crate::resources::Labels,
    /// `host:port` the proxy dials (direct mode); `None`: reverse tunnel.
    pub addr: Option<String>,
    /// The node's SSH host public key (OpenSSH format).
    pub host_public_key: String,
    /// The node's TLS key request; empty for an agentless node, which
    /// never calls the API again.
    pub tls_csr_pem: String,
    /// What serves SSH there: `None` a Jaunt node, `Openssh` a stock sshd
    /// reached through the proxy (`jaunt join openssh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_kind: Option<NodeSubKind>,
    /// More names for the host certificate (agentless nodes: the names
    /// people use for the host besides its node name and address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_principals: Vec<String>,
}

/// A node that is not a Jaunt node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeSubKind {
    /// A stock OpenSSH `sshd`: the proxy terminates the client's SSH
    /// connection and forwards to it with a certificate of its own.
    Openssh,
}

impl NodeSubKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            NodeSubKind::Openssh => "openssh",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeJoinResponse {
    pub uuid: String,
    pub cluster_name: String,
    pub host_cert: String,
    pub tls_cert_pem: String,
    pub tls_ca_pem: String,
    pub user_ca_keys: Vec<String>,
    /// For an agentless node: the CA its sshd trusts (`TrustedUserCAKeys`),
    /// which signs only the proxy's per-connection certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub openssh_ca_keys: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub name: String,
    pub labels: crate::resources::Labels,
    pub addr: Option<String>,
    pub host_public_key: String,
    /// When the node's host certificate expires (Unix seconds).
    pub host_cert_valid_before: u64,
    /// `SHA256:...` of the CA key that signed it: auth renews it when
    /// another key signs host certificates now (a CA rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cert_ca: Option<String>,
    /// A CSR, when the node's TLS certificate is due for renewal.
    pub tls_csr_pem: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// A renewed host certificate, when the old one is past half its life.
    pub host_cert: Option<String>,
    pub tls_cert_pem: Option<String>,
    /// The cluster's TLS CAs (a PEM bundle; two during a TLS CA rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_pem: Option<String>,
    /// The node's TLS certificate is from a CA that no longer signs: send
    /// a CSR with the next heartbeat.
    #[serde(default)]
    pub tls_renew: bool,
    pub user_ca_keys: Vec<String>,
    /// How often to heartbeat.
    pub heartbeat_secs: u64,
    /// The cluster's recording mode.
    #[serde(default)]
    pub recording: RecordingMode,
    /// Close SSH connections idle this long; 0: never.
    #[serde(default)]
    pub client_idle_timeout_secs: u64,
    /// The live proxy instances: a tunnel node keeps a tunnel to each, so
    /// it is reachable through every one of them. Empty from an auth
    /// service that does not say (one tunnel to the configured proxy).
    #[serde(default)]
    pub proxies: Vec<ProxyInstance>,
    /// Hex: the key this node checks the proxy's client-address lines with
    /// (`jaunt_ca::client_addr`); its own, derived by auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr_key: Option<String>,
    /// The user CAs of the clusters this one trusts (leaf of a root):
    /// their users' certificates are accepted, their roles mapped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_user_cas: Vec<crate::trust::TrustedUserCa>,
}

/// A proxy instance, as it registers itself in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyInstance {
    /// Made at the instance's start.
    pub id: String,
    /// `host:port` where nodes reach this instance: its own address, or
    /// a load balancer's that all instances share (a node then dials it
    /// until each instance has answered).
    pub addr: String,
    /// `host:port` where the other instances reach this one, to hand over
    /// a relay connection whose ticket it issued.
    #[serde(default)]
    pub peer_addr: String,
}

/// The first line a proxy sends on a node's tunnel control connection:
/// which instance the node reached. (Nodes of earlier versions skip it:
/// it is not a [`TunnelDial`].)
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TunnelGreeting {
    pub proxy: String,
}

/// A node as clients see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub uuid: String,
    pub name: String,
    pub labels: crate::resources::Labels,
    /// `host:port` for direct nodes; `None` for reverse-tunnel nodes.
    pub addr: Option<String>,
    /// Unix seconds of the last heartbeat.
    pub last_seen: i64,
    /// `Some` for an agentless node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_kind: Option<NodeSubKind>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeListResponse {
    pub cluster_name: String,
    pub nodes: Vec<NodeInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    pub user: String,
    pub login: String,
    /// A user of a trusted (root) cluster: their roles there, mapped by
    /// this cluster's role map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::trust::RemoteIdentity>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthorizeResponse {
    pub allowed: bool,
    /// Why not, when not allowed.
    pub reason: String,
    pub port_forwarding: bool,
    pub forward_agent: bool,
    /// The user's roles now: a node ends the connection when a lock on
    /// one of them comes into force.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Session channels one connection may hold (roles' `max_sessions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// Connections the user may hold on this node (`max_connections`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
}

/// The locks in force, as a node follows them: it asks with the version
/// it has (`?after=`), and the answer waits (up to [`LOCKS_WAIT_SECS`])
/// until the set differs from that version.
pub const PATH_NODE_LOCKS: &str = "/v1/node/locks";
pub const LOCKS_WAIT_SECS: u64 = 25;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LocksResponse {
    /// Names this set of locks (the same set has the same version at
    /// every instance).
    pub version: String,
    pub locks: Vec<crate::resources::Lock>,
}

/// The first line a client sends on an `ALPN_SSH` connection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DialRequest {
    /// `[login@]host[:port]` as the user wrote it.
    pub target: String,
    pub cluster: Option<String>,
    /// The client would take the SSH bytes on a plain TCP connection of
    /// their own (a raw relay, see `RAW_RELAY_MAGIC`) rather than inside
    /// this TLS connection.
    #[serde(default)]
    pub raw: bool,
}

/// The proxy's answer line. On success without a ticket the SSH bytes
/// follow on this connection; with one, the client redeems it on a new TCP
/// connection to the same proxy address and this connection ends.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DialResponse {
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The UUID of the node the proxy routed to: a client checks the host
    /// certificate it meets against it (names are the nodes' own word and
    /// need not be unique; UUIDs are auth's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl DialResponse {
    /// A refusal with its reason for the client.
    pub fn refused(message: impl Into<String>) -> Self {
        DialResponse {
            error: Some(message.into()),
            ticket: None,
            node: None,
        }
    }
}

/// How a raw relay connection starts: these bytes, the ticket, a newline.
/// The proxy answers with one `DialResponse` line; then the SSH bytes
/// follow, end to end encrypted by SSH itself. Never a valid first byte of
/// TLS (0x16), so one port carries both.
pub const RAW_RELAY_MAGIC: &[u8] = b"JAUNT-RELAY/1 ";

/// Proxy -> node, one line on the reverse tunnel's control connection:
/// open a data connection for session `dial`. Without a ticket it is a TLS
/// connection (ALPN `jaunt-tunnel/1`, the node's certificate) that starts
/// with `{"data": dial}`; with one, a plain TCP connection to the same
/// proxy address that starts with `TUNNEL_DATA_MAGIC`, the id, a space,
/// the ticket and a newline: the raw relay's other half.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TunnelDial {
    pub dial: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// To a leaf cluster's proxy: what the connection is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::trust::ClusterRequest>,
}

pub const TUNNEL_DATA_MAGIC: &[u8] = b"JAUNT-TUNNEL/1 ";

/// Node -> auth: audit events from the node's on-disk queue, in order.
pub const PATH_NODE_EVENTS: &str = "/v1/node/events";
/// Node -> auth: the node's running sessions (the whole list each time).
pub const PATH_NODE_SESSIONS: &str = "/v1/node/sessions";
/// Node -> auth: a piece of a session recording.
pub const PATH_NODE_RECORDING: &str = "/v1/node/recording";
/// The running sessions the caller may see.
pub const PATH_SESSIONS: &str = "/v1/sessions";
/// The recordings the caller may play; `/v1/recordings/<session ID>` one.
pub const PATH_RECORDINGS: &str = "/v1/recordings";

/// Client-sent variables a session accepts (a node's, or the proxy's for
/// an agentless node); everything else is dropped.
pub fn env_allowed(name: &str) -> bool {
    name == "LANG" || name == "LANGUAGE" || name == "TZ" || name.starts_with("LC_")
}

/// Where sessions are recorded: the cluster's `recording` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingMode {
    /// On the node's disk, uploaded when the session ends (retried).
    #[default]
    Node,
    /// Streamed to auth as it happens; a session auth cannot record ends.
    NodeSync,
    Off,
}

impl std::str::FromStr for RecordingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "node" => Ok(RecordingMode::Node),
            "node-sync" => Ok(RecordingMode::NodeSync),
            "off" => Ok(RecordingMode::Off),
            other => Err(format!(
                "unknown recording mode {other:?}: use node, node-sync or off"
            )),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ack {}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeEventsRequest {
    pub events: Vec<crate::audit::AuditEvent>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeSessionsRequest {
    pub sessions: Vec<crate::audit::ActiveSession>,
}

/// Bytes `offset..offset+data.len()` of a recording's asciicast text. A
/// repeated piece (a retry) is accepted once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordingUpload {
    pub meta: crate::audit::RecordingMeta,
    pub offset: u64,
    pub data: String,
    /// The last piece: the session has ended.
    pub complete: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionListResponse {
    pub sessions: Vec<crate::audit::ActiveSession>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordingListResponse {
    pub recordings: Vec<crate::audit::RecordingMeta>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordingResponse {
    pub meta: crate::audit::RecordingMeta,
    /// asciicast v2 text.
    pub data: String,
}
