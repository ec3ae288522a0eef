//! `jaunt install systemd`: the service unit, printed or written, for
//! installs without the package.

use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum InstallCommand {
    /// Print (or write) a systemd unit that runs `jaunt start`.
    Systemd {
        /// The config file the service starts with.
        #[arg(long, default_value = "/etc/jaunt/jaunt.yaml")]
        config: PathBuf,
        /// The services it runs (a node's unit cannot be hardened as far).
        #[arg(long, default_value = "auth,proxy")]
        roles: String,
        /// The jaunt binary it runs [default: this one]
        #[arg(long)]
        exe: Option<PathBuf>,
        /// Write the unit here instead of printing it.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

pub fn run(cmd: InstallCommand) -> anyhow::Result<()> {
    let InstallCommand::Systemd {
        config,
        roles,
        exe,
        output,
    } = cmd;
    let exe = match exe {
        Some(exe) => exe,
        None => std::env::current_exe()?,
    };
    let runs_node = roles.split(',').any(|r| r.trim() == "node");
    let unit = jaunt_config::systemd::unit(
        &exe.display().to_string(),
        &config.display().to_string(),
        runs_node,
    );
    match output {
        Some(path) => {
            std::fs::write(&path, &unit).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            jaunt_cli::say!(
                "Wrote {}. Then: systemctl daemon-reload && systemctl enable --now {}",
                path.display(),
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "jaunt.service".into())
            )?;
        }
        None => std::io::stdout().write_all(unit.as_bytes())?,
    }
    Ok(())
}
