//! `jsh logout`: delete keys and certificates (one proxy, or all).

use clap::Args;
use jaunt_cli::say;
use jaunt_client::home::Home;
use jaunt_client::profile::{normalize_proxy, proxy_host};

#[derive(Args)]
pub struct LogoutArgs {
    /// Log out of this proxy only [default: all proxies]
    #[arg(long, conflicts_with = "all")]
    proxy: Option<String>,
    /// Log out of every proxy (what no --proxy means; said outright for
    /// scripts and the reference product's users).
    #[arg(long)]
    all: bool,
}

pub fn run(args: LogoutArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    match args.proxy {
        Some(p) => {
            let addr = normalize_proxy(&p).map_err(anyhow::Error::msg)?;
            let Some(profile) = home.load_profile(&proxy_host(&addr))? else {
                anyhow::bail!("you are not logged in to {addr}");
            };
            home.remove_profile(&profile)?;
            say!(
                "Logged out {} from {}.",
                profile.user,
                profile.web_proxy_addr
            )?;
        }
        None => {
            let profiles = home.profiles()?;
            if profiles.is_empty() {
                say!("You are not logged in.")?;
                return Ok(());
            }
            for p in &profiles {
                home.remove_profile(p)?;
            }
            say!("Logged out all users from all proxies.")?;
        }
    }
    Ok(())
}
