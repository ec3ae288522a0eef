//! One SSH session channel's process: its environment, running a command or
//! a login shell as the OS user (with a PTY when asked), feeding it input,
//! and reporting how it ended.

use crate::os::{OsUser, spawn};
use std::net::SocketAddr;
use std::process::Stdio;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Who and where, for the environment and `jaunt status`.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub session_id: String,
    pub user: String,
    pub login: String,
    pub cluster: String,
    pub host_uuid: String,
    pub proxy_addr: String,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The forwarded agent's socket, when the client asked for one.
    pub agent_socket: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct PtyRequest {
    pub term: String,
    pub cols: u16,
    pub rows: u16,
}

/// What a session channel runs.
#[derive(Debug, Clone)]
pub enum Launch {
    /// The user's login shell.
    Shell,
    /// A command, through the user's shell.
    Exec(String),
    /// A program run directly (the SFTP helper), with its arguments.
    Subsystem(std::path::PathBuf, Vec<String>),
}

/// What arrives from the client for a running session.
#[derive(Debug)]
pub enum Input {
    Data(Vec<u8>),
    Eof,
    Resize {
        cols: u16,
        rows: u16,
    },
    Signal(nix::sys::signal::Signal),
    /// The client is gone: SIGHUP to the whole process group, as sshd's
    /// closing terminal would send.
    Hangup,
}

fn hang_up(pid: Option<nix::unistd::Pid>) {
    if let Some(pid) = pid {
        // The session's process leads its own group (setsid at spawn).
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGHUP);
    }
}

/// How the process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(u32),
    Signal(String),
}

pub use jaunt_types::api::env_allowed;

fn environment(
    info: &SessionInfo,
    user: &OsUser,
    term: Option<&str>,
    tty: Option<&std::path::Path>,
    client_env: &[(String, String)],
) -> Vec<(String, String)> {
    let path = if user.uid.is_root() {
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    } else {
        "/usr/local/bin:/usr/bin:/bin:/usr/games"
    };
    let mut env = vec![
        ("HOME".to_string(), user.home.display().to_string()),
        ("USER".to_string(), user.name.clone()),
        ("LOGNAME".to_string(), user.name.clone()),
        ("SHELL".to_string(), user.shell.display().to_string()),
        ("PATH".to_string(), path.to_string()),
        ("MAIL".to_string(), format!("/var/mail/{}", user.name)),
        (
            "SSH_CLIENT".to_string(),
            format!(
                "{} {} {}",
                info.client.ip(),
                info.client.port(),
                info.server.port()
            ),
        ),
        (
            "SSH_CONNECTION".to_string(),
            format!(
                "{} {} {} {}",
                info.client.ip(),
                info.client.port(),
                info.server.ip(),
                info.server.port()
            ),
        ),
        ("JAUNT_SESSION_ID".to_string(), info.session_id.clone()),
        ("JAUNT_CLUSTER_NAME".to_string(), info.cluster.clone()),
        ("JAUNT_HOST_UUID".to_string(), info.host_uuid.clone()),
        ("JAUNT_USER".to_string(), info.user.clone()),
        ("JAUNT_PROXY_ADDR".to_string(), info.proxy_addr.clone()),
    ];
    if let Some(term) = term {
        env.push(("TERM".to_string(), term.to_string()));
    }
    if let Some(tty) = tty {
        env.push(("SSH_TTY".to_string(), tty.display().to_string()));
    }
    if let Some(sock) = &info.agent_socket {
        env.push(("SSH_AUTH_SOCK".to_string(), sock.display().to_string()));
    }
    for (k, v) in client_env.iter().filter(|(k, _)| env_allowed(k)) {
        env.push((k.clone(), v.clone()));
    }
    env
}

fn program(user: &OsUser, launch: &Launch) -> (String, Vec<String>) {
    let shell = user.shell.display().to_string();
    match launch {
        Launch::Exec(cmd) => (shell, vec!["-c".to_string(), cmd.clone()]),
        Launch::Shell => (shell, Vec::new()),
        Launch::Subsystem(path, args) => (path.display().to_string(), args.clone()),
    }
}

/// argv[0] of a login shell: its base name with a leading '-'.
fn login_arg0(user: &OsUser) -> String {
    let base = user
        .shell
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sh".into());
    format!("-{base}")
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return Exit::Code(code as u32);
    }
    match status
        .signal()
        .and_then(|s| nix::sys::signal::Signal::try_from(s).ok())
    {
        // SSH names signals without the SIG prefix.
        Some(sig) => Exit::Signal(sig.as_str().trim_start_matches("SIG").to_string()),
        None => Exit::Code(255),
    }
}

