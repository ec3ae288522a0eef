//! Relaying between two TCP sockets without the bytes entering user space:
//! each direction moves socket -> pipe -> socket with splice(2), so the
//! proxy pays neither the copies of read/write nor a wake-up per buffer
//! for a raw relay. Linux only; elsewhere the caller copies.

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::sys::socket::{Shutdown, shutdown};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Each direction's pipe; bigger than a socket's typical burst so one
/// splice takes what has arrived.
const PIPE_SIZE: i32 = 1024 * 1024;
/// A direction silent this long gives its pipe back.
const PIPE_IDLE: Duration = Duration::from_secs(2);

/// Relays until both directions have ended (or either fails). Returns the
/// bytes moved a -> b and b -> a.
pub async fn relay(a: &TcpStream, b: &TcpStream) -> io::Result<(u64, u64)> {
    tokio::try_join!(one_way(a, b), one_way(b, a))
}

/// A direction's pipe: the kernel buffer the bytes pass through.
struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        // Best effort: an unprivileged proxy may be held lower.
        let _ = fcntl(&w, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        let capacity = fcntl(&w, FcntlArg::F_GETPIPE_SZ)?;
        Ok(Pipe {
            r,
            w,
            capacity: usize::try_from(capacity).unwrap_or(65536),
        })
    }
}

async fn one_way(from: &TcpStream, to: &TcpStream) -> io::Result<u64> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    let mut total = 0u64;
    // Held only while bytes flow: an idle session keeps no pipe, so idle
    // relays cost no descriptors or pipe pages (which the kernel limits
    // per user for unprivileged processes).
    let mut pipe: Option<Pipe> = None;
    loop {
        if pipe.is_some() {
            if tokio::time::timeout(PIPE_IDLE, from.readable())
                .await
                .is_err()
            {
                pipe = None;
                from.readable().await?;
            }
        } else {
            from.readable().await?;
        }
        let p = match &pipe {
            Some(p) => p,
            None => pipe.insert(Pipe::new()?),
        };
        // The pipe is empty here, so only an empty socket makes this wait.
        let n = match from.try_io(Interest::READABLE, || {
            Ok(splice(from, None, &p.w, None, p.capacity, flags)?)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            // End of this direction: pass the half-close on, as SSH expects.
            let _ = shutdown(to.as_raw_fd(), Shutdown::Write);
            return Ok(total);
        }
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                Ok(splice(&p.r, None, to, None, left, flags)?)
            }) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("loopback");
        let addr = l.local_addr().expect("loopback");
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (a.expect("loopback"), b.expect("loopback").0)
    }

    #[tokio::test]
    async fn moves_bytes_both_ways_and_passes_half_close_on() {
        // client <-> (c_far | relay | n_far) <-> node
        let (mut client, c_far) = pair().await;
        let (n_far, mut node) = pair().await;
        let relay = tokio::spawn(async move { relay(&c_far, &n_far).await });
        let up: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
        let expected = up.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&up).await.expect("loopback");
            client.shutdown().await.expect("loopback");
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.expect("loopback");
            back
        });
        let mut got = Vec::new();
        node.read_to_end(&mut got).await.expect("loopback");
        assert_eq!(
            got, expected,
            "upload intact, ended by the client's half-close"
        );
        node.write_all(b"bye").await.expect("loopback");
        node.shutdown().await.expect("loopback");
        assert_eq!(writer.await.expect("writer task"), b"bye");
        let (a_to_b, b_to_a) = relay.await.expect("io").expect("a line");
        assert_eq!((a_to_b, b_to_a), (3_000_000, 3));
    }
}
