//! `jaunt join openssh`: puts a host that runs stock sshd behind the
//! cluster, once (nothing stays running). It joins with a node token as
//! an agentless node, writes the host key, its certificate and the
//! cluster's OpenSSH CA key under `<data-dir>/openssh/`, a drop-in file
//! naming them, and an `Include` of that file at the top of sshd's config;
//! each file sshd reads is checked with sshd before it replaces anything,
//! so a config sshd rejects leaves the original as it was.

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand};
use jaunt_ca::ssh_key::{Algorithm, LineEnding, PrivateKey};
use jaunt_config::sshd::{DropIn, drop_in, with_include};
use jaunt_sys::fs::{Mode, write_atomic};
use jaunt_transport::{ApiClient, Trust};
use jaunt_types::Secret;
use jaunt_types::api::{NodeJoinRequest, NodeJoinResponse, NodeSubKind, PATH_NODE_JOIN};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum JoinCommand {
    /// Join this host's stock sshd as an agentless node, reached through the proxy.
    Openssh(OpensshArgs),
}

#[derive(Args)]
pub struct OpensshArgs {
    /// The proxy, host:port
    #[arg(long)]
    proxy: String,
    /// A node token from 'jctl tokens add'
    #[arg(long)]
    token: String,
    /// The cluster CA pin (sha256:...), as 'jctl tokens add' prints it
    #[arg(long)]
    ca_pin: String,
    /// host:port the proxy dials for this sshd [default: <host name>:22]
    #[arg(long)]
    address: Option<String>,
    /// Labels, k=v,k=v
    #[arg(long, default_value = "")]
    labels: String,
    /// The node's name [default: the host name]
    #[arg(long)]
    nodename: Option<String>,
    /// More names for the host certificate, comma-separated
    #[arg(long, value_delimiter = ',')]
    additional_principals: Vec<String>,
    /// sshd's config file
    #[arg(long, default_value = "/etc/ssh/sshd_config")]
    openssh_config: PathBuf,
    /// Where the host key, certificate and CA key are kept
    #[arg(long, default_value = "/var/lib/jaunt")]
    data_dir: PathBuf,
    /// Restart sshd afterwards
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    restart_sshd: bool,
    /// Checks a config file (its path is appended)
    #[arg(long, default_value = "sshd -t -f")]
    sshd_check_command: String,
    /// Restarts sshd
    #[arg(long, default_value = "systemctl restart ssh")]
    sshd_restart_command: String,
}

pub fn run(cmd: JoinCommand) -> anyhow::Result<()> {
    let JoinCommand::Openssh(args) = cmd;
    let nodename = args.nodename.clone().unwrap_or_else(crate::hostname);
    let address =
        jaunt_types::addr::with_default_port(args.address.as_deref().unwrap_or(&nodename), 22)
            .map_err(|e| anyhow!("--address: {e}"))?;
    let labels = jaunt_config::parse_labels(&args.labels).map_err(|e| anyhow!("--labels: {e}"))?;
    let dir = args.data_dir.join("openssh");
    jaunt_sys::fs::ensure_private_dir(&dir)?;
    let files = Files::in_dir(&dir);
    let host_key = host_key(&files.host_key)?;
    let request = NodeJoinRequest {
        token: Secret::new(args.token.clone()),
        name: nodename.clone(),
        labels,
        addr: Some(address.clone()),
        host_public_key: host_key.public_key().to_openssh()?,
        tls_csr_pem: String::new(),
        sub_kind: Some(NodeSubKind::Openssh),
        additional_principals: args.additional_principals.clone(),
    };
    let joined = join(&args, &request)?;
    // Every key the cluster trusts now: two while its OpenSSH CA rotates.
    if joined.openssh_ca_keys.is_empty() {
        anyhow::bail!("the auth service sent no OpenSSH CA key; is it older than this jaunt?");
    }
    let ca_lines: String = joined
        .openssh_ca_keys
        .iter()
        .map(|k| format!("{}\n", k.trim()))
        .collect();
    write_atomic(
        &files.host_cert,
        format!("{}\n", joined.host_cert.trim()).as_bytes(),
        Mode::Public,
    )?;
    write_atomic(&files.ca, ca_lines.as_bytes(), Mode::Public)?;
    let checker = Command::parse(&args.sshd_check_command, "--sshd-check-command")?;
    install_drop_in(&files, &checker)?;
    let included = include(&args.openssh_config, &files.drop_in, &checker)?;
    if args.restart_sshd {
        Command::parse(&args.sshd_restart_command, "--sshd-restart-command")?
            .run(None)
            .context("restarting sshd")?;
    }
    jaunt_cli::say!(
        "Joined {nodename} ({}) to cluster {} as an OpenSSH node at {address}.",
        joined.uuid,
        joined.cluster_name
    )?;
    jaunt_cli::say!(
        "Files: {}\nsshd_config: {}",
        dir.display(),
        match included {
            true => format!(
                "added 'Include {}' at the top of {}",
                files.drop_in.display(),
                args.openssh_config.display()
            ),
            false => format!(
                "{} includes {} already",
                args.openssh_config.display(),
                files.drop_in.display()
            ),
        }
    )?;
    if !args.restart_sshd {
        jaunt_cli::say!("Restart sshd for the changes to take effect.")?;
    }
    Ok(())
}

