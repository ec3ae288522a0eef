//! Standard input and output for bulk relaying. tokio's own stdio hands
//! every read and write to a blocking thread; when they are pipes (as
//! OpenSSH's ProxyCommand, PuTTY's local proxy and the node's helpers make
//! them) they are used directly with non-blocking I/O instead.
//!
//! Only for processes whose stdio pipes are their own (`jsh proxy ssh`, the
//! node's helpers): the pipes are left non-blocking, which would surprise
//! another process sharing them (a shell pipeline around `jsh ssh`).

use tokio::io::{AsyncRead, AsyncWrite};

/// Pipe buffers are raised to this (Linux), so bulk data crosses each pipe
/// in fewer, larger steps: the default 64 KiB costs a wake-up per 64 KiB.
#[cfg(target_os = "linux")]
const PIPE_SIZE: i32 = 1024 * 1024;

#[cfg(unix)]
fn enlarge(fd: &std::os::fd::OwnedFd) {
    #[cfg(target_os = "linux")]
    {
        use nix::fcntl::{FcntlArg, fcntl};
        // Best effort: an unprivileged process may be capped lower.
        let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

pub type Reader = Box<dyn AsyncRead + Unpin + Send>;
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// This process's stdin.
pub fn stdin() -> Reader {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let pipe = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .and_then(|fd| {
                enlarge(&fd);
                tokio::net::unix::pipe::Receiver::from_file(fd.into()).ok()
            });
        if let Some(pipe) = pipe {
            return Box::new(pipe);
        }
    }
    Box::new(tokio::io::stdin())
}

/// This process's stdout.
pub fn stdout() -> Writer {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let pipe = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .and_then(|fd| {
                enlarge(&fd);
                tokio::net::unix::pipe::Sender::from_file(fd.into()).ok()
            });
        if let Some(pipe) = pipe {
            return Box::new(pipe);
        }
    }
    Box::new(tokio::io::stdout())
}

/// Hands `socket` to the process at the other end of stdout, as OpenSSH's
/// `ProxyUseFdpass yes` expects of its ProxyCommand: one byte with the
/// descriptor attached (SCM_RIGHTS) on the socket pair ssh made our stdout.
/// The connection is then ssh's own, and this process can exit.
#[cfg(unix)]
pub fn pass_to_parent(socket: std::net::TcpStream) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    // As a freshly connected socket would be; ssh sets its own flags.
    socket.set_nonblocking(false)?;
    let fds = [socket.as_raw_fd()];
    let byte = [0u8];
    let sent = sendmsg::<()>(
        std::io::stdout().as_raw_fd(),
        &[std::io::IoSlice::new(&byte)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| {
        std::io::Error::other(format!(
            "cannot pass the connection to ssh on stdout ({e}); --fdpass is only for OpenSSH's 'ProxyUseFdpass yes'"
        ))
    })?;
    if sent != 1 {
        return Err(std::io::Error::other("short write passing the connection"));
    }
    Ok(())
}
