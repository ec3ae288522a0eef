//! `jsh login`: password (+ OTP) for short-lived certificates.

use crate::TrustFlags;
use crate::prompt::Prompter;
use clap::Args;
use jaunt_client::ClientError;
use jaunt_client::home::Home;
use jaunt_client::login::LoginParams;
use jaunt_client::profile::normalize_proxy;
use jaunt_types::api::{PATH_PING, PingResponse, SecondFactor};
use jaunt_types::{Secret, Ttl};

#[derive(Args)]
pub struct LoginArgs {
    /// The proxy, host[:port] (port 3080 by default) [default: the current profile's]
    #[arg(long)]
    proxy: Option<String>,
    /// The Jaunt user [default: the profile's user, else your OS user name]
    #[arg(long)]
    user: Option<String>,
    /// How long the certificates should last (capped by your roles) [default: your roles' maximum]
    #[arg(long)]
    ttl: Option<Ttl>,
    /// Read the password (then the OTP code, unless --otp) as lines from stdin.
    #[arg(long)]
    password_stdin: bool,
    /// The one-time code from your authenticator app.
    #[arg(long)]
    otp: Option<String>,
    #[command(flatten)]
    trust: TrustFlags,
}

pub fn os_user() -> Option<String> {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
}

pub fn run(args: LoginArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let current = home.current_profile()?;
    let proxy = match (&args.proxy, &current) {
        (Some(p), _) => normalize_proxy(p).map_err(anyhow::Error::msg)?,
        (None, Some(profile)) => profile.web_proxy_addr.clone(),
        (None, None) => return Err(ClientError::NoProxy.into()),
    };
    let profile_user = home
        .load_profile(&jaunt_client::profile::proxy_host(&proxy))?
        .map(|p| p.user);
    let user = args
        .user
        .clone()
        .or(profile_user)
        .or_else(os_user)
        .ok_or_else(|| anyhow::anyhow!("cannot tell who you are: pass --user"))?;
    let (trust, client) = args.trust.client(&home, &proxy)?;
    let rt = crate::runtime()?;
    let ping: PingResponse = rt.block_on(client.get(PATH_PING))?;
    let mut prompt = Prompter::new(args.password_stdin)?;
    let password = prompt.secret(
        &format!("Enter password for Jaunt user {user}: "),
        "password",
    )?;
    let otp = match (ping.second_factor, args.otp.clone()) {
        (SecondFactor::Off, _) => None,
        (SecondFactor::Otp, Some(code)) => Some(Secret::new(code)),
        (SecondFactor::Otp, None) => Some(Secret::new(prompt.line(
            "Enter an OTP code from your authenticator app: ",
            "one-time code",
        )?)),
    };
    let profile = rt.block_on(jaunt_client::login::login(
        &home,
        &client,
        LoginParams {
            proxy,
            user,
            password,
            otp,
            ttl: args.ttl,
            ca_pin: trust.ca_pin.clone(),
        },
    ))?;
    // The leaves' host CAs too, so OpenSSH and PuTTY trust their nodes
    // (best effort: a proxy without leaves, or an older one, has none).
    if let Ok((_, client)) =
        jaunt_client::login::logged_in_client(&home, Some(&profile.web_proxy_addr))
        && let Ok(clusters) = rt.block_on(jaunt_client::clusters::fetch(&client))
    {
        jaunt_client::clusters::remember(&home, &profile, &clusters)?;
    }
    crate::commands::status::print_profile(&home, &profile, true)?;
    Ok(())
}
