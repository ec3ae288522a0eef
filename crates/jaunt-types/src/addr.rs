//! Network addresses as people write them: `host[:port]`.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("a.b", 3080), Ok(("a.b".into(), 3080)));
        assert_eq!(split_host_port("a.b:443", 3080), Ok(("a.b".into(), 443)));
        assert_eq!(split_host_port("[::1]:22", 3080), Ok(("::1".into(), 22)));
        assert!(split_host_port("::1", 3080).is_err());
        assert!(split_host_port("", 3080).is_err());
        assert!(split_host_port("a:0", 3080).is_err());
    }
}
