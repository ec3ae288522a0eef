//! `jaunt`: the daemon. `jaunt start` runs the services its roles name;
//! `jaunt configure` prints a commented configuration file.

mod commands;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jaunt",
    version,
    about = "Jaunt: certificate-based SSH access. The cluster daemon."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the services named by --roles (auth and proxy).
    Start(commands::start::StartArgs),
    /// Print a commented configuration file with every key and its default.
    Configure(commands::configure::ConfigureArgs),
    /// Install Jaunt into the system: `jaunt install systemd`.
    #[command(subcommand)]
    Install(commands::install::InstallCommand),
    /// Join a host to the cluster: `jaunt join openssh` for a stock sshd.
    #[command(subcommand)]
    Join(commands::join::JoinCommand),
    /// The cluster's store: `jaunt storage copy` moves it to PostgreSQL.
    #[command(subcommand)]
    Storage(commands::storage::StorageCommand),
    /// Inside a session: who, where, and the session's ID.
    Status,
    /// Serve SFTP on stdin/stdout (the node runs this as the login user).
    #[command(hide = true)]
    SftpServer,
    /// Connect to HOST PORT and pass the socket on stdout (the node runs
    /// this as the login user for a port forward).
    #[command(hide = true)]
    ForwardConnect { host: String, port: u16 },
    /// Print the version.
    Version,
    /// Print shell completions: bash, zsh, fish, powershell or elvish.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff; the packages install it).
    #[command(hide = true)]
    Man,
}

/// Every setting as a flag; each is also a key of the config file.
#[derive(Args, Clone, Default)]
pub struct SettingsFlags {
    /// Where the database, admin socket and TLS files live [default: /var/lib/jaunt]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the cluster's state is kept: sqlite:[PATH] or postgres://... (several auth+proxy instances on one database) [default: sqlite in the data dir]
    #[arg(long, value_name = "URI")]
    storage_uri: Option<String>,
    /// Services to run, comma-separated: auth,proxy [default: auth,proxy]
    #[arg(long)]
    roles: Option<String>,
    /// The cluster's name [default: the public address's host]
    #[arg(long)]
    cluster_name: Option<String>,
    /// The proxy's listening address [default: 0.0.0.0:3080]
    #[arg(long)]
    listen: Option<String>,
    /// host:port clients use to reach the proxy [default: <hostname>:3080]
    #[arg(long)]
    public_addr: Option<String>,
    /// host:port where other auth+proxy instances reach this one [default: the listen address, or this host's name and the listen port]
    #[arg(long)]
    peer_addr: Option<String>,
    /// Serve /healthz and /readyz over plain HTTP here, e.g. 127.0.0.1:3000 [default: off]
    #[arg(long)]
    diag_addr: Option<String>,
    /// The proxy's certificate from your own CA (with --tls-key-file)
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    #[arg(long)]
    tls_key_file: Option<PathBuf>,
    /// Second factor at login: otp or off [default: otp]
    #[arg(long)]
    second_factor: Option<String>,
    /// Failed logins before an account locks [default: 5]
    #[arg(long)]
    max_login_attempts: Option<u32>,
    /// How long a locked account stays locked [default: 30m]
    #[arg(long)]
    lockout_duration: Option<String>,
    /// A node silent this long is offline [default: 60s]
    #[arg(long)]
    node_offline_after: Option<String>,
    /// Session recording: node, node-sync or off [default: node]
    #[arg(long)]
    recording: Option<String>,
    /// How the proxy relays SSH: raw or tls [default: raw]
    #[arg(long)]
    ssh_relay: Option<String>,
    /// Nodes close SSH connections idle this long, e.g. 30m [default: off]
    #[arg(long)]
    client_idle_timeout: Option<String>,
    /// Networks the proxy may dial for direct-mode nodes: cidr,cidr
    /// [default: all but loopback, link-local, multicast]
    #[arg(long)]
    node_address_allow: Option<String>,
    /// Connections the proxy holds in all; 0: no limit [default: 50000]
    #[arg(long)]
    max_connections: Option<usize>,
    /// Connections from one client address; 0: no limit [default: 2000]
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Connections from one address still in their handshake [default: 64]
    #[arg(long)]
    max_pending_per_ip: Option<usize>,
    /// Node: the join token from 'jctl tokens add' (first start only)
    #[arg(long)]
    token: Option<String>,
    /// Node: the proxy to join, host:port
    #[arg(long)]
    proxy: Option<String>,
    /// Node: the cluster CA pin (sha256:...)
    #[arg(long)]
    ca_pin: Option<String>,
    /// Node: its name [default: the host name]
    #[arg(long)]
    nodename: Option<String>,
    /// Node: labels, k=v,k=v
    #[arg(long)]
    labels: Option<String>,
    /// Node: serve SSH here (direct mode) instead of through a reverse tunnel
    #[arg(long)]
    ssh_listen: Option<String>,
    /// Node: the host:port the proxy dials [default: --ssh-listen]
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Node: the most disk recordings waiting for upload may take, e.g. 500MiB [default: 10GiB]
    #[arg(long)]
    recording_disk_limit: Option<String>,
    /// error, warn, info, debug or trace [default: info]
    #[arg(long)]
    log_level: Option<String>,
    /// text, or json (one object a line, for log shippers) [default: text]
    #[arg(long)]
    log_format: Option<String>,
    /// How long SIGTERM waits for running sessions, e.g. 30s [default: 30s]
    #[arg(long)]
    shutdown_timeout: Option<String>,
    /// How long audit events are kept, e.g. 365d; off: for ever [default: 365d]
    #[arg(long)]
    audit_retention: Option<String>,
    /// How long session recordings are kept, e.g. 90d; off: for ever [default: 90d]
    #[arg(long)]
    recording_retention: Option<String>,
}

