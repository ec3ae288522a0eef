//! The operating system side of a session: who a login is, and starting
//! processes as that user.
//!
//! Architecture Invariant: only this crate runs processes as other users.

pub mod spawn;

use nix::unistd::{Gid, Uid, User, geteuid};
use std::ffi::CString;
use std::path::PathBuf;

/// An OS account a session runs as.
#[derive(Debug, Clone)]
pub struct OsUser {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    /// Supplementary groups, looked up before any fork.
    pub groups: Vec<Gid>,
    pub home: PathBuf,
    pub shell: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("user {0:?} does not exist on this node")]
    NoSuchUser(String),
    #[error(
        "this node runs as {running:?} and can only serve that login, not {login:?} (start it as root to serve every login)"
    )]
    NotRoot { running: String, login: String },
    #[error("looking up user {0:?}: {1}")]
    Lookup(String, String),
}

/// Finds `login` and checks this process can become it.
pub fn lookup(login: &str) -> Result<OsUser, LoginError> {
    let user = User::from_name(login)
        .map_err(|e| LoginError::Lookup(login.to_string(), e.to_string()))?
        .ok_or_else(|| LoginError::NoSuchUser(login.to_string()))?;
    let me = geteuid();
    if !me.is_root() && user.uid != me {
        let running = User::from_uid(me)
            .ok()
            .flatten()
            .map_or_else(|| me.to_string(), |u| u.name);
        return Err(LoginError::NotRoot {
            running,
            login: login.to_string(),
        });
    }
    let cname =
        CString::new(login).map_err(|e| LoginError::Lookup(login.to_string(), e.to_string()))?;
    let groups = if me.is_root() {
        nix::unistd::getgrouplist(&cname, user.gid)
            .map_err(|e| LoginError::Lookup(login.to_string(), e.to_string()))?
    } else {
        Vec::new()
    };
    let shell = if user.shell.as_os_str().is_empty() {
        PathBuf::from("/bin/sh")
    } else {
        user.shell.clone()
    };
    Ok(OsUser {
        name: user.name,
        uid: user.uid,
        gid: user.gid,
        groups,
        home: user.dir,
        shell,
    })
}
