//! How jctl reaches the auth service: the admin socket in the data
//! directory (on the auth host, as the daemon's user), or the proxy's API
//! with the administrator's `jsh login` identity (`--proxy`), where the
//! user's roles decide. One request, one response either way.

use anyhow::{Context, bail};
use jaunt_types::admin::{ADMIN_SOCKET, AdminRequest, AdminResponse, PATH_ADMIN};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

pub enum AdminClient {
    Socket {
        data_dir: PathBuf,
    },
    /// `host:port` of the proxy, as `jsh login --proxy` was given it.
    Remote {
        proxy: String,
    },
}

impl AdminClient {
    /// Sends `req`; an `Error` response becomes an `Err` with its message.
    pub fn call(&self, req: &AdminRequest) -> anyhow::Result<AdminResponse> {
        let resp = match self {
            AdminClient::Socket { data_dir } => Self::call_socket(data_dir, req)?,
            AdminClient::Remote { proxy } => Self::call_remote(proxy, req)?,
        };
        if let AdminResponse::Error { message } = resp {
            bail!("{message}");
        }
        Ok(resp)
    }

    /// Through the proxy, with the profile `jsh login --proxy=PROXY` saved
    /// (its certificate must still be valid).
    fn call_remote(proxy: &str, req: &AdminRequest) -> anyhow::Result<AdminResponse> {
        let home = jaunt_client::home::Home::from_env()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let (_, client) = jaunt_client::login::logged_in_client(&home, Some(proxy))?;
            Ok(client.post(PATH_ADMIN, req).await?)
        })
    }

    fn call_socket(
        data_dir: &std::path::Path,
        req: &AdminRequest,
    ) -> anyhow::Result<AdminResponse> {
        let path = data_dir.join(ADMIN_SOCKET);
        let mut stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                "permission denied on {}: run jctl as the user that runs jaunt (usually root)",
                path.display()
            ),
            _ => anyhow::anyhow!(
                "cannot reach the auth service at {}: is 'jaunt start --data-dir={}' running? (or use --proxy=HOST:PORT after 'jsh login') ({e})",
                path.display(),
                data_dir.display()
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
        serde_json::from_slice(&answer)
            .context("the auth service sent an answer jctl does not understand")
    }
}

/// An answer of an unexpected kind: a version mismatch between jctl and jaunt.
pub fn unexpected(resp: AdminResponse) -> anyhow::Error {
    anyhow::anyhow!("unexpected answer from the auth service: {resp:?}")
}
