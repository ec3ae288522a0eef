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

/// Relays this process's stdin to `socket` and `socket` to its stdout with
/// splice(2), the bytes never entering user space, when both are pipes (as
/// PuTTY's local proxy and OpenSSH's ProxyCommand make them). `Ok(false)`:
/// they are not both pipes, and the caller copies instead. The session is
/// over when the socket side ends; stdin's end is passed on as a
/// half-close.
#[cfg(target_os = "linux")]
pub async fn splice_stdio(socket: &tokio::net::TcpStream) -> std::io::Result<bool> {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    // tokio checks each is a pipe and makes it non-blocking.
    let own = |fd: std::os::fd::BorrowedFd<'_>| {
        let fd = fd.try_clone_to_owned().ok()?;
        enlarge(&fd);
        Some(fd)
    };
    let input = own(std::io::stdin().as_fd()).and_then(|fd| pipe::Receiver::from_owned_fd(fd).ok());
    let output = own(std::io::stdout().as_fd()).and_then(|fd| pipe::Sender::from_owned_fd(fd).ok());
    let (Some(input), Some(output)) = (input, output) else {
        return Ok(false);
    };
    let up = async {
        let _ = splice_up(&input, socket).await;
    };
    // The session is over when the node side closes; stdin may stay open.
    tokio::select! {
        down = splice_down(socket, &output) => down?,
        _ = async { up.await; std::future::pending::<()>().await } => {}
    }
    Ok(true)
}

/// Marks a tokio resource not ready until the OS says so again.
#[cfg(target_os = "linux")]
fn would_block<R>(_: R) -> std::io::Result<()> {
    Err(std::io::ErrorKind::WouldBlock.into())
}

/// Whether `fd` has bytes to read now (a zero-timeout poll).
#[cfg(target_os = "linux")]
fn has_input(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
}

#[cfg(target_os = "linux")]
const SPLICE_CHUNK: usize = 1024 * 1024;

/// stdin pipe -> socket. A splice that would block does not say which side
/// it waited for: bytes still in the pipe mean the socket is full.
#[cfg(target_os = "linux")]
async fn splice_up(
    input: &tokio::net::unix::pipe::Receiver,
    socket: &tokio::net::TcpStream,
) -> std::io::Result<()> {
    use nix::fcntl::{SpliceFFlags, splice};
    use std::os::fd::{AsFd, AsRawFd};
    use tokio::io::Interest;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        input.readable().await?;
        socket.writable().await?;
        match splice(input, None, socket, None, SPLICE_CHUNK, flags) {
            Ok(0) => {
                let _ = nix::sys::socket::shutdown(
                    socket.as_raw_fd(),
                    nix::sys::socket::Shutdown::Write,
                );
                return Ok(());
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EAGAIN) if has_input(input.as_fd()) => {
                let _ = socket.try_io(Interest::WRITABLE, || would_block(()));
            }
            Err(nix::errno::Errno::EAGAIN) => {
                let _ = input.try_io(|| would_block(()));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// socket -> stdout pipe; bytes still on the socket mean the pipe is full.
#[cfg(target_os = "linux")]
async fn splice_down(
    socket: &tokio::net::TcpStream,
    output: &tokio::net::unix::pipe::Sender,
) -> std::io::Result<()> {
    use nix::fcntl::{SpliceFFlags, splice};
    use std::os::fd::AsFd;
    use tokio::io::Interest;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        socket.readable().await?;
        output.writable().await?;
        match splice(socket, None, output, None, SPLICE_CHUNK, flags) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(nix::errno::Errno::EAGAIN) if has_input(socket.as_fd()) => {
                let _ = output.try_io(|| would_block(()));
            }
            Err(nix::errno::Errno::EAGAIN) => {
                let _ = socket.try_io(Interest::READABLE, || would_block(()));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
