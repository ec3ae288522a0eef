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
    let cluster = &profile.cluster;
    // The leaf clusters reached through this proxy, each a block of its
    // own (asked of the proxy; without a valid login, the root alone).
    let leaves: Vec<String> =
        match jaunt_client::login::logged_in_client(&home, Some(&profile.web_proxy_addr)) {
            Ok((_, client)) => {
                let clusters = crate::runtime()?
                    .block_on(jaunt_client::clusters::fetch(&client))
                    .unwrap_or_default();
                jaunt_client::clusters::remember(&home, &profile, &clusters)?;
                clusters
                    .into_iter()
                    .map(|c| c.name)
                    .filter(|c| c != cluster)
                    .collect()
            }
            Err(_) => Vec::new(),
        };
    let mut text = format!(
        "# OpenSSH configuration for Jaunt cluster {cluster:?} (proxy {proxy}), made by 'jsh config'.
# Save it (jsh config > ~/.ssh/jaunt_config) and reach a node as NAME.{cluster}:
#   ssh -F ~/.ssh/jaunt_config LOGIN@NAME.{cluster}
# or add 'Include ~/.ssh/jaunt_config' to ~/.ssh/config. sftp and scp work the same way.
",
        proxy = profile.web_proxy_addr,
    );
    text += &host_block(&home, &profile, cluster)?;
    for leaf in &leaves {
        text += &format!("# Leaf cluster {leaf:?}, through the same proxy: LOGIN@NAME.{leaf}\n");
        text += &host_block(&home, &profile, leaf)?;
    }
    print_text(&text)?;
    Ok(())
}

/// The `Host *.<cluster>` block: nodes of `cluster` (the profile's, or a
/// leaf of it) through the profile's proxy, with the profile's certificate.
fn host_block(
    home: &Home,
    profile: &jaunt_client::profile::Profile,
    cluster: &str,
) -> anyhow::Result<String> {
    let name = profile.name();
    let jsh = std::env::current_exe()?;
    Ok(format!(
        "Host *.{cluster}
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
        cert = quote(&home.ssh_cert_path(&name, &profile.user, &profile.cluster)),
        jsh = quote(&jsh),
        // ssh then talks to the proxy's raw relay itself (Unix OpenSSH).
        fdpass = if cfg!(unix) { " --fdpass" } else { "" },
        use_fdpass = if cfg!(unix) {
            "    ProxyUseFdpass yes\n"
        } else {
            ""
        },
        // AES-GCM first where this CPU has AES instructions (see ciphers).
        ciphers = openssh_ciphers(aes_gcm_in_hardware())
            .map(|list| format!("    Ciphers {list}\n"))
            .unwrap_or_default(),
    ))
}
