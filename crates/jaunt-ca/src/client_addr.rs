//! The client's address, as the proxy tells a node. A node behind the
//! proxy sees the proxy's address on every connection; the proxy puts one
//! line before the SSH bytes: `JAUNT-CLIENT/1 <ip:port> <unix time> <mac>`,
//! the MAC an HMAC-SHA-256 over the node's UUID, the address and the time
//! with a key that auth derives for that node alone from a cluster secret.
//! A client cannot forge it (it has no key), and a compromised node only
//! learns its own key, so it cannot vouch for addresses to other nodes.
//! Pure: the key and the time come from the caller.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::SocketAddr;

/// How the line starts (never an SSH banner's first byte, `S`).
pub const CLIENT_ADDR_MAGIC: &[u8] = b"JAUNT-CLIENT/1 ";
/// The longest line accepted, newline included.
pub const MAX_CLIENT_LINE: usize = 256;
/// How far the line's time may be from the node's clock.
const MAX_SKEW_SECS: i64 = 120;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientAddrError {
    #[error("malformed client address line")]
    Malformed,
    #[error("the client address line is not the proxy's (bad MAC)")]
    BadMac,
    #[error("the client address line is {0} s away from this node's clock")]
    Stale(i64),
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// The key for node `uuid`, from the cluster's secret.
pub fn node_key(cluster_secret: &[u8], uuid: &str) -> Vec<u8> {
    let mut m = mac(cluster_secret);
    m.update(b"jaunt-client-addr/1\0");
    m.update(uuid.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn tag(key: &[u8], uuid: &str, client: &str, time: i64) -> Hmac<Sha256> {
    let mut m = mac(key);
    for part in [
        uuid.as_bytes(),
        client.as_bytes(),
        time.to_string().as_bytes(),
    ] {
        m.update(&(part.len() as u32).to_be_bytes());
        m.update(part);
    }
    m
}

/// The line (with its newline) telling node `uuid` that `client` connects.
pub fn client_line(key: &[u8], uuid: &str, client: SocketAddr, now: i64) -> String {
    let client = client.to_string();
    let mac = hex::encode(tag(key, uuid, &client, now).finalize().into_bytes());
    format!(
        "{}{client} {now} {mac}\n",
        String::from_utf8_lossy(CLIENT_ADDR_MAGIC)
    )
}

/// The client address a line (without its newline) vouches for, if it is
/// node `uuid`'s, by `key`, and of about `now`.
pub fn verify_client_line(
    key: &[u8],
    uuid: &str,
    line: &[u8],
    now: i64,
) -> Result<SocketAddr, ClientAddrError> {
    let rest = line
        .strip_prefix(CLIENT_ADDR_MAGIC)
        .ok_or(ClientAddrError::Malformed)?;
    let text = std::str::from_utf8(rest).map_err(|_| ClientAddrError::Malformed)?;
    let mut parts = text.split(' ');
    let (Some(client), Some(time), Some(mac_hex), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ClientAddrError::Malformed);
    };
    let addr: SocketAddr = client.parse().map_err(|_| ClientAddrError::Malformed)?;
    let time: i64 = time.parse().map_err(|_| ClientAddrError::Malformed)?;
    let given = hex::decode(mac_hex).map_err(|_| ClientAddrError::Malformed)?;
    // Compared in constant time by the hmac crate.
    tag(key, uuid, client, time)
        .verify_slice(&given)
        .map_err(|_| ClientAddrError::BadMac)?;
    let skew = now.saturating_sub(time);
    if skew.abs() > MAX_SKEW_SECS {
        return Err(ClientAddrError::Stale(skew));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn line_of(key: &[u8], uuid: &str, client: &str, now: i64) -> Vec<u8> {
        let mut l = client_line(key, uuid, client.parse().expect("addr"), now).into_bytes();
        assert_eq!(l.pop(), Some(b'\n'));
        l
    }

    #[test]
    fn a_line_vouches_for_its_address_to_its_node_only() {
        let secret = b"cluster secret";
        let (a, b) = (node_key(secret, "node-a"), node_key(secret, "node-b"));
        assert_ne!(a, b, "each node its own key");
        let line = line_of(&a, "node-a", "198.51.100.7:50122", NOW);
        assert_eq!(
            verify_client_line(&a, "node-a", &line, NOW + 5),
            Ok("198.51.100.7:50122".parse().expect("addr"))
        );
        let v6 = line_of(&a, "node-a", "[2001:db8::1]:443", NOW);
        assert!(verify_client_line(&a, "node-a", &v6, NOW).is_ok());
        // Node b's key, or the line replayed at node b: refused.
        assert_eq!(
            verify_client_line(&b, "node-b", &line, NOW),
            Err(ClientAddrError::BadMac)
        );
        assert_eq!(
            verify_client_line(&a, "node-b", &line, NOW),
            Err(ClientAddrError::BadMac)
        );
        // Another address under the same MAC.
        let text = String::from_utf8(line.clone()).expect("text");
        let forged = text.replace("198.51.100.7", "198.51.100.8");
        assert_eq!(
            verify_client_line(&a, "node-a", forged.as_bytes(), NOW),
            Err(ClientAddrError::BadMac)
        );
        assert_eq!(
            verify_client_line(&a, "node-a", &line, NOW + 600),
            Err(ClientAddrError::Stale(600))
        );
        for bad in [
            &b"SSH-2.0-OpenSSH_9.2"[..],
            b"JAUNT-CLIENT/1 ",
            b"JAUNT-CLIENT/1 a b c",
            b"JAUNT-CLIENT/1 1.2.3.4:5 6 zz",
            b"JAUNT-CLIENT/1 1.2.3.4:5 6 00 extra",
        ] {
            assert_eq!(
                verify_client_line(&a, "node-a", bad, NOW),
                Err(ClientAddrError::Malformed),
                "{bad:?}"
            );
        }
        assert!(
            client_line(
                &a,
                "node-a",
                "[2001:db8::1]:65535".parse().expect("addr"),
                i64::MAX
            )
            .len()
                <= MAX_CLIENT_LINE
        );
    }
}
