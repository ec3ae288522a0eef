//! `direct-tcpip` (ssh -L, PuTTY's local forwards): the node connects as
//! the login user, not as itself. A helper (`jaunt forward-connect`, run as
//! the user like the SFTP server) makes the connection and passes the
//! socket back, so the socket is the user's (firewall rules by owner, and
//! the node's own network privileges, do not lend themselves to users),
//! while the bytes are copied by the node with no process in between.

use crate::os;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How long the helper may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects to `host:port` as OS user `login`.
pub async fn connect_as(
    helper: Option<&Path>,
    login: &str,
    host: &str,
    port: u16,
) -> Result<tokio::net::TcpStream, String> {
    let helper = helper.ok_or("port forwarding needs the jaunt binary as its helper")?;
    let user = os::lookup(login).map_err(|e| e.to_string())?;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(helper);
    cmd.arg("forward-connect")
        .arg(host)
        .arg(port.to_string())
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    os::spawn::as_user(&mut cmd, &user);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the helper: {e}"))?;
    // Our copy of the helper's end goes, so its exit ends the pair.
    drop(cmd);
    let out = tokio::time::timeout(
        CONNECT_TIMEOUT + Duration::from_secs(5),
        child.wait_with_output(),
    )
    .await
    .map_err(|_| "the connection took too long".to_string())?
    .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.trim().trim_start_matches("ERROR: ");
        return Err(if why.is_empty() {
            "cannot connect".into()
        } else {
            why.into()
        });
    }
    let socket = tokio::task::spawn_blocking(move || os::spawn::receive_socket(&ours))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    tokio::net::TcpStream::from_std(socket).map_err(|e| e.to_string())
}

/// The helper's side, run as the user: connects and passes the socket to
/// the node on stdout.
pub fn helper_main(host: &str, port: u16) -> std::io::Result<()> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(socket) => return jaunt_sys::stdio::pass_to_parent(socket),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{host} has no address"))))
}
