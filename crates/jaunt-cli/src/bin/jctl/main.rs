//! `jctl`: the administrator's tool. It talks to the auth service over the
//! admin socket in the data directory (on the auth host, as the user the
//! daemon runs as), or with `--proxy` through the proxy's API as the user
//! `jsh login` made, whose roles must allow each request.

mod admin;
mod commands;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jctl",
    version,
    about = "Jaunt cluster administration (users, roles, tokens, nodes)."
)]
struct Cli {
    /// The auth service's data directory.
    #[arg(
        long,
        env = "JAUNT_DATA_DIR",
        default_value = "/var/lib/jaunt",
        global = true
    )]
    data_dir: PathBuf,
    /// Administer through this proxy (host:port) as the user 'jsh login
    /// --proxy' logged in, instead of the local admin socket; that user's
    /// roles must allow each request.
    #[arg(long, env = "JCTL_PROXY", global = true)]
    proxy: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage users.
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// Manage join tokens.
    #[command(subcommand)]
    Tokens(commands::tokens::TokensCommand),
    /// List or remove nodes.
    #[command(subcommand)]
    Nodes(commands::nodes::NodesCommand),
    /// Lock a user, role, node or login: refuses new access and ends the
    /// matching live sessions within 2 seconds ('jctl rm lock/ID' lifts it).
    Lock(commands::locks::LockArgs),
    /// Create resources (roles) from a YAML file.
    Create(commands::resources::CreateArgs),
    /// Show resources: roles, users, tokens, locks, or role/NAME.
    Get(commands::resources::GetArgs),
    /// Remove a resource: role/NAME, user/NAME, token/TOKEN or lock/ID.
    Rm(commands::resources::RmArgs),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// The cluster's CAs: export their keys, sign agentless hosts' keys.
    #[command(subcommand)]
    Auth(commands::auth::AuthCommand),
    /// Cluster name, CA fingerprints and the CA pin.
    Status(commands::status::StatusArgs),
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
    let admin = match cli.proxy {
        Some(proxy) => admin::AdminClient::Remote { proxy },
        None => admin::AdminClient::Socket {
            data_dir: cli.data_dir,
        },
    };
    jaunt_cli::run(|| match cli.command {
        Command::Users(c) => commands::users::run(&admin, c),
        Command::Tokens(c) => commands::tokens::run(&admin, c),
        Command::Nodes(c) => commands::nodes::run(&admin, c),
        Command::Lock(a) => commands::locks::lock(&admin, a),
        Command::Create(a) => commands::resources::create(&admin, a),
        Command::Get(a) => commands::resources::get(&admin, a),
        Command::Rm(a) => commands::resources::rm(&admin, a),
        Command::Status(a) => commands::status::run(&admin, a),
        Command::Completion { shell } => jaunt_cli::print_completions::<Cli>(shell, "jctl"),
        Command::Man => jaunt_cli::print_man::<Cli>(),
        Command::Audit(c) => commands::audit::run(&admin, c),
        Command::Auth(c) => commands::auth::run(&admin, c),
    })
}
