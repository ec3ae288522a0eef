//! `jsh config`: an OpenSSH client configuration that reaches the
//! cluster's nodes through `jsh proxy ssh`, with the certificate from
//! `jsh login` and the cluster's host CA trusted.

use clap::Args;
use jaunt_cli::print_text;
use jaunt_client::ciphers::{aes_gcm_in_hardware, openssh_ciphers};
use jaunt_client::home::Home;
use jaunt_client::login::active_profile;

#[derive(Args)]
pub struct ConfigArgs {
    /// host:port of the proxy [default: the current profile's]
    #[arg(long)]
    proxy: Option<String>,
}

fn quote(p: &std::path::Path) -> String {
    format!("\"{}\"", p.display())
}

pub fn run(args: ConfigArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let profile = active_profile(&home, args.proxy.as_deref())?;
    let name = profile.name();
    let jsh = std::env::current_exe()?;
    let cluster = &profile.cluster;
    let text = format!(
        "# OpenSSH configuration for Jaunt cluster {cluster:?} (proxy {proxy}), made by 'jsh config'.
# Save it (jsh config > ~/.ssh/jaunt_config) and reach a node as NAME.{cluster}:
#   ssh -F ~/.ssh/jaunt_config LOGIN@NAME.{cluster}
# or add 'Include ~/.ssh/jaunt_config' to ~/.ssh/config. sftp and scp work the same way.
Host *.{cluster}
    UserKnownHostsFile {known_hosts}
    IdentityFile {key}
    CertificateFile {cert}
    IdentitiesOnly yes
    PubkeyAuthentication yes
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    ProxyCommand {jsh} proxy ssh{fdpass} --cluster={cluster} --proxy={proxy} %r@%h
{use_fdpass}{ciphers}",
        proxy = profile.web_proxy_addr,
        known_hosts = quote(&home.known_hosts_path()),
        key = quote(&home.key_path(&name, &profile.user)),
        cert = quote(&home.ssh_cert_path(&name, &profile.user, cluster)),
        jsh = quote(&jsh),
        // ssh then talks to the proxy's raw relay itself (Unix OpenSSH).
        fdpass = if cfg!(unix) { " --fdpass" } else { "" },
        use_fdpass = if cfg!(unix) { "    ProxyUseFdpass yes\n" } else { "" },
        // AES-GCM first where this CPU has AES instructions (see ciphers).
        ciphers = openssh_ciphers(aes_gcm_in_hardware())
            .map(|list| format!("    Ciphers {list}\n"))
            .unwrap_or_default(),
    );
    print_text(&text)?;
    Ok(())
}
