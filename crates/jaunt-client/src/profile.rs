//! A profile: what `jsh` remembers about one proxy it logged in to.

use jaunt_types::addr::split_host_port;
use serde::{Deserialize, Serialize};

/// The proxy's port when a user gives only a host.
pub const DEFAULT_PROXY_PORT: u16 = 3080;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `host:port` of the proxy.
    pub web_proxy_addr: String,
    pub user: String,
    pub cluster: String,
    /// Remembered `--ca-pin`, checked on every later connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pin: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub logins: Vec<String>,
    /// Unix seconds.
    pub valid_until: i64,
}

impl Profile {
    /// The profile's name: the proxy's host (keys live under it).
    pub fn name(&self) -> String {
        proxy_host(&self.web_proxy_addr)
    }
}

/// Normalizes `host[:port]` to `host:port`, with the default port.
pub fn normalize_proxy(addr: &str) -> Result<String, String> {
    let addr = addr
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let (host, port) = split_host_port(addr, DEFAULT_PROXY_PORT)
        .map_err(|e| format!("invalid --proxy {addr:?}: {e}"))?;
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// The host part of a normalized `host:port`.
pub fn proxy_host(addr: &str) -> String {
    split_host_port(addr, DEFAULT_PROXY_PORT)
        .map(|(h, _)| h)
        .unwrap_or_else(|_| addr.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies() {
        assert_eq!(
            normalize_proxy("proxy.example.com"),
            Ok("proxy.example.com:3080".into())
        );
        assert_eq!(
            normalize_proxy("https://proxy.example.com:443/"),
            Ok("proxy.example.com:443".into())
        );
        assert_eq!(normalize_proxy("[::1]:3080"), Ok("[::1]:3080".into()));
        assert!(normalize_proxy("").is_err());
        assert!(normalize_proxy("a:b").is_err());
        assert_eq!(proxy_host("proxy.example.com:3080"), "proxy.example.com");
        assert_eq!(proxy_host("[::1]:3080"), "::1");
    }
}
