//! The client side of the admin socket: one request, one response.

use anyhow::{Context, bail};
use jaunt_types::admin::{ADMIN_SOCKET, AdminRequest, AdminResponse};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

pub struct AdminClient {
    data_dir: PathBuf,
}

impl AdminClient {
    pub fn new(data_dir: PathBuf) -> Self {
        AdminClient { data_dir }
    }

    /// Sends `req`; an `Error` response becomes an `Err` with its message.
    pub fn call(&self, req: &AdminRequest) -> anyhow::Result<AdminResponse> {
        let path = self.data_dir.join(ADMIN_SOCKET);
        let mut stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                "permission denied on {}: run jctl as the user that runs jaunt (usually root)",
                path.display()
            ),
            _ => anyhow::anyhow!(
                "cannot reach the auth service at {}: is 'jaunt start --data-dir={}' running? ({e})",
                path.display(),
                self.data_dir.display()
            ),
        })?;
        let body = serde_json::to_vec(req)?;
        stream.write_all(&body).context("sending the request")?;
        stream
            .shutdown(std::net::Shutdown::Write)
            .context("sending the request")?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .context("reading the answer")?;
        let resp: AdminResponse = serde_json::from_slice(&answer)
            .context("the auth service sent an answer jctl does not understand")?;
        if let AdminResponse::Error { message } = resp {
            bail!("{message}");
        }
        Ok(resp)
    }
}

/// An answer of an unexpected kind: a version mismatch between jctl and jaunt.
pub fn unexpected(resp: AdminResponse) -> anyhow::Error {
    anyhow::anyhow!("unexpected answer from the auth service: {resp:?}")
}