impl SettingsFlags {
    fn to_file_config(&self) -> jaunt_config::FileConfig {
        jaunt_config::FileConfig {
            data_dir: self.data_dir.clone(),
            storage: None,
            storage_uri: self.storage_uri.clone(),
            roles: self.roles.clone(),
            cluster_name: self.cluster_name.clone(),
            listen: self.listen.clone(),
            public_addr: self.public_addr.clone(),
            peer_addr: self.peer_addr.clone(),
            diag_addr: self.diag_addr.clone(),
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            second_factor: self.second_factor.clone(),
            max_login_attempts: self.max_login_attempts,
            lockout_duration: self.lockout_duration.clone(),
            node_offline_after: self.node_offline_after.clone(),
            recording: self.recording.clone(),
            recordings: None,
            ssh_relay: self.ssh_relay.clone(),
            client_idle_timeout: self.client_idle_timeout.clone(),
            node_address_allow: self.node_address_allow.clone(),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_pending_per_ip: self.max_pending_per_ip,
            log_level: self.log_level.clone(),
            log_format: self.log_format.clone(),
            shutdown_timeout: self.shutdown_timeout.clone(),
            audit_retention: self.audit_retention.clone(),
            recording_retention: self.recording_retention.clone(),
            token: self.token.clone(),
            proxy: self.proxy.clone(),
            ca_pin: self.ca_pin.clone(),
            nodename: self.nodename.clone(),
            labels: self.labels.clone(),
            ssh_listen: self.ssh_listen.clone(),
            advertise_addr: self.advertise_addr.clone(),
            recording_disk_limit: self.recording_disk_limit.clone(),
        }
    }
}

/// This machine's host name, for the default public address.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    jaunt_cli::run(|| match cli.command {
        Command::Start(args) => commands::start::run(args),
        Command::Configure(args) => commands::configure::run(args),
        Command::Install(cmd) => commands::install::run(cmd),
        Command::Join(cmd) => commands::join::run(cmd),
        Command::Storage(cmd) => commands::storage::run(cmd),
        Command::Status => commands::status::run(),
        Command::SftpServer => {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(jaunt_node::sftp::serve_stdio());
            Ok(())
        }
        Command::ForwardConnect { host, port } => {
            Ok(jaunt_node::port_forward::helper_main(&host, port)?)
        }
        Command::Completion { shell } => jaunt_cli::print_completions::<Cli>(shell, "jaunt"),
        Command::Man => jaunt_cli::print_man::<Cli>(),
        Command::Version => {
            jaunt_cli::say!("jaunt {}", env!("CARGO_PKG_VERSION"))?;
            Ok(())
        }
    })
}
