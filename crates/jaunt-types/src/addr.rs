//! Network addresses as people write them: `host[:port]`, and which
//! addresses the proxy may dial for a node ([`DialPolicy`]).

use ipnet::IpNet;
use std::net::IpAddr;

/// Splits `host[:port]`, accepting `[v6]:port`; the port defaults to `default_port`.
pub fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty address".into());
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("missing ']' in IPv6 address")?;
        match after.strip_prefix(':') {
            Some(p) => (h.to_string(), Some(p)),
            None if after.is_empty() => (h.to_string(), None),
            None => return Err(format!("unexpected {after:?} after ']'")),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            Some(_) => return Err("write IPv6 addresses as [addr]:port".into()),
            None => (text.to_string(), None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("invalid port {p:?}"))?,
        None => default_port,
    };
    if port == 0 {
        return Err("port 0 cannot be reached by clients".into());
    }
    Ok((host, port))
}

/// A URI (`scheme://user:password@hosts/...`) with its password replaced
/// by `***`, for messages and logs.
pub fn without_password(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((user, hosts)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{hosts}{tail}")
        }
        _ => uri.to_string(),
    }
}

/// `host[:port]` written out in full, `[v6]:port` for IPv6 hosts.
pub fn with_default_port(text: &str, default_port: u16) -> Result<String, String> {
    let (host, port) = split_host_port(text, default_port)?;
    Ok(match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    })
}

/// Which addresses the proxy may dial for a direct-mode node. A node says
/// where it is; without a check, a node (or whoever holds its identity)
/// could have the proxy open connections to anything the proxy reaches:
/// its own loopback services, a cloud metadata address, the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialPolicy {
    /// `node_address_allow`: only these networks. `None`: the default.
    allow: Option<Vec<IpNet>>,
    /// The default lets loopback through when the proxy itself listens on
    /// it (one machine: a demo, tests), as a node there can only be local.
    loopback_ok: bool,
}

impl DialPolicy {
    /// `allow` is `node_address_allow`'s CIDRs (`10.0.0.0/8,fd00::/8`; a
    /// bare address is one host); empty means the default.
    pub fn new(allow: &str, proxy_listens_on: IpAddr) -> Result<Self, String> {
        let nets = allow
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.parse::<IpNet>()
                    .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| format!("{c:?} is not a network like 10.0.0.0/8 or an address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DialPolicy {
            allow: (!nets.is_empty()).then_some(nets),
            loopback_ok: proxy_listens_on.is_loopback(),
        })
    }

    /// Whether the proxy may connect to `ip` for a node.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if let Some(nets) = &self.allow {
            return nets.iter().any(|n| n.contains(&ip));
        }
        let link_local = match ip {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        };
        !(ip.is_unspecified()
            || ip.is_multicast()
            || link_local
            || is_broadcast(ip)
            || (ip.is_loopback() && !self.loopback_ok))
    }
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_shown() {
        assert_eq!(
            without_password("postgres://jaunt:s3cret@db1,db2/jaunt?sslmode=require"),
            "postgres://jaunt:***@db1,db2/jaunt?sslmode=require"
        );
        assert_eq!(
            without_password("postgres://jaunt@db/j"),
            "postgres://jaunt@db/j"
        );
        assert_eq!(without_password("postgres://db/j"), "postgres://db/j");
        assert_eq!(
            without_password("sqlite:/var/lib/jaunt"),
            "sqlite:/var/lib/jaunt"
        );
    }

    #[test]
    fn addresses_get_their_default_port() {
        for (text, want) in [
            ("db1", Ok("db1:22".to_string())),
            ("db1:2222", Ok("db1:2222".to_string())),
            ("10.0.0.5", Ok("10.0.0.5:22".to_string())),
            ("[::1]", Ok("[::1]:22".to_string())),
            ("[::1]:23", Ok("[::1]:23".to_string())),
            (
                "db1:0",
                Err("port 0 cannot be reached by clients".to_string()),
            ),
        ] {
            assert_eq!(with_default_port(text, 22), want, "{text}");
        }
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a.b", 3080), Ok(("a.b".into(), 3080)));
        assert_eq!(split_host_port("a.b:443", 3080), Ok(("a.b".into(), 443)));
        assert_eq!(split_host_port("[::1]:22", 3080), Ok(("::1".into(), 22)));
        assert!(split_host_port("::1", 3080).is_err());
        assert!(split_host_port("", 3080).is_err());
        assert!(split_host_port("a:0", 3080).is_err());
    }

    #[test]
    fn dial_policy_by_default_and_by_list() {
        let public: IpAddr = "0.0.0.0".parse().expect("ip");
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let default = DialPolicy::new("", public).expect("default");
        let on_loopback = DialPolicy::new(" ", local).expect("default");
        let listed = DialPolicy::new("10.0.0.0/8, 192.168.1.7, fd00::/8", public).expect("list");
        for (ip, by_default, on_lo, by_list) in [
            ("10.1.2.3", true, true, true),
            ("192.168.1.7", true, true, true),
            ("192.168.1.8", true, true, false),
            ("203.0.113.5", true, true, false),
            ("127.0.0.1", false, true, false),
            ("127.8.8.8", false, true, false),
            ("::1", false, true, false),
            ("::ffff:127.0.0.1", false, true, false),
            ("169.254.169.254", false, false, false),
            ("fe80::1", false, false, false),
            ("0.0.0.0", false, false, false),
            ("255.255.255.255", false, false, false),
            ("224.0.0.1", false, false, false),
            ("fd00::5", true, true, true),
            ("::ffff:10.0.0.1", true, true, true),
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(default.permits(ip), by_default, "default {ip}");
            assert_eq!(on_loopback.permits(ip), on_lo, "proxy on loopback {ip}");
            assert_eq!(listed.permits(ip), by_list, "list {ip}");
        }
        let err = DialPolicy::new("10.0.0.0/33", public).expect_err("bad");
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(DialPolicy::new("example.com", public).is_err());
    }
}
