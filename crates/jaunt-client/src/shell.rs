//! What `jsh ssh` does once it is connected to a node: local port forwards
//! (`-L`), the session channel (a terminal, a shell or a command, the
//! forwarded agent), and the pump that carries input, output and window
//! changes until the node reports how the session ended. The terminal
//! itself (raw mode, its size, where output is written) is the caller's.

use crate::ssh::HostCheck;
use crate::{ClientError, Result};
use russh::ChannelMsg;
use russh::client::{Handle, Msg};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::sync::mpsc;

/// What the session's exit code is when the node names none, or the
/// command died of a signal (as OpenSSH reports it).
pub const NO_EXIT_STATUS: i32 = 255;

/// `-L [bind:]port:host:hostport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalForward {
    pub bind: String,
    pub port: u16,
    pub host: String,
    pub host_port: u16,
}

impl std::str::FromStr for LocalForward {
    type Err = String;

    fn from_str(spec: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (bind, port, host, host_port) = match parts.as_slice() {
            [p, h, hp] => ("127.0.0.1", *p, *h, *hp),
            [b, p, h, hp] => (*b, *p, *h, *hp),
            _ => return Err(format!("-L {spec:?}: use [bind:]port:host:hostport")),
        };
        let num = |s: &str| {
            s.parse::<u16>()
                .map_err(|_| format!("-L {spec:?}: {s:?} is not a port"))
        };
        Ok(LocalForward {
            bind: bind.to_string(),
            port: num(port)?,
            host: host.to_string(),
            host_port: num(host_port)?,
        })
    }
}

/// Listens on the forward's local address; each connection becomes a
/// `direct-tcpip` channel to its host through the node.
pub async fn listen(handle: Arc<Handle<HostCheck>>, forward: LocalForward) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((forward.bind.as_str(), forward.port))
        .await
        .map_err(|e| {
            ClientError::Invalid(format!(
                "-L {}:{}: cannot listen: {e}",
                forward.bind, forward.port
            ))
        })?;
    tokio::spawn(async move {
        while let Ok((mut sock, peer)) = listener.accept().await {
            let handle = handle.clone();
            let forward = forward.clone();
            tokio::spawn(async move {
                let opened = handle
                    .channel_open_direct_tcpip(
                        forward.host.clone(),
                        forward.host_port as u32,
                        peer.ip().to_string(),
                        peer.port() as u32,
                    )
                    .await;
                match opened {
                    Ok(ch) => {
                        let mut stream = ch.into_stream();
                        let _ = tokio::io::copy_bidirectional(&mut sock, &mut stream).await;
                    }
                    Err(e) => eprintln!(
                        "jsh: port forward to {}:{} refused: {e}",
                        forward.host, forward.host_port
                    ),
                }
            });
        }
    });
    Ok(())
}

/// A terminal for the session.
#[derive(Debug, Clone)]
pub struct Terminal {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// What the session channel asks for.
#[derive(Debug, Clone, Default)]
pub struct SessionRequest {
    /// `None`: the login shell.
    pub command: Option<String>,
    pub terminal: Option<Terminal>,
    pub forward_agent: bool,
}

/// Opens the session channel and starts its shell or command.
pub async fn open(
    handle: &Handle<HostCheck>,
    request: &SessionRequest,
) -> Result<russh::Channel<Msg>> {
    let failed = |e: russh::Error| ClientError::Protocol(format!("session channel: {e}"));
    let channel = handle.channel_open_session().await.map_err(failed)?;
    if request.forward_agent {
        channel.agent_forward(true).await.map_err(failed)?;
    }
    if let Some(t) = &request.terminal {
        channel
            .request_pty(true, &t.term, t.cols, t.rows, 0, 0, &[])
            .await
            .map_err(failed)?;
    }
    match &request.command {
        Some(command) => channel.exec(true, command.as_str()).await,
        None => channel.request_shell(true).await,
    }
    .map_err(failed)?;
    Ok(channel)
}

/// Carries the session until the node closes it: `stdin` to the node (its
/// end is the session's EOF), window sizes from `resizes`, and output to
/// `write` (`true`: standard error), which returns false once it can take
/// no more. Returns the remote exit code.
pub async fn pump<R, W, F>(
    channel: russh::Channel<Msg>,
    stdin: R,
    mut resizes: mpsc::Receiver<(u32, u32)>,
    mut write: W,
) -> i32
where
    R: AsyncRead + Unpin + Send + 'static,
    W: FnMut(bool, Vec<u8>) -> F,
    F: Future<Output = bool>,
{
    let (mut reader, writer) = channel.split();
    let writer = Arc::new(writer);
    let input = {
        let writer = writer.clone();
        tokio::spawn(async move {
            // Large reads for bulk input (a file or a pipe); a terminal
            // still hands over each keystroke as it comes.
            let mut stdin = tokio::io::BufReader::with_capacity(256 * 1024, stdin);
            let mut to_node = writer.make_writer();
            let _ = tokio::io::copy_buf(&mut stdin, &mut to_node).await;
            let _ = to_node.flush().await;
            let _ = writer.eof().await;
        })
    };
    let resize = {
        let writer = writer.clone();
        tokio::spawn(async move {
            while let Some((cols, rows)) = resizes.recv().await {
                let _ = writer.window_change(cols, rows, 0, 0).await;
            }
        })
    };
    let mut code = None;
    while let Some(msg) = reader.wait().await {
        let chunk = match msg {
            ChannelMsg::Data { data } => Some((false, data)),
            ChannelMsg::ExtendedData { data, .. } => Some((true, data)),
            ChannelMsg::ExitStatus { exit_status } => {
                code = Some(exit_status as i32);
                None
            }
            ChannelMsg::ExitSignal { .. } => {
                code = Some(NO_EXIT_STATUS);
                None
            }
            ChannelMsg::Close => break,
            _ => None,
        };
        // A writer that stopped (stdout closed) ends the session.
        if let Some((is_err, data)) = chunk
            && !write(is_err, data.to_vec()).await
        {
            break;
        }
    }
    input.abort();
    resize.abort();
    code.unwrap_or(NO_EXIT_STATUS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_forwards() {
        let ok = |bind: &str, port, host: &str, host_port| {
            Ok(LocalForward {
                bind: bind.into(),
                port,
                host: host.into(),
                host_port,
            })
        };
        let cases: [(&str, std::result::Result<LocalForward, String>); 5] = [
            ("8080:db:5432", ok("127.0.0.1", 8080, "db", 5432)),
            ("0.0.0.0:8080:db:5432", ok("0.0.0.0", 8080, "db", 5432)),
            (
                "8080:db",
                Err("-L \"8080:db\": use [bind:]port:host:hostport".into()),
            ),
            ("x:db:1", Err("-L \"x:db:1\": \"x\" is not a port".into())),
            (
                "1:db:70000",
                Err("-L \"1:db:70000\": \"70000\" is not a port".into()),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(spec.parse::<LocalForward>(), want, "{spec}");
        }
    }
}
