//! Handing a raw connection to the instance that issued its ticket. Behind
//! a load balancer that spreads one client's connections over the proxy
//! instances of a shared database, a client's raw relay connection (or a
//! tunnel node's data connection) may reach an instance other than the one
//! holding its node connection. Every ticket starts with its instance's
//! tag; an instance that does not hold a ticket hands the connection to the
//! instance that does, at its peer address, with a line that says where the
//! connection came from (authenticated with the cluster's peer key), and
//! then relays it as it is. A handed-over connection is never handed on.

use crate::lines::read_line;
use jaunt_auth::AuthServer;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The first line of a handed-over connection: `JAUNT-FORWARD/1 <client
/// ip> <hex HMAC-SHA-256 of "<client ip>\n<the connection's own line>">`.
pub const FORWARD_MAGIC: &[u8] = b"JAUNT-FORWARD/1 ";
/// A tag's length in hex characters: the start of every ticket.
pub const TAG_LEN: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The tag of an instance: the first hex digits of its ID.
pub fn tag_of(instance_id: &str) -> String {
    instance_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(TAG_LEN)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The cluster's peer key and this instance's tag: what writes and checks
/// forward lines.
pub struct PeerKey {
    tag: String,
    key: ring::hmac::Key,
}

impl PeerKey {
    pub fn new(instance_id: &str, key: &[u8]) -> Self {
        PeerKey {
            tag: tag_of(instance_id),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key),
        }
    }

    fn signed(ip: IpAddr, line: &[u8]) -> Vec<u8> {
        [ip.to_string().as_bytes(), b"\n", line].concat()
    }

    /// The forward line for a connection from `ip` whose own line is `line`.
    pub fn forward_line(&self, ip: IpAddr, line: &[u8]) -> Vec<u8> {
        let mac = ring::hmac::sign(&self.key, &Self::signed(ip, line));
        [
            FORWARD_MAGIC,
            format!("{ip} {}\n", hex::encode(mac.as_ref())).as_bytes(),
        ]
        .concat()
    }

    /// The client's address from a forward line (without its magic), if
    /// the line vouches for `line`.
    pub fn verify(&self, forward: &[u8], line: &[u8]) -> Option<IpAddr> {
        let text = std::str::from_utf8(forward).ok()?;
        let (ip, mac) = text.split_once(' ')?;
        let ip: IpAddr = ip.parse().ok()?;
        let mac = hex::decode(mac).ok()?;
        ring::hmac::verify(&self.key, &Self::signed(ip, line), &mac).ok()?;
        Some(ip)
    }
}

/// A fresh one-time ticket of the instance tagged `tag`: the tag, then 128
/// random bits.
pub fn new_ticket(tag: &str) -> String {
    format!("{tag}{}", jaunt_auth::records::random_token())
}

/// This instance's part in handing connections over.
pub struct Peers {
    key: PeerKey,
    auth: Arc<AuthServer>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandOverError {
    #[error("no live proxy instance issued this ticket")]
    NoInstance,
    #[error("reaching proxy instance {addr}: {reason}")]
    Connect { addr: String, reason: String },
}

impl Peers {
    pub fn new(key: PeerKey, auth: Arc<AuthServer>) -> Self {
        Peers { key, auth }
    }

    pub fn tag(&self) -> &str {
        &self.key.tag
    }

    /// Whether this instance issued `ticket`.
    pub fn owns(&self, ticket: &str) -> bool {
        ticket.starts_with(&self.key.tag)
    }

    /// After a forward line (`forward`, without its magic), reads the
    /// connection's own line; both, with the client's address, if the
    /// forward line is authentic.
    pub async fn accept(
        &self,
        forward: &[u8],
        conn: &mut TcpStream,
        max: usize,
    ) -> Option<(IpAddr, Vec<u8>)> {
        let line = read_line(conn, max).await.ok()?;
        let ip = self.key.verify(forward, &line)?;
        Some((ip, line))
    }

    /// A connection to the instance that issued `ticket`, told that `conn`
    /// (from `peer`) sent `line`: the caller relays the two.
    pub async fn connect_owner(
        &self,
        peer: SocketAddr,
        ticket: &str,
        line: &[u8],
    ) -> Result<TcpStream, HandOverError> {
        let tag = &ticket[..TAG_LEN.min(ticket.len())];
        let instance = self
            .auth
            .live_proxies()
            .await
            .into_iter()
            .find(|p| tag_of(&p.id) == tag && !p.peer_addr.is_empty())
            .ok_or(HandOverError::NoInstance)?;
        let addr = instance.peer_addr;
        let connect_err = |reason: String| HandOverError::Connect {
            addr: addr.clone(),
            reason,
        };
        let mut other = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| connect_err("timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = other.set_nodelay(true);
        let mut head = self.key.forward_line(peer.ip(), line);
        head.extend_from_slice(line);
        head.push(b'\n');
        other
            .write_all(&head)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_lines_vouch_for_one_address_and_line() {
        let a = PeerKey::new("3f2a9c1e-77b0", b"cluster peer key");
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let line = b"JAUNT-RELAY/1 3f2a9c1e0123456789abcdef0123456789abcdef";
        let forward = a.forward_line(ip, line);
        let rest = forward
            .strip_prefix(FORWARD_MAGIC)
            .and_then(|r| r.strip_suffix(b"\n"))
            .expect("a forward line");
        assert_eq!(a.verify(rest, line), Some(ip));
        // Another line, another address, another key: refused.
        assert_eq!(a.verify(rest, b"JAUNT-RELAY/1 other"), None);
        let text = String::from_utf8_lossy(rest).replace("203.0.113.7", "203.0.113.8");
        assert_eq!(a.verify(text.as_bytes(), line), None);
        let b = PeerKey::new("3f2a9c1e-77b0", b"another cluster");
        assert_eq!(b.verify(rest, line), None);
        assert_eq!(a.verify(b"not a forward line", line), None);
    }

    #[test]
    fn tags_are_the_ids_first_hex_digits() {
        assert_eq!(tag_of("3F2a9c1e-77b0-4c1d-9e2f-0123456789ab"), "3f2a9c1e");
        assert_eq!(tag_of("ab-cd-ef-01-23"), "abcdef01");
    }
}
