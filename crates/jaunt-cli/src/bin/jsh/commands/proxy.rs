//! `jsh proxy ssh`: the stdio proxy PuTTY and OpenSSH run. It connects
//! stdin and stdout to a node's SSH server through the proxy; the SSH
//! session itself is end to end between the SSH client and the node.

use clap::{Args, Subcommand};
use jaunt_client::home::Home;
use jaunt_client::login::logged_in_client;
use jaunt_transport::relay::Relayed;
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
    /// Hand the connection to ssh instead of relaying it: for OpenSSH's
    /// 'ProxyUseFdpass yes', which 'jsh config' writes (Unix)
    #[arg(long)]
    fdpass: bool,
    /// login@host[:port]
    target: String,
}

pub fn run(cmd: ProxyCommand) -> anyhow::Result<()> {
    let ProxyCommand::Ssh(args) = cmd;
    let home = Home::from_env()?;
    let (_, client) = logged_in_client(&home, args.proxy.as_deref())?;
    crate::runtime()?.block_on(async move {
        let conn =
            jaunt_transport::relay::dial(&client, &args.target, args.cluster.as_deref()).await?;
        if args.fdpass {
            return pass(conn);
        }
        // A raw relay between pipes moves in the kernel (PuTTY's way).
        #[cfg(target_os = "linux")]
        if let Relayed::Raw(tcp) = &conn
            && jaunt_sys::stdio::splice_stdio(tcp).await?
        {
            return Ok(());
        }
        let (mut from_node, mut to_node) = tokio::io::split(conn);
        // 256 KiB reads: the SSH client writes bulk data in large chunks.
        let up = async {
            let mut stdin =
                tokio::io::BufReader::with_capacity(256 * 1024, jaunt_sys::stdio::stdin());
            let _ = tokio::io::copy_buf(&mut stdin, &mut to_node).await;
            let _ = to_node.shutdown().await;
        };
        let down = async {
            let mut from = tokio::io::BufReader::with_capacity(256 * 1024, &mut from_node);
            let mut stdout = jaunt_sys::stdio::stdout();
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

/// `--fdpass`: ssh takes the raw relay's socket and talks to the node
/// through the proxy with no process of ours in between.
fn pass(conn: Relayed) -> anyhow::Result<()> {
    #[cfg(unix)]
    if let Relayed::Raw(tcp) = conn {
        jaunt_sys::stdio::pass_to_parent(tcp.into_std()?)?;
        return Ok(());
    }
    #[cfg(not(unix))]
    let _ = conn;
    anyhow::bail!(
        "{}",
        if cfg!(unix) {
            "this proxy keeps SSH inside TLS (ssh_relay: tls), so there is no connection to hand to ssh: remove '--fdpass' and 'ProxyUseFdpass yes' from the SSH configuration"
        } else {
            "--fdpass is for OpenSSH on Unix"
        }
    )
}
