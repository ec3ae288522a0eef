//! The raw relay. SSH is end to end encrypted and authenticated between the
//! client and the node, so once a user's dial request has been checked on
//! their TLS connection the bytes need no second layer: the proxy connects
//! to the node, hands the client a one-time ticket, and the client redeems
//! it on a plain TCP connection that the proxy relays as it is. The TLS
//! layer's encryption, the client's copy through `jsh proxy ssh` (OpenSSH
//! takes the socket itself) and most of the proxy's work leave the path.
//!
//! A ticket is the issuing instance's tag (`peers.rs`) and 128 random bits,
//! used once, valid for `TICKET_TTL`, and only from the IP address that
//! asked for it. Whoever holds a stolen ticket gets what the proxy would
//! have given: a TCP path to one node's SSH server, where a user
//! certificate is still needed to log in. A ticket that reaches another
//! instance (through a load balancer) is handed to the one that issued it.

use crate::lines::{read_line, write_json_line};
use crate::peers::{FORWARD_MAGIC, Peers, TAG_LEN};
use crate::tunnel::Tunnels;
use crate::upstream::{Upstream, log_relay, relay_tcp};
use jaunt_types::api::{DialResponse, RAW_RELAY_MAGIC, TUNNEL_DATA_MAGIC};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long a ticket can be redeemed after it was issued.
pub const TICKET_TTL: Duration = Duration::from_secs(10);
/// A ticket's length in hex characters: the tag and 128 random bits.
const TICKET_LEN: usize = TAG_LEN + 32;
/// The longest first line of a raw connection (a forward line is the
/// longest), and how long it may take.
const MAX_PREAMBLE: usize = 160;
const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Unredeemed tickets one user may hold at once: each holds a connection
/// to a node for up to `TICKET_TTL`, and a client opens one per session.
pub const MAX_PENDING_PER_USER: usize = 64;

