//! `jsh`: the user's client. Sign up, log in once, and hold short-lived
//! certificates in ~/.jsh for every node of the cluster.

mod commands;
mod prompt;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jsh",
    version,
    about = "Jaunt client: log in and reach your cluster's servers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set your password (and second factor) with a token from your administrator.
    Signup(commands::signup::SignupArgs),
    /// Log in to a cluster and get certificates.
    Login(commands::login::LoginArgs),
    /// Show who you are logged in as, and until when.
    Status(commands::status::StatusArgs),
    /// Remove your keys and certificates.
    Logout(commands::logout::LogoutArgs),
    /// Open a shell or run a command on a node.
    Ssh(commands::ssh::SshArgs),
    /// Copy files to and from a node (SFTP): [login@]host:path.
    Scp(commands::scp::ScpArgs),
    /// List the nodes you may reach.
    Ls(commands::ls::LsArgs),
    /// List the cluster you logged in to and its leaf clusters.
    Clusters(commands::clusters::ClustersArgs),
    /// Relay connections for other clients (PuTTY, OpenSSH).
    #[command(subcommand)]
    Proxy(commands::proxy::ProxyCommand),
    /// Add PuTTY saved sessions (and host CA trust) for nodes.
    Puttyconfig(commands::puttyconfig::PuttyconfigArgs),
    /// Print an OpenSSH client configuration for the cluster's nodes.
    Config(commands::config::ConfigArgs),
    /// Sessions running now.
    #[command(subcommand)]
    Sessions(commands::sessions::SessionsCommand),
    /// Session recordings.
    #[command(subcommand)]
    Recordings(commands::recordings::RecordingsCommand),
    /// Play a session's recording.
    Play(commands::recordings::PlayArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    jaunt_cli::run(|| match cli.command {
        Command::Signup(a) => commands::signup::run(a),
        Command::Login(a) => commands::login::run(a),
        Command::Status(a) => commands::status::run(a),
        Command::Logout(a) => commands::logout::run(a),
        Command::Ls(a) => commands::ls::run(a),
        Command::Clusters(a) => commands::clusters::run(a),
        Command::Ssh(a) => commands::ssh::run(a),
        Command::Scp(a) => commands::scp::run(a),
        Command::Proxy(c) => commands::proxy::run(c),
        Command::Config(a) => commands::config::run(a),
        Command::Puttyconfig(a) => commands::puttyconfig::run(a),
        Command::Sessions(c) => commands::sessions::run(c),
        Command::Recordings(c) => commands::recordings::run(c),
        Command::Play(a) => commands::recordings::play(a),
        Command::Completion { shell } => jaunt_cli::print_completions::<Cli>(shell, "jsh"),
        Command::Man => jaunt_cli::print_man::<Cli>(),
        Command::Version => {
            jaunt_cli::say!("jsh {}", env!("CARGO_PKG_VERSION"))?;
            Ok(())
        }
    })
}

/// The logged-in profile and its client, and the cluster a command is for:
/// `--cluster` (a leaf) or the profile's own.
pub fn logged_in(
    cluster: Option<&str>,
) -> anyhow::Result<(
    jaunt_client::home::Home,
    jaunt_client::profile::Profile,
    jaunt_transport::ApiClient,
    String,
)> {
    let home = jaunt_client::home::Home::from_env()?;
    let (profile, client) = jaunt_client::login::logged_in_client(&home, None)?;
    let cluster = cluster.map_or_else(|| profile.cluster.clone(), str::to_string);
    Ok((home, profile, client, cluster))
}

/// A single-threaded runtime for one command's network calls.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Flags for how to trust the proxy, shared by signup and login.
#[derive(clap::Args, Clone)]
pub struct TrustFlags {
    /// The cluster CA's pin (sha256:...), printed by 'jctl status'.
    #[arg(long, conflicts_with = "insecure")]
    ca_pin: Option<String>,
    /// Do not check the proxy's certificate (test clusters only).
    #[arg(long)]
    insecure: bool,
}

impl TrustFlags {
    /// The trust these flags give for `proxy` (with what an earlier login
    /// saved), warning when it is none, and a client without a certificate.
    pub fn client(
        &self,
        home: &jaunt_client::home::Home,
        proxy: &str,
    ) -> anyhow::Result<(jaunt_transport::Trust, jaunt_transport::ApiClient)> {
        let trust =
            jaunt_client::login::trust_for(home, proxy, self.ca_pin.clone(), self.insecure)?;
        self.warn_if_insecure();
        let client = jaunt_transport::ApiClient::new(proxy, &trust, None)?;
        Ok((trust, client))
    }

    pub fn warn_if_insecure(&self) {
        if self.insecure {
            eprintln!(
                "WARNING: --insecure: the proxy's certificate is not checked; anyone on the network path could impersonate the cluster."
            );
        }
    }
}