async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut from: R, mut to: W) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.flush().await;
}

/// Runs the session to its end. `out` and `err` are the channel's stdout
/// and stderr writers; `input` carries what the client sends.
/// A session's recorder, shared by its output pump and its input loop.
pub type SharedRecorder = std::sync::Arc<std::sync::Mutex<crate::recording::Recorder>>;

fn record(
    rec: &Option<SharedRecorder>,
    f: impl FnOnce(&mut crate::recording::Recorder) -> std::io::Result<()>,
) {
    if let Some(rec) = rec
        && let Ok(mut r) = rec.lock()
        && let Err(e) = f(&mut r)
    {
        tracing::error!(error = %e, "cannot write the session recording");
    }
}

/// Copies PTY output to the client and into the recording.
async fn pump_recorded<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut from: R,
    mut to: W,
    rec: Option<SharedRecorder>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                record(&rec, |r| r.output(&buf[..n]));
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.flush().await;
}

/// Copies a helper's stderr to the client, line by line, except the
/// audit lines (`sftp::AUDIT_PREFIX`), which go to `audit`.
async fn pump_stderr<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    from: R,
    mut to: W,
    audit: mpsc::UnboundedSender<String>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                match text.strip_prefix(crate::sftp::AUDIT_PREFIX) {
                    Some(record) => {
                        let _ = audit.send(record.trim_end().to_string());
                    }
                    None => {
                        if to.write_all(&line).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
    let _ = to.flush().await;
}

/// What a session reports besides its output: the recording of a PTY
/// session, and the audit lines of a helper (the SFTP server).
#[derive(Default)]
pub struct Observers {
    pub recorder: Option<SharedRecorder>,
    pub audit_lines: Option<mpsc::UnboundedSender<String>>,
}

/// Everything a session runs with, but its I/O.
pub struct SessionSpec {
    pub launch: Launch,
    pub info: SessionInfo,
    /// The OS user it runs as.
    pub user: OsUser,
    /// A terminal, if the client asked for one and may have it.
    pub pty: Option<PtyRequest>,
    /// What the client sent with `env` requests (filtered here).
    pub client_env: Vec<(String, String)>,
    pub observers: Observers,
}

/// A session's side of its channel: where output goes, and what the
/// client sends.
pub struct SessionIo<W1, W2> {
    pub out: W1,
    /// Standard error; a PTY session has none of its own.
    pub err: W2,
    pub input: mpsc::Receiver<Input>,
}

/// Runs a session to its end as its OS user.
pub async fn run<W1, W2>(spec: SessionSpec, io: SessionIo<W1, W2>) -> std::io::Result<Exit>
where
    W1: AsyncWrite + Unpin + Send + 'static,
    W2: AsyncWrite + Unpin + Send + 'static,
{
    let cwd = if spec.user.home.is_dir() {
        spec.user.home.clone()
    } else {
        "/".into()
    };
    let (program, args) = program(&spec.user, &spec.launch);
    let command = Program {
        program,
        args,
        cwd,
        login_shell: matches!(spec.launch, Launch::Shell),
    };
    match spec.pty.clone() {
        Some(pty) => run_pty(&spec, &command, pty, io).await,
        None => run_piped(spec, &command, io).await,
    }
}

/// What is executed, and where.
struct Program {
    program: String,
    args: Vec<String>,
    cwd: std::path::PathBuf,
    /// Started as a login shell (`-bash`).
    login_shell: bool,
}

/// A session on a terminal: one output stream, recorded when asked.
async fn run_pty<W1, W2>(
    spec: &SessionSpec,
    command: &Program,
    pty: PtyRequest,
    io: SessionIo<W1, W2>,
) -> std::io::Result<Exit>
where
    W1: AsyncWrite + Unpin + Send + 'static,
    W2: AsyncWrite + Unpin + Send + 'static,
{
    let (info, user, client_env) = (&spec.info, &spec.user, &spec.client_env);
    let SessionIo {
        out,
        err,
        mut input,
    } = io;
    let (pty_master, pts) = pty_process::open().map_err(std::io::Error::other)?;
    // pty-process opens /dev/ptmx without O_CLOEXEC: another user's
    // process must never inherit this terminal (spawn also closes all but
    // 0-2 at exec, for any descriptor that slipped through).
    nix::fcntl::fcntl(
        &pty_master,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(std::io::Error::from)?;
    let tty = nix::unistd::ttyname(std::os::fd::AsFd::as_fd(&pts)).ok();
    pty_master
        .resize(pty_process::Size::new(pty.rows, pty.cols))
        .map_err(std::io::Error::other)?;
    let mut cmd = pty_process::Command::new(&command.program)
        .args(&command.args)
        .env_clear()
        .envs(environment(
            info,
            user,
            Some(&pty.term),
            tty.as_deref(),
            client_env,
        ))
        .current_dir(&command.cwd);
    if command.login_shell {
        cmd = cmd.arg0(login_arg0(user));
    }
    let mut child = spawn::pty_as_user(cmd, user)
        .spawn(pts)
        .map_err(std::io::Error::other)?;
    let (reader, mut writer) = pty_master.into_split();
    let rec = spec.observers.recorder.clone();
    let output = tokio::spawn(pump_recorded(reader, out, rec.clone()));
    drop(err);
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let mut input_open = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            msg = input.recv(), if input_open => match msg {
                Some(Input::Data(d)) => { let _ = writer.write_all(&d).await; }
                Some(Input::Resize { cols, rows }) => {
                    let _ = writer.resize(pty_process::Size::new(rows, cols));
                    record(&rec, |r| r.resize(cols, rows));
                }
                Some(Input::Signal(sig)) => { if let Some(pid) = pid { let _ = nix::sys::signal::kill(pid, sig); } }
                Some(Input::Hangup) => hang_up(pid),
                // On a terminal, EOF is a ^D the client typed, already in the data.
                Some(Input::Eof) => {}
                // Nobody can send input any more: the channel is gone.
                None => { input_open = false; hang_up(pid); }
            }
        }
    };
    // The terminal's output ends when the last process holding it
    // exits; wait briefly for it so the tail of the output is sent.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), output).await;
    Ok(exit_of(status))
}

