//! Starting a process as another user. This is the one module of Jaunt with
//! unsafe code: `pre_exec` runs a closure in the forked child, and the
//! compiler cannot check what is safe there. The closure makes only
//! async-signal-safe system calls (setsid, setgroups, setgid, setuid) on
//! values computed before the fork, because the parent is multithreaded.
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
