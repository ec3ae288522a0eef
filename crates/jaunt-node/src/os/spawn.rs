//! Starting a process as another user, and taking a connection it made.
//! This is the one module of Jaunt with unsafe code: `pre_exec` runs a
//! closure in the forked child, and the compiler cannot check what is safe
//! there; a descriptor a child passes back arrives as a bare number. The closure makes only
//! async-signal-safe system calls (setsid, setgroups, setgid, setuid,
//! close_range, getrlimit, fcntl) on values computed before the fork,
//! because the parent is multithreaded.
//!
//! The child keeps only its standard input, output and error: every other
//! descriptor it inherited is closed at exec. The node holds other users'
//! terminals (PTY masters that pty-process opens without `O_CLOEXEC`),
//! sockets and files; none of them may reach a user's process.
#![allow(unsafe_code)]

use super::OsUser;
use nix::unistd::{geteuid, setgid, setgroups, setsid, setuid};

/// The child-side privilege drop: supplementary groups, then group, then
/// user (after setuid the others are no longer allowed).
fn drop_privileges(
    user: &OsUser,
    new_session: bool,
) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
    let groups = user.groups.clone();
    let (uid, gid) = (user.uid, user.gid);
    let switch = geteuid().is_root();
    move || {
        close_inherited_at_exec()?;
        if new_session {
            setsid().map_err(std::io::Error::from)?;
        }
        if switch {
            setgroups(&groups).map_err(std::io::Error::from)?;
            setgid(gid).map_err(std::io::Error::from)?;
            setuid(uid).map_err(std::io::Error::from)?;
        }
        Ok(())
    }
}

/// Marks every descriptor above standard error close-on-exec, in the
/// child: only marking (not closing) leaves the descriptors the spawning
/// code still uses until exec (std's exec-error pipe, the terminal before
/// it becomes 0-2) working.
fn close_inherited_at_exec() -> std::io::Result<()> {
    // SAFETY: close_range takes no pointers; it is a plain system call.
    let marked =
        unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if marked == 0 {
        return Ok(());
    }
    // Kernels before 5.11: one fcntl per possible descriptor.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only to the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let top = limit.rlim_cur.min(1 << 20) as libc::c_int;
    for fd in 3..top {
        // SAFETY: fcntl on a descriptor number; an unused one fails
        // harmlessly with EBADF.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Ok(())
}

/// Makes `cmd` run as `user` in a new session (no terminal).
pub fn as_user(cmd: &mut tokio::process::Command, user: &OsUser) {
    let f = drop_privileges(user, true);
    // SAFETY: the closure only makes async-signal-safe system calls with
    // data captured before the fork (see the module comment).
    unsafe {
        cmd.pre_exec(f);
    }
}

/// Makes a PTY command run as `user`; pty-process itself makes the child a
/// session leader with the terminal as its controlling terminal.
pub fn pty_as_user(cmd: pty_process::Command, user: &OsUser) -> pty_process::Command {
    let f = drop_privileges(user, false);
    // SAFETY: as above.
    unsafe { cmd.pre_exec(f) }
}

/// Receives the one TCP socket a child passed (SCM_RIGHTS, as
/// `jaunt_sys::stdio::pass_to_parent` sends it) on `pair`, whose other end
/// was the child's stdout.
pub fn receive_socket(
    pair: &std::os::unix::net::UnixStream,
) -> std::io::Result<std::net::TcpStream> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut byte = [0u8; 1];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let msg = recvmsg::<()>(
        pair.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel has just installed this descriptor in our
            // table for this message alone (SCM_RIGHTS, close-on-exec):
            // nothing else owns it.
            return Ok(unsafe { std::net::TcpStream::from_raw_fd(*fd) });
        }
    }
    Err(std::io::Error::other("the helper passed no connection"))
}
