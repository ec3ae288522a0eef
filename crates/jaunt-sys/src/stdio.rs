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

#[cfg(target_os = "linux")]
const SPLICE_FLAGS: nix::fcntl::SpliceFFlags =
    nix::fcntl::SpliceFFlags::SPLICE_F_MOVE.union(nix::fcntl::SpliceFFlags::SPLICE_F_NONBLOCK);

/// A pipe of our own between the two ends. Each splice then has one end
/// that can make it wait (the other is our pipe, empty before a fill and
/// holding only what is being drained), so a would-block result is that
/// end's, and it happens inside that end's `try_io`, which clears its
/// readiness without losing a wake-up that raced with the call. (Splicing
/// stdin straight to the socket cannot tell which side was not ready;
/// guessing lost wake-ups and stalled PuTTY uploads.)
#[cfg(target_os = "linux")]
struct Mid {
    r: std::os::fd::OwnedFd,
    w: std::os::fd::OwnedFd,
    capacity: usize,
}

#[cfg(target_os = "linux")]
impl Mid {
    fn new() -> std::io::Result<Mid> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        let capacity = usize::try_from(fcntl(&w, FcntlArg::F_GETPIPE_SZ)?).unwrap_or(65536);
        Ok(Mid { r, w, capacity })
    }
}

/// One end of a splice, as tokio tracks its readiness in one direction.
#[cfg(target_os = "linux")]
trait End: std::os::fd::AsFd {
    async fn ready(&self) -> std::io::Result<()>;
    /// Runs `f` (the splice) if ready; a would-block clears readiness.
    fn attempt(&self, f: impl FnOnce() -> std::io::Result<usize>) -> std::io::Result<usize>;
}

#[cfg(target_os = "linux")]
impl End for tokio::net::unix::pipe::Receiver {
    async fn ready(&self) -> std::io::Result<()> {
        self.readable().await
    }
    fn attempt(&self, f: impl FnOnce() -> std::io::Result<usize>) -> std::io::Result<usize> {
        self.try_io(f)
    }
}

#[cfg(target_os = "linux")]
impl End for tokio::net::unix::pipe::Sender {
    async fn ready(&self) -> std::io::Result<()> {
        self.writable().await
    }
    fn attempt(&self, f: impl FnOnce() -> std::io::Result<usize>) -> std::io::Result<usize> {
        self.try_io(f)
    }
}

/// A socket's reading or writing side.
#[cfg(target_os = "linux")]
struct Side<'a>(&'a tokio::net::TcpStream, tokio::io::Interest);

#[cfg(target_os = "linux")]
impl std::os::fd::AsFd for Side<'_> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(target_os = "linux")]
impl End for Side<'_> {
    async fn ready(&self) -> std::io::Result<()> {
        self.0.ready(self.1).await.map(drop)
    }
    fn attempt(&self, f: impl FnOnce() -> std::io::Result<usize>) -> std::io::Result<usize> {
        self.0.try_io(self.1, f)
    }
}

/// Moves bytes `from` -> our pipe -> `to` until `from` ends.
#[cfg(target_os = "linux")]
async fn pump(from: &impl End, to: &impl End) -> std::io::Result<()> {
    use nix::fcntl::splice;
    use std::io::ErrorKind::WouldBlock;
    let mid = Mid::new()?;
    loop {
        from.ready().await?;
        let fill = || {
            Ok(splice(
                from,
                None,
                &mid.w,
                None,
                mid.capacity,
                SPLICE_FLAGS,
            )?)
        };
        let n = match from.attempt(fill) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut left = n;
        while left > 0 {
            to.ready().await?;
            match to.attempt(|| Ok(splice(&mid.r, None, to, None, left, SPLICE_FLAGS)?)) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// stdin pipe -> socket; stdin's end becomes a half-close.
#[cfg(target_os = "linux")]
async fn splice_up(
    input: &tokio::net::unix::pipe::Receiver,
    socket: &tokio::net::TcpStream,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    pump(input, &Side(socket, tokio::io::Interest::WRITABLE)).await?;
    let _ = nix::sys::socket::shutdown(socket.as_raw_fd(), nix::sys::socket::Shutdown::Write);
    Ok(())
}

/// socket -> stdout pipe.
#[cfg(target_os = "linux")]
async fn splice_down(
    socket: &tokio::net::TcpStream,
    output: &tokio::net::unix::pipe::Sender,
) -> std::io::Result<()> {
    pump(&Side(socket, tokio::io::Interest::READABLE), output).await
}
