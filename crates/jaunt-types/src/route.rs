//! Where a connection goes: parsing `[login@]host[:port]` and choosing the
//! node it names, by the reference product's rules. Pure.

use crate::api::NodeInfo;

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub login: Option<String>,
    pub host: String,
    /// `None` or `Some(0)`: the node's registered port.
    pub port: Option<u16>,
}

/// Parses `[login@]host[:port]`; `[v6]:port` is accepted.
pub fn parse_target(text: &str) -> Result<Target, String> {
    let text = text.trim();
    let (login, rest) = match text.rsplit_once('@') {
        Some((l, r)) if !l.is_empty() => (Some(l.to_string()), r),
        Some(_) => return Err(format!("invalid target {text:?}: empty login before '@'")),
        None => (None, text),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("invalid target {text:?}: missing ']'"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            _ => (rest.to_string(), None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(format!("invalid target {text:?}: no host"));
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("invalid target {text:?}: bad port {p:?}"))?,
        ),
    };
    Ok(Target { login, host, port })
}

/// Why no single node was chosen; the texts are what users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("direct dialing to nodes not found in inventory is not supported")]
    NotFound,
    #[error("{host} matches several nodes: {candidates}; use a node's UUID instead")]
    Ambiguous { host: String, candidates: String },
    #[error("{host} listens on port {registered}, not {asked}")]
    WrongPort {
        host: String,
        registered: u16,
        asked: u16,
    },
}

fn host_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    }
}

fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Chooses the node `host:port` names among `nodes`: a UUID matches a
/// node's ID; otherwise the name or the registered address's host. A
/// trailing `.<cluster>` is ignored. An empty port or 0 means the registered
/// port; any other port must equal it.
pub fn resolve<'a>(
    nodes: &'a [NodeInfo],
    host: &str,
    port: Option<u16>,
    cluster: &str,
) -> Result<&'a NodeInfo, RouteError> {
    let suffix = format!(".{cluster}");
    let host = host.strip_suffix(&suffix).unwrap_or(host);
    let by_id: Vec<&NodeInfo> = nodes.iter().filter(|n| n.uuid == host).collect();
    let matches: Vec<&NodeInfo> = if by_id.is_empty() {
        nodes
            .iter()
            .filter(|n| n.name == host || n.addr.as_deref().map(host_of) == Some(host))
            .collect()
    } else {
        by_id
    };
    let node = match matches.as_slice() {
        [] => return Err(RouteError::NotFound),
        [one] => *one,
        many => {
            let mut names: Vec<String> = many
                .iter()
                .map(|n| format!("{} ({})", n.name, n.uuid))
                .collect();
            names.sort();
            return Err(RouteError::Ambiguous {
                host: host.to_string(),
                candidates: names.join(", "),
            });
        }
    };
    if let (Some(asked), Some(registered)) = (
        port.filter(|p| *p != 0),
        node.addr.as_deref().and_then(port_of),
    ) && asked != registered
    {
        return Err(RouteError::WrongPort {
            host: host.to_string(),
            registered,
            asked,
        });
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = |s: &str| parse_target(s);
        assert_eq!(
            t("alice@node1:3022"),
            Ok(Target {
                login: Some("alice".into()),
                host: "node1".into(),
                port: Some(3022)
            })
        );
        assert_eq!(
            t("node1"),
            Ok(Target {
                login: None,
                host: "node1".into(),
                port: None
            })
        );
        assert_eq!(
            t("a@node1:"),
            Ok(Target {
                login: Some("a".into()),
                host: "node1".into(),
                port: None
            })
        );
        assert_eq!(
            t("a@[::1]:22"),
            Ok(Target {
                login: Some("a".into()),
                host: "::1".into(),
                port: Some(22)
            })
        );
        assert_eq!(
            t("a@b@node1"),
            Ok(Target {
                login: Some("a@b".into()),
                host: "node1".into(),
                port: None
            })
        );
        for bad in ["", "@node", "a@", "a@node:x", "a@node:70000", "a@[::1"] {
            assert!(t(bad).is_err(), "{bad:?}");
        }
    }

    fn node(uuid: &str, name: &str, addr: Option<&str>) -> NodeInfo {
        NodeInfo {
            uuid: uuid.into(),
            name: name.into(),
            labels: Default::default(),
            addr: addr.map(str::to_string),
            last_seen: 0,
            sub_kind: None,
        }
    }

    #[test]
    fn routing_table() {
        let nodes = vec![
            node("u1", "node1", Some("10.0.0.1:3022")),
            node("u2", "node2", None),
            node("u3", "dup", Some("10.0.0.3:3022")),
            node("u4", "dup", Some("10.0.0.4:22")),
        ];
        let ok = |host: &str, port: Option<u16>, want: &str| {
            let got =
                resolve(&nodes, host, port, "example").unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(got.uuid, want, "{host}");
        };
        ok("node1", None, "u1");
        ok("node1", Some(0), "u1");
        ok("node1", Some(3022), "u1");
        ok("node1.example", None, "u1");
        ok("10.0.0.1", None, "u1");
        ok("u2", None, "u2");
        ok("node2", Some(22), "u2");
        ok("u4", None, "u4");
        assert_eq!(
            resolve(&nodes, "ghost", None, "example"),
            Err(RouteError::NotFound)
        );
        assert!(matches!(
            resolve(&nodes, "dup", None, "example"),
            Err(RouteError::Ambiguous { .. })
        ));
        assert!(matches!(
            resolve(&nodes, "node1", Some(22), "example"),
            Err(RouteError::WrongPort {
                registered: 3022,
                asked: 22,
                ..
            })
        ));
        assert_eq!(
            RouteError::NotFound.to_string(),
            "direct dialing to nodes not found in inventory is not supported"
        );
    }
}
