//! `jsh proxy ssh`: the stdio proxy PuTTY and OpenSSH run. It connects
//! stdin and stdout to a node's SSH server through the proxy; the SSH
//! session itself is end to end between the SSH client and the node.

use clap::{Args, Subcommand};
use jaunt_client::home::Home;
use jaunt_client::login::logged_in_client;
use tokio::io::AsyncWriteExt;

#[derive(Subcommand)]
pub enum ProxyCommand {
    /// Relay an SSH connection to a node over stdin/stdout.
    Ssh(ProxySshArgs),
}

#[derive(Args)]
pub struct ProxySshArgs {
    #[arg(long)]
    cluster: Option<String>,
    /// host:port of the proxy [default: the current profile's]
    #[arg(long)]
    proxy: Option<String>,
    /// login@host[:port]
    target: String,
}

pub fn run(cmd: ProxyCommand) -> anyhow::Result<()> {
    let ProxyCommand::Ssh(args) = cmd;
    let home = Home::from_env()?;
    let (_, client) = logged_in_client(&home, args.proxy.as_deref())?;
    crate::runtime()?.block_on(async move {
        let conn =
            jaunt_client::relay::dial(&client, &args.target, args.cluster.as_deref()).await?;
        let (mut from_node, mut to_node) = tokio::io::split(conn);
        // 256 KiB reads: the SSH client writes bulk data in large chunks.
        let up = async {
            let mut stdin =
                tokio::io::BufReader::with_capacity(256 * 1024, jaunt_client::stdio::stdin());
            let _ = tokio::io::copy_buf(&mut stdin, &mut to_node).await;
            let _ = to_node.shutdown().await;
        };
        let down = async {
            let mut from = tokio::io::BufReader::with_capacity(256 * 1024, &mut from_node);
            let mut stdout = jaunt_client::stdio::stdout();
            let _ = tokio::io::copy_buf(&mut from, &mut stdout).await;
            let _ = stdout.flush().await;
        };
        // The session is over when the node side closes.
        tokio::select! {
            _ = down => {}
            _ = async { up.await; std::future::pending::<()>().await } => {}
        }
        Ok(())
    })
}
