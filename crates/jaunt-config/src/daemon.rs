//! The daemon's configuration: every flag of `jaunt start` is also a key of
//! the YAML file given with `--config`; flags win over the file, and the
//! file wins over the defaults.

use crate::storage::{Storage, StorageSection};
use crate::{ConfigError, yaml_error};
use jaunt_types::Ttl;
use jaunt_types::addr::split_host_port;
use jaunt_types::api::SecondFactor;
use jaunt_types::resources::validate_name;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The proxy's port when none is given.
pub const DEFAULT_PORT: u16 = 3080;

/// What a user may write, in the file or as flags. Every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    /// `storage: {type, conn_string, pool_size}`: see [`Storage`].
    pub storage: Option<StorageSection>,
    /// The store as one URI (the `--storage-uri` flag); wins over `storage`.
    pub storage_uri: Option<String>,
    pub roles: Option<String>,
    pub cluster_name: Option<String>,
    pub listen: Option<String>,
    pub public_addr: Option<String>,
    /// `host:port` where the other proxy instances reach this one (to hand
    /// over a connection whose ticket this instance issued).
    pub peer_addr: Option<String>,
    /// Plain-HTTP diagnostics (`/healthz`, `/readyz`); off when absent.
    pub diag_addr: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub second_factor: Option<String>,
    pub max_login_attempts: Option<u32>,
    /// Text, parsed in `resolve`, so a mistake names the key.
    pub lockout_duration: Option<String>,
    /// Text, parsed in `resolve`.
    pub node_offline_after: Option<String>,
    /// Nodes close SSH connections idle this long; `off` (the default).
    pub client_idle_timeout: Option<String>,
    /// How long a graceful stop (SIGTERM) waits for sessions, e.g. 30s.
    pub shutdown_timeout: Option<String>,
    /// How long audit events are kept, e.g. 365d; off: for ever.
    pub audit_retention: Option<String>,
    /// How long session recordings are kept, e.g. 90d; off: for ever.
    pub recording_retention: Option<String>,
    /// Where sessions are recorded: node, node-sync or off.
    pub recording: Option<String>,
    /// `recordings: {type: store|dir, path}`: where auth keeps them.
    pub recordings: Option<RecordingsSection>,
    /// How the proxy relays SSH: raw or tls.
    pub ssh_relay: Option<String>,
    /// Networks the proxy may dial for direct-mode nodes, `cidr,cidr`.
    pub node_address_allow: Option<String>,
    /// Connections the proxy holds in all (0: no limit).
    pub max_connections: Option<usize>,
    /// Connections from one client address (0: no limit).
    pub max_connections_per_ip: Option<usize>,
    /// Connections from one address still in their handshake.
    pub max_pending_per_ip: Option<usize>,
    pub log_level: Option<String>,
    /// `text` (the default) or `json`.
    pub log_format: Option<String>,
    /// Node: the join token (only needed for the first start).
    pub token: Option<String>,
    /// Node: the proxy to join, `host:port`.
    pub proxy: Option<String>,
    /// Node: the cluster CA pin.
    pub ca_pin: Option<String>,
    /// Node: its name [default: the host name].
    pub nodename: Option<String>,
    /// Node: labels, `k=v,k=v`.
    pub labels: Option<String>,
    /// Node: serve SSH on this address (direct mode) instead of a tunnel.
    pub ssh_listen: Option<String>,
    /// Node: the address the proxy dials [default: ssh_listen].
    pub advertise_addr: Option<String>,
    /// Node: the most disk recordings waiting for upload may take, e.g.
    /// `10GiB`, `500MiB` or bytes.
    pub recording_disk_limit: Option<String>,
}

/// The `recordings:` section as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsSection {
    /// `store` (the default) or `dir`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The directory, for `dir`: absolute, or under the data directory.
    pub path: Option<PathBuf>,
}

/// Where auth keeps recordings' text (their metadata is always in the
/// store).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Recordings {
    #[default]
    Store,
    /// Files under this directory (a volume several instances may share).
    Dir(PathBuf),
}

