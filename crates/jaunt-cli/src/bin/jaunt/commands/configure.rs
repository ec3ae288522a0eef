//! `jaunt configure`: a commented config file, flags filled in.

use crate::SettingsFlags;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct ConfigureArgs {
    #[command(flatten)]
    settings: SettingsFlags,
    /// Write to this file instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub fn run(args: ConfigureArgs) -> anyhow::Result<()> {
    let text =
        jaunt_config::configure_template(&args.settings.to_file_config(), &crate::hostname());
    match args.output {
        Some(path) => {
            std::fs::write(&path, &text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            jaunt_cli::say!(
                "Wrote {}. Start with: jaunt start --config={}",
                path.display(),
                path.display()
            )?;
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}
