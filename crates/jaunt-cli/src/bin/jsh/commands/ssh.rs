//! `jsh ssh`: an SSH session to a node through the proxy, with the
//! certificate from `jsh login`; the remote exit code becomes jsh's own.

use clap::Args;
use jaunt_client::shell::{self, LocalForward, SessionRequest, Terminal};
use std::io::IsTerminal;
use std::sync::Arc;

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
    /// A leaf cluster's node, through the root's proxy [default: the
    /// cluster you logged in to]
    #[arg(long)]
    cluster: Option<String>,
    /// [login@]host
    target: String,
    /// A command to run instead of a shell.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
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

/// Sends the terminal's size each time it changes (never, where there is
/// no such signal).
async fn window_changes(tx: tokio::sync::mpsc::Sender<(u32, u32)>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            if tx.send(window()).await.is_err() {
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
        .map(|f| f.parse::<LocalForward>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (home, profile, client, cluster) = crate::logged_in(args.cluster.as_deref())?;
    let interactive = std::io::stdin().is_terminal();
    let want_pty = !args.no_tty && (args.tty || (args.command.is_empty() && interactive));
    let request = SessionRequest {
        command: (!args.command.is_empty()).then(|| args.command.join(" ")),
        terminal: want_pty.then(|| {
            let (cols, rows) = window();
            Terminal {
                term: std::env::var("TERM").unwrap_or_else(|_| "xterm".into()),
                cols,
                rows,
            }
        }),
        forward_agent: agent_socket.is_some(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let code = runtime.block_on(async {
        let handle = Arc::new(
            jaunt_client::ssh::connect_to(
                &home,
                &profile,
                &client,
                &jaunt_client::ssh::Destination {
                    cluster: &cluster,
                    login: &login,
                    host: &host,
                    port: args.port,
                },
                agent_socket,
            )
            .await?,
        );
        for forward in forwards {
            shell::listen(handle.clone(), forward).await?;
        }
        let channel = shell::open(&handle, &request).await?;
        let _raw = (want_pty && interactive).then(RawMode::enable);
        let (tx, resizes) = tokio::sync::mpsc::channel(1);
        tokio::spawn(window_changes(tx));
        let output = Output::start();
        // Not the non-blocking pipes of jaunt_sys::stdio: these may be the
        // user's shell pipes, shared with other processes.
        let code = shell::pump(channel, tokio::io::stdin(), resizes, |is_err, data| {
            output.send(is_err, data)
        })
        .await;
        output.finish()?;
        anyhow::Ok(code)
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