impl Recordings {
    fn resolve(
        section: Option<&RecordingsSection>,
        data_dir: &std::path::Path,
    ) -> Result<Self, String> {
        let Some(section) = section else {
            return Ok(Recordings::Store);
        };
        match (section.kind.as_deref(), &section.path) {
            (None | Some("store"), None) => Ok(Recordings::Store),
            (None | Some("store"), Some(_)) => Err(
                "a path goes with type: dir (type: store keeps them in the cluster store)".into(),
            ),
            (Some("dir"), Some(path)) if path.as_os_str().is_empty() => {
                Err("type: dir needs a path".into())
            }
            (Some("dir"), Some(path)) => Ok(Recordings::Dir(data_dir.join(path))),
            (Some("dir"), None) => Err("type: dir needs a path, e.g. /srv/jaunt/recordings".into()),
            (Some(other), _) => Err(format!("type {other:?}: use store or dir")),
        }
    }
}

/// A service of the `jaunt` daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    Auth,
    Proxy,
    Node,
}

/// The node service's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettings {
    pub token: Option<jaunt_types::Secret<String>>,
    pub proxy: String,
    pub ca_pin: Option<String>,
    pub nodename: String,
    pub labels: jaunt_types::resources::Labels,
    pub ssh_listen: Option<SocketAddr>,
    pub advertise_addr: Option<String>,
    /// Bytes.
    pub recording_disk_limit: u64,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub storage: Storage,
    pub services: Vec<Service>,
    pub cluster_name: String,
    pub listen: SocketAddr,
    /// `host:port` that clients use to reach the proxy.
    pub public_addr: String,
    pub public_host: String,
    /// Where other instances reach this one; `None`: the listen address
    /// when it names one, else `host_name` with the listen port.
    pub peer_addr: Option<String>,
    /// This machine's name.
    pub host_name: String,
    /// Where `/healthz` and `/readyz` are served (plain HTTP), if anywhere.
    pub diag_addr: Option<SocketAddr>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub second_factor: SecondFactor,
    pub max_login_attempts: u32,
    pub lockout_duration: Ttl,
    pub node_offline_after: Ttl,
    /// `None`: connections are never closed for being idle.
    pub client_idle_timeout: Option<Ttl>,
    pub shutdown_timeout: Ttl,
    pub audit_retention: Option<Ttl>,
    pub recording_retention: Option<Ttl>,
    pub recording: jaunt_types::api::RecordingMode,
    pub recordings: Recordings,
    /// The proxy hands relayed SSH bytes to a plain TCP connection after
    /// the TLS dial request (`ssh_relay: raw`) instead of keeping them in
    /// TLS (`tls`).
    pub raw_relay: bool,
    /// Which node addresses the proxy dials.
    pub dial_policy: jaunt_types::addr::DialPolicy,
    /// The proxy's connection limits (0: none).
    pub limits: ConnectionLimits,
    pub log_level: String,
    pub log_format: LogFormat,
    pub node: Option<NodeSettings>,
}

/// How the daemon writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object a line, for log shippers.
    Json,
}

/// How many connections the proxy holds: in all, from one address, and
/// from one address still in their handshake; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_pending_per_ip: usize,
}

pub(crate) struct Defaults;
impl Defaults {
    pub(crate) const DATA_DIR: &'static str = "/var/lib/jaunt";
    pub(crate) const ROLES: &'static str = "auth,proxy";
    pub(crate) const NODE_ROLES: &'static str = "node";
    pub(crate) const LISTEN: &'static str = "0.0.0.0:3080";
    pub(crate) const SECOND_FACTOR: &'static str = "otp";
    pub(crate) const MAX_LOGIN_ATTEMPTS: u32 = 5;
    pub(crate) const LOCKOUT: Ttl = Ttl::from_secs(30 * 60);
    pub(crate) const SHUTDOWN_TIMEOUT: Ttl = Ttl::from_secs(30);
    pub(crate) const AUDIT_RETENTION: Ttl = Ttl::from_secs(365 * 86400);
    pub(crate) const RECORDING_RETENTION: Ttl = Ttl::from_secs(90 * 86400);
    pub(crate) const NODE_OFFLINE_AFTER: Ttl = Ttl::from_secs(60);
    pub(crate) const LOG_LEVEL: &'static str = "info";
    pub(crate) const MAX_CONNECTIONS: usize = 50_000;
    pub(crate) const MAX_CONNECTIONS_PER_IP: usize = 2_000;
    pub(crate) const MAX_PENDING_PER_IP: usize = 64;
    pub(crate) const RECORDING_DISK_LIMIT: u64 = 10 << 30;
}

