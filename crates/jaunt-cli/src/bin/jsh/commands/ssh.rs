//! `jsh ssh`: an SSH session to a node through the proxy, with the
//! certificate from `jsh login`; the remote exit code becomes jsh's own.

use clap::Args;
use jaunt_client::home::Home;
use jaunt_client::login::logged_in_client;
use russh::ChannelMsg;
use std::io::IsTerminal;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

#[derive(Args)]
pub struct SshArgs {
    /// The node's port [default: its registered port]
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// Forward a local port: [bind:]port:host:hostport
    #[arg(short = 'L')]
    forwards: Vec<String>,
    /// Forward your SSH agent.
    #[arg(short = 'A')]
    agent: bool,
    /// Force a terminal.
    #[arg(short = 't', conflicts_with = "no_tty")]
    tty: bool,
    /// Never a terminal.
    #[arg(short = 'T')]
    no_tty: bool,
    #[arg(long)]
    cluster: Option<String>,
    /// [login@]host
    target: String,
    /// A command to run instead of a shell.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `[bind:]port:host:hostport`.
fn parse_forward(spec: &str) -> anyhow::Result<(String, u16, String, u16)> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (bind, port, host, hostport) = match parts.as_slice() {
        [p, h, hp] => ("127.0.0.1", *p, *h, *hp),
        [b, p, h, hp] => (*b, *p, *h, *hp),
        _ => anyhow::bail!("-L {spec:?}: use [bind:]port:host:hostport"),
    };
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| anyhow::anyhow!("-L {spec:?}: {s:?} is not a port"))
    };
    Ok((
        bind.to_string(),
        num(port)?,
        host.to_string(),
        num(hostport)?,
    ))
}

/// Puts the terminal in raw mode until dropped.
#[cfg(unix)]
struct RawMode(Option<nix::sys::termios::Termios>);

#[cfg(unix)]
impl RawMode {
    fn enable() -> Self {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        match tcgetattr(&stdin) {
            Ok(saved) => {
                let mut raw = saved.clone();
                cfmakeraw(&mut raw);
                let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
                RawMode(Some(saved))
            }
            Err(_) => RawMode(None),
        }
    }
}

#[cfg(unix)]
impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// The Windows console stays in line mode: interactive `jsh ssh` there is
/// line-buffered (PuTTY is the Windows terminal Jaunt supports).
#[cfg(not(unix))]
struct RawMode;

#[cfg(not(unix))]
impl RawMode {
    fn enable() -> Self {
        RawMode
    }
}

