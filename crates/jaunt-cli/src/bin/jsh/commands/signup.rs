//! `jsh signup`: redeem a signup token, set a password, enrol TOTP.

use crate::TrustFlags;
use crate::prompt::Prompter;
use clap::Args;
use jaunt_cli::say;
use jaunt_client::home::Home;
use jaunt_client::profile::normalize_proxy;
use jaunt_types::Secret;
use jaunt_types::api::*;
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

#[derive(Args)]
pub struct SignupArgs {
    /// The proxy, host[:port] (port 3080 by default).
    #[arg(long)]
    proxy: String,
    /// The token from 'jctl users add'.
    #[arg(long)]
    token: String,
    #[command(flatten)]
    trust: TrustFlags,
    /// Read the password (then the first OTP code) as lines from stdin.
    #[arg(long)]
    password_stdin: bool,
}

pub fn run(args: SignupArgs) -> anyhow::Result<()> {
    let proxy = normalize_proxy(&args.proxy).map_err(anyhow::Error::msg)?;
    let home = Home::from_env()?;
    let (_, client) = args.trust.client(&home, &proxy)?;
    let token = Secret::new(args.token.clone());
    let mut prompt = Prompter::new(args.password_stdin)?;
    crate::runtime()?.block_on(async {
        let start: SignupStartResponse = client.post(PATH_SIGNUP_START, &SignupStartRequest { token: token.clone() }).await?;
        let user = start.user.clone();
        let password = if prompt.reads_stdin() {
            prompt.secret("", "password")?
        } else {
            let first = prompt.secret(&format!("Choose a password for Jaunt user {user}: "), "password")?;
            let again = prompt.secret("Enter it again: ", "password")?;
            if first != again {
                anyhow::bail!("the passwords do not match; run the command again");
            }
            first
        };
        let otp = match &start.totp_uri {
            Some(uri) => {
                let qr = QrCode::new(uri.expose().as_bytes())?
                    .render::<Dense1x2>()
                    // Light modules as blocks, as `qrencode -t utf8` draws
                    // them: on the usual dark terminal the code reads the
                    // right way round, with a light quiet zone.
                    .dark_color(Dense1x2::Light)
                    .light_color(Dense1x2::Dark)
                    .quiet_zone(true)
                    .build();
                say!("Scan this QR code with your authenticator app (Google Authenticator, Authy, 1Password, ...):")?;
                say!()?;
                say!("{qr}")?;
                say!()?;
                say!("Or add it by hand: {}", uri.expose())?;
                Some(Secret::new(prompt.line("Enter the 6-digit code the app shows: ", "one-time code")?))
            }
            None => None,
        };
        let done: SignupFinishResponse = client
            .post(PATH_SIGNUP_FINISH, &SignupFinishRequest { token, password, otp })
            .await?;
        let pin = args.trust.ca_pin.as_ref().map(|p| format!(" --ca-pin={p}")).unwrap_or_default();
        say!("User {} is ready. Log in with:", done.user)?;
        say!()?;
        say!("  jsh login --proxy={proxy} --user={}{pin}", done.user)?;
        Ok(())
    })
}