impl FileConfig {
    /// Parses a config file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(FileConfig::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| yaml_error(file, e))
    }

    /// `self` with every value that `over` sets replaced.
    pub fn overridden_by(self, over: FileConfig) -> FileConfig {
        FileConfig {
            data_dir: over.data_dir.or(self.data_dir),
            storage: over.storage.or(self.storage),
            storage_uri: over.storage_uri.or(self.storage_uri),
            roles: over.roles.or(self.roles),
            cluster_name: over.cluster_name.or(self.cluster_name),
            listen: over.listen.or(self.listen),
            public_addr: over.public_addr.or(self.public_addr),
            peer_addr: over.peer_addr.or(self.peer_addr),
            diag_addr: over.diag_addr.or(self.diag_addr),
            tls_cert_file: over.tls_cert_file.or(self.tls_cert_file),
            tls_key_file: over.tls_key_file.or(self.tls_key_file),
            second_factor: over.second_factor.or(self.second_factor),
            max_login_attempts: over.max_login_attempts.or(self.max_login_attempts),
            lockout_duration: over.lockout_duration.or(self.lockout_duration),
            node_offline_after: over.node_offline_after.or(self.node_offline_after),
            client_idle_timeout: over.client_idle_timeout.or(self.client_idle_timeout),
            shutdown_timeout: over.shutdown_timeout.or(self.shutdown_timeout),
            audit_retention: over.audit_retention.or(self.audit_retention),
            recording_retention: over.recording_retention.or(self.recording_retention),
            recording: over.recording.or(self.recording),
            recordings: over.recordings.or(self.recordings),
            ssh_relay: over.ssh_relay.or(self.ssh_relay),
            node_address_allow: over.node_address_allow.or(self.node_address_allow),
            max_connections: over.max_connections.or(self.max_connections),
            max_connections_per_ip: over.max_connections_per_ip.or(self.max_connections_per_ip),
            max_pending_per_ip: over.max_pending_per_ip.or(self.max_pending_per_ip),
            log_level: over.log_level.or(self.log_level),
            log_format: over.log_format.or(self.log_format),
            token: over.token.or(self.token),
            proxy: over.proxy.or(self.proxy),
            ca_pin: over.ca_pin.or(self.ca_pin),
            nodename: over.nodename.or(self.nodename),
            labels: over.labels.or(self.labels),
            ssh_listen: over.ssh_listen.or(self.ssh_listen),
            advertise_addr: over.advertise_addr.or(self.advertise_addr),
            recording_disk_limit: over.recording_disk_limit.or(self.recording_disk_limit),
        }
    }
}

fn parse_services(text: &str, src: &str) -> Result<Vec<Service>, ConfigError> {
    let mut services = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let s = match part {
            "auth" => Service::Auth,
            "proxy" => Service::Proxy,
            "node" => Service::Node,
            other => {
                return Err(ConfigError::invalid(
                    src,
                    "roles",
                    format!("unknown service {other:?}; known: auth, proxy, node"),
                ));
            }
        };
        if !services.contains(&s) {
            services.push(s);
        }
    }
    services.sort();
    if services.is_empty() {
        return Err(ConfigError::invalid(
            src,
            "roles",
            "name at least one service: auth, proxy, node",
        ));
    }
    if services.contains(&Service::Proxy) && !services.contains(&Service::Auth) {
        return Err(ConfigError::invalid(
            src,
            "roles",
            "the proxy runs in the same process as the auth service (several auth+proxy instances share one database); use auth,proxy",
        ));
    }
    Ok(services)
}

/// Parses `k=v,k=v` labels.
pub fn parse_labels(text: &str) -> Result<jaunt_types::resources::Labels, String> {
    let mut labels = jaunt_types::resources::Labels::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not key=value"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(format!("{part:?} has an empty key"));
        }
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