/// Resolves each time the terminal is resized (never, where there is no
/// such signal).
async fn window_changes(tx: tokio::sync::mpsc::Sender<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            if tx.send(()).await.is_err() {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    drop(tx);
}

fn window() -> (u32, u32) {
    terminal_size::terminal_size()
        .map(|(terminal_size::Width(w), terminal_size::Height(h))| (w as u32, h as u32))
        .unwrap_or((80, 24))
}

pub fn run(args: SshArgs) -> anyhow::Result<()> {
    let agent_socket = match args.agent {
        true => Some(
            std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(std::path::PathBuf::from)
                .ok_or_else(|| {
                    anyhow::anyhow!("-A: no agent to forward (SSH_AUTH_SOCK is not set)")
                })?,
        ),
        false => None,
    };
    let (login, host) = match args.target.rsplit_once('@') {
        Some((l, h)) => (l.to_string(), h.to_string()),
        None => (
            crate::commands::login::os_user()
                .ok_or_else(|| anyhow::anyhow!("give the login as LOGIN@HOST"))?,
            args.target.clone(),
        ),
    };
    let forwards = args
        .forwards
        .iter()
        .map(|f| parse_forward(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let home = Home::from_env()?;
    let (profile, client) = logged_in_client(&home, None)?;
    if let Some(c) = args.cluster.as_deref().filter(|c| *c != profile.cluster) {
        anyhow::bail!(
            "cluster {c:?} is not known; you are logged in to {:?}",
            profile.cluster
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = runtime.block_on(async {
        let handle = Arc::new(
            jaunt_client::ssh::connect(
                &home,
                &profile,
                &client,
                &login,
                &host,
                args.port,
                agent_socket.clone(),
            )
            .await?,
        );
        for (bind, port, fhost, fport) in forwards {
            let listener = tokio::net::TcpListener::bind((bind.as_str(), port)).await?;
            let handle = handle.clone();
            tokio::spawn(async move {
                while let Ok((mut sock, peer)) = listener.accept().await {
                    let handle = handle.clone();
                    let fhost = fhost.clone();
                    tokio::spawn(async move {
                        match handle
                            .channel_open_direct_tcpip(
                                fhost.clone(),
                                fport as u32,
                                peer.ip().to_string(),
                                peer.port() as u32,
                            )
                            .await
                        {
                            Ok(ch) => {
                                let mut stream = ch.into_stream();
                                let _ = tokio::io::copy_bidirectional(&mut sock, &mut stream).await;
                            }
                            Err(e) => {
                                eprintln!("jsh: port forward to {fhost}:{fport} refused: {e}")
                            }
                        }
                    });
                }
            });
        }
        let channel = handle.channel_open_session().await?;
        if agent_socket.is_some() {
            channel.agent_forward(true).await?;
        }
        let interactive = std::io::stdin().is_terminal();
        let want_pty = !args.no_tty && (args.tty || (args.command.is_empty() && interactive));
        if want_pty {
            let (cols, rows) = window();
            let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
            channel
                .request_pty(true, &term, cols, rows, 0, 0, &[])
                .await?;
        }
        if args.command.is_empty() {
            channel.request_shell(true).await?;
        } else {
            channel.exec(true, args.command.join(" ")).await?;
        }
        let _raw = (want_pty && interactive).then(RawMode::enable);
        let (mut reader, writer) = channel.split();
        let writer = Arc::new(writer);
        let input = {
            let writer = writer.clone();
            tokio::spawn(async move {
                // Large reads for bulk input (a file or a pipe); a terminal
                // still hands over each keystroke as it comes. Not the
                // non-blocking pipes of jaunt_client::stdio: these may be the
                // user's shell pipes, shared with other processes.
                let mut stdin = tokio::io::BufReader::with_capacity(256 * 1024, tokio::io::stdin());
                let mut to_node = writer.make_writer();
                let _ = tokio::io::copy_buf(&mut stdin, &mut to_node).await;
                let _ = to_node.flush().await;
                let _ = writer.eof().await;
            })
        };
        let resize = {
            let writer = writer.clone();
            tokio::spawn(async move {
                let (tx, mut winch) = tokio::sync::mpsc::channel(1);
                tokio::spawn(window_changes(tx));
                while winch.recv().await.is_some() {
                    let (cols, rows) = window();
                    let _ = writer.window_change(cols, rows, 0, 0).await;
                }
            })
        };
        let output = Output::start();
        let mut code: Option<i32> = None;
        while let Some(msg) = reader.wait().await {
            let chunk = match msg {
                ChannelMsg::Data { data } => Some((false, data)),
                ChannelMsg::ExtendedData { data, .. } => Some((true, data)),
                ChannelMsg::ExitStatus { exit_status } => {
                    code = Some(exit_status as i32);
                    None
                }
                // As OpenSSH: a command killed by a signal exits 255.
                ChannelMsg::ExitSignal { .. } => {
                    code = Some(255);
                    None
                }
                ChannelMsg::Close => break,
                _ => None,
            };
            // A writer that stopped (stdout closed) ends the session;
            // finish() below reports its error.
            if let Some((is_err, data)) = chunk
                && !output.send(is_err, data.to_vec()).await
            {
                break;
            }
        }
        input.abort();
        resize.abort();
        output.finish()?;
        anyhow::Ok(code.unwrap_or(255))
    });
    let code = code?;
    // Leave quickly: a blocking read of stdin may still be pending.
    runtime.shutdown_background();
    std::process::exit(code);
}

/// The session's output, written by a thread of its own with blocking
/// writes, in order: the network side goes on receiving while a write
/// runs (a write and flush per message through tokio's stdout waited for
/// each), and the user's stdout and stderr are never made non-blocking
/// (they may be a shell's, shared with other processes).
struct Output {
    tx: tokio::sync::mpsc::Sender<(bool, Vec<u8>)>,
    writer: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Output {
    /// Chunks in flight; a slow reader of stdout holds the session back.
    const QUEUE: usize = 64;

    fn start() -> Output {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(bool, Vec<u8>)>(Self::QUEUE);
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            while let Some((is_err, data)) = rx.blocking_recv() {
                let sink: &mut dyn Write = if is_err { &mut err } else { &mut out };
                sink.write_all(&data)?;
                sink.flush()?;
            }
            Ok(())
        });
        Output { tx, writer }
    }

    /// Queues output; false once the writer has stopped.
    async fn send(&self, is_err: bool, data: Vec<u8>) -> bool {
        self.tx.send((is_err, data)).await.is_ok()
    }

    /// Waits until everything sent has been written.
    fn finish(self) -> anyhow::Result<()> {
        drop(self.tx);
        match self.writer.join() {
            Ok(result) => Ok(result?),
            Err(_) => anyhow::bail!("the output writer failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn forwards() {
        assert_eq!(
            super::parse_forward("8080:db:5432").ok(),
            Some(("127.0.0.1".into(), 8080, "db".into(), 5432))
        );
        assert_eq!(
            super::parse_forward("0.0.0.0:8080:db:5432").ok(),
            Some(("0.0.0.0".into(), 8080, "db".into(), 5432))
        );
        assert!(super::parse_forward("8080:db").is_err());
        assert!(super::parse_forward("x:db:1").is_err());
    }
}
