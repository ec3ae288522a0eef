//! `jctl auth export|sign|rotate`: the cluster's CA keys in the forms
//! other software reads, host certificates for agentless hosts set up by
//! configuration management rather than `jaunt join openssh`, and
//! rotating the cluster's CAs.

use crate::admin::{AdminClient, unexpected};
use anyhow::{Context, anyhow};
use clap::{Subcommand, ValueEnum};
use jaunt_ca::ssh_key::{Algorithm, LineEnding, PrivateKey};
use jaunt_sys::fs::{Mode, write_atomic};
use jaunt_types::admin::{AdminRequest, AdminResponse, CaKind};
use jaunt_types::rotation::{CaType, Phase, RotateRequest};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Print a CA's public keys: user, host, openssh-user-ca (the lines for
    /// sshd's TrustedUserCAKeys) or tls.
    Export {
        #[arg(long = "type", value_enum)]
        kind: ExportKind,
    },
    /// Make a host key and its certificate for an agentless host.
    Sign {
        /// The host's names and addresses, comma-separated; the first is
        /// its node name
        #[arg(long, value_delimiter = ',', required = true)]
        host: Vec<String>,
        /// openssh: PREFIX (private key), PREFIX.pub, PREFIX-cert.pub
        #[arg(long, value_enum, default_value = "openssh")]
        format: SignFormat,
        #[arg(long)]
        out: PathBuf,
        /// How long the certificate lasts, e.g. 8760h [default: a year]
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Rotate a CA: without --manual, an automatic rotation through every
    /// phase over the grace period; with it, move to --phase.
    Rotate {
        #[arg(long = "type", value_enum)]
        kind: RotateKind,
        /// How long certificates from the old key stay trusted, e.g. 30h
        /// (automatic rotations move a third of it apart) [default: 30h]
        #[arg(long)]
        grace_period: Option<jaunt_types::Ttl>,
        /// Move one phase at a time, with --phase
        #[arg(long, requires = "phase")]
        manual: bool,
        /// init, update_clients, update_servers, standby or rollback
        #[arg(long, requires = "manual")]
        phase: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RotateKind {
    User,
    Host,
    Tls,
    /// The OpenSSH CA that agentless hosts' sshd trusts
    Openssh,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportKind {
    User,
    Host,
    OpensshUserCa,
    Tls,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SignFormat {
    Openssh,
}

pub fn run(admin: &AdminClient, cmd: AuthCommand) -> anyhow::Result<()> {
    match cmd {
        AuthCommand::Export { kind } => {
            let kind = match kind {
                ExportKind::User => CaKind::User,
                ExportKind::Host => CaKind::Host,
                ExportKind::OpensshUserCa => CaKind::OpensshUserCa,
                ExportKind::Tls => CaKind::Tls,
            };
            let text = text(admin.call(&AdminRequest::CaExport { kind })?)?;
            jaunt_cli::say!("{text}")?;
            Ok(())
        }
        AuthCommand::Sign {
            host,
            format: SignFormat::Openssh,
            out,
            ttl,
        } => sign(admin, host, out, ttl),
        AuthCommand::Rotate {
            kind,
            grace_period,
            manual: _,
            phase,
        } => {
            let request = RotateRequest {
                ca: match kind {
                    RotateKind::User => CaType::User,
                    RotateKind::Host => CaType::Host,
                    RotateKind::Tls => CaType::Tls,
                    RotateKind::Openssh => CaType::Openssh,
                },
                grace_period_secs: grace_period.map(|g| g.as_secs()),
                manual_phase: phase
                    .map(|p| p.parse::<Phase>().map_err(|e| anyhow!("--phase: {e}")))
                    .transpose()?,
            };
            match admin.call(&AdminRequest::Rotate { request })? {
                AdminResponse::Done { message } => jaunt_cli::say!("{message}")?,
                other => return Err(unexpected(other)),
            }
            Ok(())
        }
    }
}

fn sign(
    admin: &AdminClient,
    host: Vec<String>,
    out: PathBuf,
    ttl: Option<String>,
) -> anyhow::Result<()> {
    let ttl = ttl
        .map(|t| t.parse().map_err(|e| anyhow!("--ttl: {e}")))
        .transpose()?;
    let mut rng = jaunt_ca::ssh_key::rand_core::UnwrapErr(jaunt_ca::ssh_key::getrandom::SysRng);
    let key = PrivateKey::random(&mut rng, Algorithm::Ed25519)?;
    let public_key = key.public_key().to_openssh()?;
    let cert = text(admin.call(&AdminRequest::HostSign {
        principals: host,
        public_key: public_key.clone(),
        ttl,
    })?)?;
    let with = |suffix: &str| {
        let mut p = out.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    };
    write_atomic(
        &out,
        key.to_openssh(LineEnding::LF)?.as_bytes(),
        Mode::Private,
    )
    .with_context(|| format!("writing {}", out.display()))?;
    write_atomic(
        &with(".pub"),
        format!("{public_key}\n").as_bytes(),
        Mode::Public,
    )?;
    write_atomic(
        &with("-cert.pub"),
        format!("{}\n", cert.trim()).as_bytes(),
        Mode::Public,
    )?;
    jaunt_cli::say!(
        "Wrote {0} (host key), {0}.pub and {0}-cert.pub (its certificate).\nIn sshd_config: HostKey {0} and HostCertificate {0}-cert.pub",
        out.display()
    )?;
    Ok(())
}

fn text(resp: AdminResponse) -> anyhow::Result<String> {
    match resp {
        AdminResponse::Text { text } => Ok(text),
        AdminResponse::Error { message } => Err(anyhow!(message)),
        other => Err(unexpected(other)),
    }
}