fn node_settings(
    s: &FileConfig,
    hostname: &str,
    public_addr: &str,
    runs_proxy: bool,
    src: &str,
) -> Result<NodeSettings, ConfigError> {
    let invalid = |key: &str, m: String| ConfigError::invalid(src, key, m);
    let proxy = match (&s.proxy, runs_proxy) {
        (Some(p), _) => {
            let (h, port) = split_host_port(p, DEFAULT_PORT).map_err(|m| invalid("proxy", m))?;
            format!("{h}:{port}")
        }
        (None, true) => public_addr.to_string(),
        (None, false) => {
            return Err(invalid(
                "proxy",
                "a node needs --proxy=HOST:PORT (the cluster's proxy)".into(),
            ));
        }
    };
    let nodename = s.nodename.clone().unwrap_or_else(|| hostname.to_string());
    validate_name(&nodename).map_err(|m| invalid("nodename", m))?;
    let labels =
        parse_labels(s.labels.as_deref().unwrap_or("")).map_err(|m| invalid("labels", m))?;
    let ssh_listen = match &s.ssh_listen {
        Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "ssh_listen",
                format!("{text:?} is not an address like 0.0.0.0:3022"),
            )
        })?),
        None => None,
    };
    let advertise_addr = match (&s.advertise_addr, ssh_listen) {
        // Port 0 with a port-0 listener: the port the kernel picks.
        (Some(a), Some(l)) if l.port() == 0 && a.ends_with(":0") => {
            split_host_port(&format!("{}:1", &a[..a.len() - 2]), 1)
                .map_err(|m| invalid("advertise_addr", m))?;
            Some(a.clone())
        }
        (Some(a), _) => {
            let (h, p) = split_host_port(a, ssh_listen.map_or(3022, |l| l.port()))
                .map_err(|m| invalid("advertise_addr", m))?;
            Some(format!("{h}:{p}"))
        }
        (None, Some(l)) if l.ip().is_unspecified() => {
            return Err(invalid(
                "advertise_addr",
                format!(
                    "the node listens on {l}; say which address the proxy should dial with --advertise-addr=HOST:PORT"
                ),
            ));
        }
        (None, Some(l)) => Some(l.to_string()),
        (None, None) => None,
    };
    if s.ca_pin
        .as_deref()
        .is_some_and(|p| !p.starts_with("sha256:"))
    {
        return Err(invalid(
            "ca_pin",
            "a CA pin looks like sha256:<hex> (see 'jctl status')".into(),
        ));
    }
    let recording_disk_limit = match s.recording_disk_limit.as_deref() {
        None => Defaults::RECORDING_DISK_LIMIT,
        Some(text) => parse_size(text).map_err(|m| invalid("recording_disk_limit", m))?,
    };
    Ok(NodeSettings {
        token: s.token.clone().map(jaunt_types::Secret::new),
        proxy,
        ca_pin: s.ca_pin.clone(),
        nodename,
        labels,
        ssh_listen,
        advertise_addr,
        recording_disk_limit,
    })
}

/// A size: bytes, or a number with KiB, MiB, GiB or TiB (KB, MB, GB, TB
/// and K, M, G, T are read as the same powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 10GiB, 500MiB or 1048576"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use KiB, MiB, GiB or TiB)"
            ));
        }
    };
    n.checked_mul(1u64 << shift)
        .filter(|b| *b > 0)
        .ok_or_else(|| format!("{text:?} is not a size between 1 byte and 16 EiB"))
}

/// Where the proxy listens and the address clients are told, with its
/// host alone (the default cluster name).
fn addresses(
    s: &FileConfig,
    hostname: &str,
    src: &str,
) -> Result<(SocketAddr, String, String), ConfigError> {
    let invalid = |key: &str, m: String| ConfigError::invalid(src, key, m);
    let listen_text = s
        .listen
        .clone()
        .unwrap_or_else(|| Defaults::LISTEN.to_string());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        invalid(
            "listen",
            format!("{listen_text:?} is not an address like 0.0.0.0:3080"),
        )
    })?;
    let default_public_port = if listen.port() == 0 {
        DEFAULT_PORT
    } else {
        listen.port()
    };
    let public_text = s
        .public_addr
        .clone()
        .unwrap_or_else(|| format!("{hostname}:{default_public_port}"));
    let (public_host, public_port) = split_host_port(&public_text, default_public_port)
        .map_err(|m| invalid("public_addr", m))?;
    let public_addr = if public_host.contains(':') {
        format!("[{public_host}]:{public_port}")
    } else {
        format!("{public_host}:{public_port}")
    };
    Ok((listen, public_addr, public_host))
}

