//! `jsh status`: the profiles on this machine and their certificates.

use clap::Args;
use jaunt_cli::say;
use jaunt_client::ClientError;
use jaunt_client::home::Home;
use jaunt_client::login::{cert_state, relogin_command};
use jaunt_client::profile::Profile;
use jaunt_sys::clock::now;
use jaunt_types::timefmt::{format_remaining, format_unix};

#[derive(Args)]
pub struct StatusArgs {}

/// Prints one profile's block; returns whether its certificate is valid.
pub fn print_profile(home: &Home, profile: &Profile, current: bool) -> anyhow::Result<bool> {
    let state = cert_state(home, profile)?;
    let left = state.valid_before - now();
    let validity = if left > 0 {
        format!(
            "{} [valid for {}]",
            format_unix(state.valid_before),
            format_remaining(left)
        )
    } else {
        format!("{} [EXPIRED]", format_unix(state.valid_before))
    };
    let marker = if current { ">" } else { " " };
    say!(
        "{marker} Profile URL:        https://{}",
        profile.web_proxy_addr
    )?;
    say!("  Logged in as:       {}", profile.user)?;
    say!("  Cluster:            {}", profile.cluster)?;
    say!("  Roles:              {}", profile.roles.join(", "))?;
    let logins: Vec<&String> = state
        .principals
        .iter()
        .filter(|p| !p.starts_with('-'))
        .collect();
    say!(
        "  Logins:             {}",
        logins
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    say!("  Valid until:        {validity}")?;
    say!("  Extensions:         {}", state.extensions.join(", "))?;
    say!()?;
    Ok(left > 0)
}

pub fn run(_args: StatusArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let Some(current) = home.current_profile()? else {
        return Err(ClientError::NoProxy.into());
    };
    let valid = print_profile(&home, &current, true)?;
    let others: Vec<Profile> = home
        .profiles()?
        .into_iter()
        .filter(|p| p.name() != current.name())
        .collect();
    if !others.is_empty() {
        say!("Other profiles:")?;
        for p in &others {
            print_profile(&home, p, false)?;
        }
    }
    if !valid {
        anyhow::bail!(
            "your certificate for {}@{} has expired; run '{}' to log in again",
            current.user,
            current.web_proxy_addr,
            relogin_command(&current)
        );
    }
    Ok(())
}