/// A session on pipes: stdout and stderr apart, stdin closed at the
/// client's EOF; a helper's audit lines are taken from its stderr.
async fn run_piped<W1, W2>(
    spec: SessionSpec,
    command: &Program,
    io: SessionIo<W1, W2>,
) -> std::io::Result<Exit>
where
    W1: AsyncWrite + Unpin + Send + 'static,
    W2: AsyncWrite + Unpin + Send + 'static,
{
    let SessionSpec {
        info,
        user,
        client_env,
        observers,
        ..
    } = spec;
    let SessionIo {
        out,
        err,
        mut input,
    } = io;
    let mut cmd = tokio::process::Command::new(&command.program);
    cmd.args(&command.args)
        .env_clear()
        .envs(environment(&info, &user, None, None, &client_env))
        .current_dir(&command.cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if command.login_shell {
        cmd.arg0(login_arg0(&user));
    }
    spawn::as_user(&mut cmd, &user);
    let mut child = cmd.spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| std::io::Error::other("no stderr"))?;
    let mut stdin = child.stdin.take();
    let out_task = tokio::spawn(pump(stdout, out));
    let err_task = match observers.audit_lines {
        Some(audit) => tokio::spawn(pump_stderr(stderr, err, audit)),
        None => tokio::spawn(pump(stderr, err)),
    };
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let mut input_open = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            msg = input.recv(), if input_open => match msg {
                Some(Input::Data(d)) => {
                    if let Some(s) = stdin.as_mut()
                        && s.write_all(&d).await.is_err()
                    {
                        stdin = None;
                    }
                }
                // Closing stdin is what lets `ssh host cmd < file` finish.
                Some(Input::Eof) | None => { stdin = None; input_open = false; }
                Some(Input::Signal(sig)) => { if let Some(pid) = pid { let _ = nix::sys::signal::kill(pid, sig); } }
                Some(Input::Hangup) => hang_up(pid),
                Some(Input::Resize { .. }) => {}
            }
        }
    };
    let _ = out_task.await;
    let _ = err_task.await;
    Ok(exit_of(status))
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_environment_is_filtered() {
        for (name, ok) in [
            ("LANG", true),
            ("LC_ALL", true),
            ("TZ", true),
            ("LD_PRELOAD", false),
            ("PATH", false),
            ("JAUNT_USER", false),
        ] {
            assert_eq!(super::env_allowed(name), ok, "{name}");
        }
    }
}