/// A duration setting (`30m`, `8h`), or its default.
fn duration(
    value: &Option<String>,
    default: Ttl,
    key: &str,
    src: &str,
) -> Result<Ttl, ConfigError> {
    match value {
        Some(text) => text
            .parse::<Ttl>()
            .map_err(|e| ConfigError::invalid(src, key, e.to_string())),
        None => Ok(default),
    }
}

fn log_level(s: &FileConfig, src: &str) -> Result<String, ConfigError> {
    let level = s
        .log_level
        .clone()
        .unwrap_or_else(|| Defaults::LOG_LEVEL.to_string());
    if !["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
        return Err(ConfigError::invalid(
            src,
            "log_level",
            format!("{level:?}: use error, warn, info, debug or trace"),
        ));
    }
    Ok(level)
}

impl Config {
    /// Merges the file (if any) with the flags and fills in defaults.
    /// `hostname` is this machine's name, for the default public address.
    pub fn resolve(
        file: FileConfig,
        flags: FileConfig,
        hostname: &str,
        src: &str,
    ) -> Result<Config, ConfigError> {
        let s = file.overridden_by(flags);
        let invalid = |key: &str, m: String| ConfigError::invalid(src, key, m);
        // A node's flags imply the node role when --roles is not given.
        let default_roles = if s.token.is_some() || s.proxy.is_some() {
            Defaults::NODE_ROLES
        } else {
            Defaults::ROLES
        };
        let services = parse_services(s.roles.as_deref().unwrap_or(default_roles), src)?;
        let (listen, public_addr, public_host) = addresses(&s, hostname, src)?;
        let cluster_name = s
            .cluster_name
            .clone()
            .unwrap_or_else(|| public_host.clone());
        validate_name(&cluster_name).map_err(|m| invalid("cluster_name", m))?;
        let second_factor = s
            .second_factor
            .as_deref()
            .unwrap_or(Defaults::SECOND_FACTOR)
            .parse::<SecondFactor>()
            .map_err(|m| invalid("second_factor", m))?;
        let max_login_attempts = s.max_login_attempts.unwrap_or(Defaults::MAX_LOGIN_ATTEMPTS);
        if max_login_attempts == 0 {
            return Err(invalid("max_login_attempts", "must be at least 1".into()));
        }
        let lockout_duration = duration(
            &s.lockout_duration,
            Defaults::LOCKOUT,
            "lockout_duration",
            src,
        )?;
        let node_offline_after = duration(
            &s.node_offline_after,
            Defaults::NODE_OFFLINE_AFTER,
            "node_offline_after",
            src,
        )?;
        if node_offline_after.as_secs() == 0 {
            return Err(invalid("node_offline_after", "must be positive".into()));
        }
        let client_idle_timeout = match s.client_idle_timeout.as_deref() {
            None | Some("off") | Some("0") | Some("") => None,
            Some(_) => Some(duration(
                &s.client_idle_timeout,
                Defaults::LOCKOUT,
                "client_idle_timeout",
                src,
            )?)
            .filter(|t| t.as_secs() > 0),
        };
        let shutdown_timeout = duration(
            &s.shutdown_timeout,
            Defaults::SHUTDOWN_TIMEOUT,
            "shutdown_timeout",
            src,
        )?;
        let retention = |text: &Option<String>, default: Ttl, key: &str| match text.as_deref() {
            Some("off") | Some("0") => Ok(None),
            _ => duration(text, default, key, src).map(Some),
        };
        let audit_retention = retention(
            &s.audit_retention,
            Defaults::AUDIT_RETENTION,
            "audit_retention",
        )?;
        let recording_retention = retention(
            &s.recording_retention,
            Defaults::RECORDING_RETENTION,
            "recording_retention",
        )?;
        let recording = match &s.recording {
            Some(text) => text.parse().map_err(|e| invalid("recording", e))?,
            None => Default::default(),
        };
        let raw_relay = match s.ssh_relay.as_deref() {
            None | Some("raw") => true,
            Some("tls") => false,
            Some(other) => {
                return Err(invalid("ssh_relay", format!("{other:?}: use raw or tls")));
            }
        };
        if s.tls_cert_file.is_some() != s.tls_key_file.is_some() {
            return Err(invalid(
                "tls_cert_file",
                "tls_cert_file and tls_key_file go together: set both or neither".into(),
            ));
        }
        let dial_policy = jaunt_types::addr::DialPolicy::new(
            s.node_address_allow.as_deref().unwrap_or(""),
            listen.ip(),
        )
        .map_err(|m| invalid("node_address_allow", m))?;
        let peer_addr = match &s.peer_addr {
            Some(text) => {
                let (h, p) =
                    split_host_port(text, listen.port()).map_err(|m| invalid("peer_addr", m))?;
                Some(format!("{h}:{p}"))
            }
            None => None,
        };
        let diag_addr = match s.diag_addr.as_deref() {
            None | Some("") | Some("off") => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "diag_addr",
                    format!("{text:?} is not an address like 127.0.0.1:3000"),
                )
            })?),
        };
        let limits = ConnectionLimits {
            max_connections: s.max_connections.unwrap_or(Defaults::MAX_CONNECTIONS),
            max_connections_per_ip: s
                .max_connections_per_ip
                .unwrap_or(Defaults::MAX_CONNECTIONS_PER_IP),
            max_pending_per_ip: s.max_pending_per_ip.unwrap_or(Defaults::MAX_PENDING_PER_IP),
        };
        let log_level = log_level(&s, src)?;
        let log_format = match s.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("{other:?}: use text or json"),
                ));
            }
        };
        let node = if services.contains(&Service::Node) {
            Some(node_settings(
                &s,
                hostname,
                &public_addr,
                services.contains(&Service::Proxy),
                src,
            )?)
        } else {
            None
        };
        let data_dir = s
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(Defaults::DATA_DIR));
        let storage = Storage::resolve(s.storage.as_ref(), s.storage_uri.as_deref(), &data_dir)
            .map_err(|m| invalid("storage", m))?;
        let recordings = Recordings::resolve(s.recordings.as_ref(), &data_dir)
            .map_err(|m| invalid("recordings", m))?;
        Ok(Config {
            recordings,
            node,
            data_dir,
            storage,
            services,
            cluster_name,
            listen,
            public_addr,
            public_host,
            peer_addr,
            host_name: hostname.to_string(),
            diag_addr,
            tls_cert_file: s.tls_cert_file,
            tls_key_file: s.tls_key_file,
            second_factor,
            max_login_attempts,
            lockout_duration,
            node_offline_after,
            client_idle_timeout,
            shutdown_timeout,
            audit_retention,
            recording_retention,
            recording,
            raw_relay,
            dial_policy,
            limits,
            log_level,
            log_format,
        })
    }

    pub fn runs(&self, service: Service) -> bool {
        self.services.contains(&service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_an_operator_writes_them() {
        for (text, want) in [
            ("1048576", Ok(1 << 20)),
            ("500MiB", Ok(500 << 20)),
            ("10GiB", Ok(10 << 30)),
            ("10 GB", Ok(10 << 30)),
            ("2t", Ok(2 << 40)),
            ("64k", Ok(64 << 10)),
        ] {
            assert_eq!(parse_size(text), want, "{text}");
        }
        for bad in [
            "",
            "0",
            "ten",
            "5PB",
            "-1G",
            "99999999999999999999",
            "16777216TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    fn resolve(file: &str, flags: FileConfig) -> Result<Config, ConfigError> {
        let f = FileConfig::parse(file, "jaunt.yaml")?;
        Config::resolve(f, flags, "host1", "jaunt.yaml")
    }

    #[test]
    fn defaults() {
        let c = resolve("", FileConfig::default()).expect("defaults");
        assert_eq!(c.services, [Service::Auth, Service::Proxy]);
        assert_eq!(c.listen.to_string(), "0.0.0.0:3080");
        assert_eq!(c.public_addr, "host1:3080");
        assert_eq!(c.cluster_name, "host1");
        assert_eq!(c.second_factor, SecondFactor::Otp);
        assert_eq!(c.max_login_attempts, 5);
        assert_eq!(c.lockout_duration.as_secs(), 1800);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/jaunt"));
        assert_eq!(c.client_idle_timeout, None);
        for (text, secs) in [
            ("30m", Some(1800)),
            ("off", None),
            ("0", None),
            ("0s", None),
        ] {
            let file = format!("client_idle_timeout: '{text}'\n");
            let c = resolve(&file, FileConfig::default()).expect("idle timeout");
            assert_eq!(c.client_idle_timeout.map(|t| t.as_secs()), secs, "{text}");
        }
    }

    #[test]
    fn recordings_in_the_store_or_a_directory() {
        let dir = |file: &str| resolve(file, FileConfig::default()).expect(file).recordings;
        assert_eq!(dir(""), Recordings::Store);
        assert_eq!(dir("recordings: {type: store}\n"), Recordings::Store);
        assert_eq!(
            dir("recordings: {type: dir, path: /srv/jaunt/recordings}\n"),
            Recordings::Dir("/srv/jaunt/recordings".into())
        );
        // A relative path is under the data directory.
        assert_eq!(
            dir("data_dir: /var/lib/j\nrecordings:\n  type: dir\n  path: rec\n"),
            Recordings::Dir("/var/lib/j/rec".into())
        );
    }

    #[test]
    fn flags_override_file() {
        let file = "cluster_name: fromfile\npublic_addr: proxy.example.com\nsecond_factor: off\n";
        let flags = FileConfig {
            cluster_name: Some("example".into()),
            ..Default::default()
        };
        let c = resolve(file, flags).expect("resolve");
        assert_eq!(c.cluster_name, "example");
        assert_eq!(c.public_addr, "proxy.example.com:3080");
        assert_eq!(c.second_factor, SecondFactor::Off);
    }

    #[test]
    fn bad_configs_name_the_key() {
        let table = [
            (
                "listen: 0.0.0.0:3080\nlisten_addr: x\n",
                "unknown field `listen_addr`",
            ),
            ("max_login_attempts: many\n", "max_login_attempts"),
            ("max_login_attempts: many\n", "line 1"),
            ("lockout_duration: 3 weeks\n", "lockout_duration"),
            ("listen: nowhere\n", "listen"),
            ("public_addr: 'a b:1'\n", "public_addr"),
            ("public_addr: 'host:99999'\n", "invalid port"),
            ("second_factor: sms\n", "second_factor"),
            ("node_address_allow: 10.0.0.0/33\n", "node_address_allow"),
            ("client_idle_timeout: soon\n", "client_idle_timeout"),
            ("node_address_allow: 'intranet'\n", "not a network"),
            ("roles: auth,dns\n", "unknown service \"dns\""),
            (
                "recordings: {type: dir}\n",
                "recordings: type: dir needs a path",
            ),
            (
                "recordings: {type: s3, path: x}\n",
                "type \"s3\": use store or dir",
            ),
            ("recordings: {path: /srv/r}\n", "a path goes with type: dir"),
            (
                "recordings: {type: dir, dir: /srv/r}\n",
                "unknown field `dir`",
            ),
            ("roles: proxy\n", "same process"),
            ("roles: node\n", "needs --proxy"),
            ("roles: node\nproxy: p:1\nlabels: 'x'\n", "labels"),
            (
                "roles: node\nproxy: p:1\nssh_listen: '0.0.0.0:3022'\n",
                "advertise_addr",
            ),
            (
                "roles: node\nproxy: p:1\nssh_listen: 'nowhere'\n",
                "ssh_listen",
            ),
            ("roles: node\nproxy: p:1\nca_pin: abc\n", "ca_pin"),
            ("roles: node\nproxy: p:1\nnodename: 'a b'\n", "nodename"),
            ("cluster_name: 'a/b'\n", "cluster_name"),
            ("tls_cert_file: /x.pem\n", "tls_key_file"),
            ("log_level: loud\n", "log_level"),
            ("diag_addr: localhost\n", "diag_addr"),
            ("peer_addr: 'a b:1'\n", "peer_addr"),
            ("storage: {type: mongo}\n", "storage"),
            (
                "storage: {type: postgres, pool: 3}\n",
                "unknown field `pool`",
            ),
            ("storage_uri: 'mysql://db/j'\n", "storage"),
            ("data_dir: [\n", "jaunt.yaml"),
        ];
        for (text, want) in table {
            let err = resolve(text, FileConfig::default())
                .expect_err(text)
                .to_string();
            assert!(
                err.contains(want),
                "{text:?}: {err:?} should mention {want:?}"
            );
            assert!(err.starts_with("jaunt.yaml"), "{err}");
        }
    }
}
