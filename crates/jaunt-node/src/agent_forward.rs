//! SSH agent forwarding: a socket only the login user can reach, whose
//! every connection becomes an `auth-agent@openssh.com` channel back to the
//! client. Removed when the SSH connection ends.

use crate::os::OsUser;
use std::path::{Path, PathBuf};

pub struct AgentForward {
    dir: PathBuf,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl AgentForward {
    /// Creates the socket for `user` and starts relaying to `handle`.
    pub fn start(user: &OsUser, handle: russh::server::Handle) -> std::io::Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = std::env::temp_dir().join(format!("jaunt-agent-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let socket = dir.join("agent.sock");
        let listener = tokio::net::UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        if nix::unistd::geteuid().is_root() {
            let (uid, gid) = (Some(user.uid.as_raw()), Some(user.gid.as_raw()));
            std::os::unix::fs::chown(&dir, uid, gid)?;
            std::os::unix::fs::chown(&socket, uid, gid)?;
        }
        let task = tokio::spawn(async move {
            while let Ok((mut local, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    match handle.channel_open_agent().await {
                        Ok(channel) => {
                            let mut remote = channel.into_stream();
                            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "the client refused an agent channel")
                        }
                    }
                });
            }
        });
        Ok(AgentForward { dir, socket, task })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for AgentForward {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