fn join(args: &OpensshArgs, request: &NodeJoinRequest) -> anyhow::Result<NodeJoinResponse> {
    let trust = Trust {
        ca_pin: Some(args.ca_pin.clone()),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let api = ApiClient::new(&args.proxy, &trust, None)?;
        let joined: NodeJoinResponse =
            api.post(PATH_NODE_JOIN, request).await.context("joining")?;
        Ok(joined)
    })
}

/// The files under `<data-dir>/openssh/`.
struct Files {
    host_key: PathBuf,
    host_cert: PathBuf,
    ca: PathBuf,
    drop_in: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Self {
        Files {
            host_key: dir.join("ssh_host_jaunt_ed25519_key"),
            host_cert: dir.join("ssh_host_jaunt_ed25519_key-cert.pub"),
            ca: dir.join("jaunt_openssh_user_ca.pub"),
            drop_in: dir.join("sshd_config.jaunt"),
        }
    }
}

/// The host key made at the first join and kept: a second run renews its
/// certificate only.
fn host_key(path: &Path) -> anyhow::Result<PrivateKey> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return PrivateKey::from_openssh(&text).with_context(|| format!("{}", path.display()));
    }
    let mut rng = jaunt_ca::ssh_key::rand_core::UnwrapErr(jaunt_ca::ssh_key::getrandom::SysRng);
    let key = PrivateKey::random(&mut rng, Algorithm::Ed25519)?;
    write_atomic(
        path,
        key.to_openssh(LineEnding::LF)?.as_bytes(),
        Mode::Private,
    )?;
    Ok(key)
}

/// The drop-in, written beside its place, checked by sshd, then moved in.
fn install_drop_in(files: &Files, checker: &Command) -> anyhow::Result<()> {
    let text = drop_in(&DropIn {
        trusted_user_ca_keys: &files.ca,
        host_key: &files.host_key,
        host_certificate: &files.host_cert,
    });
    let candidate = files.drop_in.with_extension("jaunt.new");
    write_atomic(&candidate, text.as_bytes(), Mode::Public)?;
    if let Err(e) = checker.run(Some(&candidate)) {
        let _ = std::fs::remove_file(&candidate);
        bail!("sshd rejected the drop-in file; nothing was changed: {e}");
    }
    std::fs::rename(&candidate, &files.drop_in)
        .with_context(|| format!("moving {} into place", files.drop_in.display()))
}

/// Adds the `Include` to sshd's config (once), checking the whole new
/// config before it replaces the old; whether it was added.
fn include(config: &Path, drop_in: &Path, checker: &Command) -> anyhow::Result<bool> {
    let original = std::fs::read_to_string(config)
        .with_context(|| format!("reading sshd's config {}", config.display()))?;
    let Some(updated) = with_include(&original, drop_in) else {
        return Ok(false);
    };
    let candidate = config.with_extension("jaunt-new");
    std::fs::write(&candidate, updated)
        .with_context(|| format!("writing {}", candidate.display()))?;
    if let Ok(meta) = std::fs::metadata(config) {
        let _ = std::fs::set_permissions(&candidate, meta.permissions());
    }
    if let Err(e) = checker.run(Some(&candidate)) {
        let _ = std::fs::remove_file(&candidate);
        bail!(
            "sshd rejected {} with the Include added; it was left as it was: {e}",
            config.display()
        );
    }
    std::fs::rename(&candidate, config)
        .with_context(|| format!("replacing {}", config.display()))?;
    Ok(true)
}

/// A command given as one string: a program and its arguments, split on
/// white space.
struct Command {
    program: String,
    args: Vec<String>,
    flag: &'static str,
}

impl Command {
    fn parse(text: &str, flag: &'static str) -> anyhow::Result<Self> {
        let mut words = text.split_whitespace().map(str::to_string);
        let program = words.next().ok_or_else(|| anyhow!("{flag} is empty"))?;
        Ok(Command {
            program,
            args: words.collect(),
            flag,
        })
    }

    /// Runs it (with `path` appended); its output is the error's text.
    fn run(&self, path: Option<&Path>) -> anyhow::Result<()> {
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args);
        if let Some(p) = path {
            cmd.arg(p);
        }
        let out = cmd
            .output()
            .with_context(|| format!("running {} ({})", self.program, self.flag))?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let said = match said.is_empty() {
            true => String::from_utf8_lossy(&out.stdout).trim().to_string(),
            false => said,
        };
        bail!("{} said ({}): {said}", self.program, out.status)
    }
}