/// A node connection waiting for its client's raw connection.
struct Pending {
    peer: IpAddr,
    /// The user it was issued to.
    user: String,
    upstream: Upstream,
    expires: Instant,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedeemError {
    #[error("unknown or already used relay ticket")]
    Unknown,
    #[error("relay ticket expired; dial again")]
    Expired,
    #[error("relay ticket was issued to another address")]
    WrongPeer,
}

pub struct Tickets {
    /// This instance's tag, the start of every ticket it issues.
    tag: String,
    ttl: Duration,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Tickets {
    pub fn new(tag: &str) -> Self {
        Tickets::with_ttl(tag, TICKET_TTL)
    }

    pub fn with_ttl(tag: &str, ttl: Duration) -> Self {
        Tickets {
            tag: tag.to_string(),
            ttl,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// How many unredeemed tickets `user` holds.
    pub fn pending_for(&self, user: &str) -> usize {
        self.pending
            .lock()
            .map(|p| p.values().filter(|t| t.user == user).count())
            .unwrap_or(0)
    }

    /// Parks `upstream` for `user`'s client at `peer`; returns its ticket.
    /// A task drops the node connection if the ticket is never redeemed.
    pub fn issue(self: &Arc<Self>, peer: IpAddr, user: &str, upstream: Upstream) -> String {
        let ticket = crate::peers::new_ticket(&self.tag);
        let pending = Pending {
            peer,
            user: user.to_string(),
            upstream,
            expires: Instant::now() + self.ttl,
        };
        if let Ok(mut p) = self.pending.lock() {
            p.insert(ticket.clone(), pending);
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let tickets = Arc::downgrade(self);
            let key = ticket.clone();
            let ttl = self.ttl;
            handle.spawn(async move {
                tokio::time::sleep(ttl).await;
                if let Some(t) = tickets.upgrade() {
                    t.take(&key);
                }
            });
        }
        ticket
    }

    fn take(&self, ticket: &str) -> Option<Pending> {
        self.pending.lock().ok().and_then(|mut p| p.remove(ticket))
    }

    /// The node connection for `ticket`, once. A ticket shown from the wrong
    /// address is spent all the same: it has leaked.
    pub fn redeem(&self, ticket: &str, peer: IpAddr) -> Result<Upstream, RedeemError> {
        let pending = self.take(ticket).ok_or(RedeemError::Unknown)?;
        if pending.peer != peer {
            return Err(RedeemError::WrongPeer);
        }
        if Instant::now() >= pending.expires {
            return Err(RedeemError::Expired);
        }
        Ok(pending.upstream)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }
}

/// What a raw connection's first line says it is.
#[derive(Debug, PartialEq, Eq)]
pub enum Preamble {
    /// A client redeeming its ticket.
    Client(String),
    /// A tunnel node's data connection for dial `id`.
    NodeData { id: u64, ticket: String },
}

/// Parses the first line (without its newline); `None` for anything else.
pub fn parse_preamble(line: &[u8]) -> Option<Preamble> {
    let ticket = |t: &[u8]| {
        (t.len() == TICKET_LEN && t.iter().all(u8::is_ascii_hexdigit))
            .then(|| String::from_utf8_lossy(t).into_owned())
    };
    if let Some(rest) = line.strip_prefix(RAW_RELAY_MAGIC) {
        return ticket(rest).map(Preamble::Client);
    }
    let rest = line.strip_prefix(TUNNEL_DATA_MAGIC)?;
    let text = std::str::from_utf8(rest).ok()?;
    let (id, t) = text.split_once(' ')?;
    Some(Preamble::NodeData {
        id: id.parse().ok()?,
        ticket: ticket(t.as_bytes())?,
    })
}

/// Serves a connection that starts with the first byte of the magics:
/// here if this instance issued its ticket, else handed to the instance
/// that did (once: a handed-over connection is never handed on).
pub async fn serve(
    mut conn: TcpStream,
    peer: SocketAddr,
    tickets: &Tickets,
    tunnels: &Tunnels,
    peers: &Peers,
) {
    let first = tokio::time::timeout(PREAMBLE_TIMEOUT, read_line(&mut conn, MAX_PREAMBLE)).await;
    let Ok(Ok(first)) = first else {
        return tracing::debug!(%peer, "no raw connection preamble");
    };
    // The client's own address: the connection's, or, for one handed over
    // by another instance, what that instance vouches for.
    let (ip, line, handed) = match first.strip_prefix(FORWARD_MAGIC) {
        Some(forward) => match peers.accept(forward, &mut conn, MAX_PREAMBLE).await {
            Some((ip, line)) => (ip, line, true),
            None => {
                return tracing::warn!(%peer, "a forward line the cluster's peer key does not vouch for");
            }
        },
        None => (peer.ip(), first, false),
    };
    let Some(preamble) = parse_preamble(&line) else {
        return tracing::debug!(%peer, "malformed raw connection preamble");
    };
    let ticket = match &preamble {
        Preamble::Client(t) | Preamble::NodeData { ticket: t, .. } => t.clone(),
    };
    if !peers.owns(&ticket) {
        if handed {
            return tracing::warn!(%peer, "a handed-over connection's ticket is not ours");
        }
        return hand_over(conn, peer, &ticket, &line, &preamble, peers).await;
    }
    let client = SocketAddr::new(ip, peer.port());
    match preamble {
        Preamble::Client(ticket) => serve_client(conn, client, &ticket, tickets).await,
        Preamble::NodeData { id, ticket } => {
            // The session waiting for it relays it from here.
            tunnels.accept_raw_data(id, &ticket, ip, conn);
        }
    }
}

/// Relays `conn` to the instance that issued its ticket.
async fn hand_over(
    mut conn: TcpStream,
    peer: SocketAddr,
    ticket: &str,
    line: &[u8],
    preamble: &Preamble,
    peers: &Peers,
) {
    match peers.connect_owner(peer, ticket, line).await {
        Ok(owner) => {
            #[cfg(target_os = "linux")]
            log_relay(peer, crate::splice::relay(&conn, &owner).await);
            #[cfg(not(target_os = "linux"))]
            {
                let mut owner = owner;
                log_relay(
                    peer,
                    tokio::io::copy_bidirectional(&mut conn, &mut owner).await,
                );
            }
        }
        Err(e) => {
            tracing::warn!(%peer, reason = %e, "raw relay refused");
            if matches!(preamble, Preamble::Client(_)) {
                let refusal = DialResponse::refused(RedeemError::Unknown.to_string());
                let _ = write_json_line(&mut conn, &refusal).await;
            }
        }
    }
}

async fn serve_client(mut client: TcpStream, peer: SocketAddr, ticket: &str, tickets: &Tickets) {
    let upstream = match tickets.redeem(ticket, peer.ip()) {
        Ok(upstream) => upstream,
        Err(e) => {
            tracing::warn!(%peer, reason = %e, "raw relay refused");
            let _ = write_json_line(&mut client, &DialResponse::refused(e.to_string())).await;
            return;
        }
    };
    if write_json_line(&mut client, &DialResponse::default())
        .await
        .is_err()
    {
        return;
    }
    relay_tcp(client, upstream, peer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Upstream {
        Upstream::Tunnel(Box::new(tokio::io::empty()))
    }

    const TAG: &str = "3f2a9c1e";
    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[tokio::test]
    async fn a_ticket_is_redeemed_once_from_its_address() {
        let t = Arc::new(Tickets::new(TAG));
        let ticket = t.issue(HOME, "alice", stream());
        assert_eq!(ticket.len(), TICKET_LEN);
        assert!(t.redeem(&ticket, HOME).is_ok());
        assert_eq!(t.redeem(&ticket, HOME).err(), Some(RedeemError::Unknown));
        assert_eq!(
            t.redeem(&format!("{TAG}{}", "0".repeat(32)), HOME).err(),
            Some(RedeemError::Unknown)
        );
    }

    #[tokio::test]
    async fn a_ticket_from_another_address_is_refused_and_spent() {
        let t = Arc::new(Tickets::new(TAG));
        let ticket = t.issue(HOME, "alice", stream());
        assert_eq!(t.redeem(&ticket, OTHER).err(), Some(RedeemError::WrongPeer));
        assert_eq!(t.redeem(&ticket, HOME).err(), Some(RedeemError::Unknown));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_ticket_is_refused_and_its_connection_dropped() {
        let t = Arc::new(Tickets::with_ttl(TAG, Duration::ZERO));
        let ticket = t.issue(HOME, "alice", stream());
        assert_eq!(t.redeem(&ticket, HOME).err(), Some(RedeemError::Expired));
        let t = Arc::new(Tickets::new(TAG));
        t.issue(HOME, "alice", stream());
        assert_eq!(t.len(), 1);
        // Paused time: this advances the clock, it does not wait.
        tokio::time::sleep(TICKET_TTL + Duration::from_millis(1)).await;
        assert_eq!(t.len(), 0, "the reaper dropped the unredeemed connection");
    }

    #[test]
    fn preambles() {
        let t = "3f2a9c1e0123456789abcdef0123456789ABCDEF";
        let client = format!("JAUNT-RELAY/1 {t}");
        assert_eq!(
            parse_preamble(client.as_bytes()),
            Some(Preamble::Client(t.into()))
        );
        let node = format!("JAUNT-TUNNEL/1 42 {t}");
        assert_eq!(
            parse_preamble(node.as_bytes()),
            Some(Preamble::NodeData {
                id: 42,
                ticket: t.into()
            })
        );
        for bad in [
            "JAUNT-RELAY/1 ".to_string(),
            format!("JAUNT-RELAY/1 {t}0"),
            format!("JAUNT-RELAY/1 {}", &t[1..]),
            format!("JAUNT-RELAY/1 {}z", &t[1..]),
            format!("JAUNT-RELAY/1  {t}"),
            format!("JAUNT-TUNNEL/1 {t}"),
            format!("JAUNT-TUNNEL/1 -1 {t}"),
            format!("JAUNT-TUNNEL/1 1 {t} "),
            format!("JAUNT-TUNNEL/1 99999999999999999999999 {t}"),
            format!("JAUNT-RELAY/2 {t}"),
            "GET / HTTP/1.1".to_string(),
        ] {
            assert_eq!(parse_preamble(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_preamble(b"JAUNT-TUNNEL/1 1 \xff\xfe"), None);
    }

    #[tokio::test]
    async fn unredeemed_tickets_are_counted_per_user() {
        let t = Arc::new(Tickets::new(TAG));
        for _ in 0..3 {
            t.issue(HOME, "alice", stream());
        }
        let bobs = t.issue(HOME, "bob", stream());
        assert_eq!((t.pending_for("alice"), t.pending_for("bob")), (3, 1));
        assert!(t.redeem(&bobs, HOME).is_ok());
        assert_eq!(t.pending_for("bob"), 0);
    }
}
