//! `jaunt configure`: a commented configuration file with every key, the
//! values given as flags and the defaults for the rest.

use crate::daemon::{DEFAULT_PORT, Defaults, FileConfig};
use jaunt_types::addr::split_host_port;
use std::path::PathBuf;

/// A commented configuration file with every key: the values given as
/// flags, the defaults for the rest.
/// `jaunt configure`'s file, with a `{key}` for each value.
const TEMPLATE: &str = include_str!("template.yaml");

pub fn configure_template(flags: &FileConfig, hostname: &str) -> String {
    let s = flags.clone();
    let q = |v: &str| format!("{v:?}");
    let opt = |v: &Option<String>| {
        v.as_deref()
            .map_or("null".to_string(), |v| format!("{v:?}"))
    };
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or("null".to_string(), |p| q(&p.display().to_string()))
    };
    let listen = s
        .listen
        .clone()
        .unwrap_or_else(|| Defaults::LISTEN.to_string());
    let public = s
        .public_addr
        .clone()
        .unwrap_or_else(|| format!("{hostname}:{DEFAULT_PORT}"));
    let cluster = s.cluster_name.clone().unwrap_or_else(|| {
        split_host_port(&public, DEFAULT_PORT)
            .map(|h| h.0)
            .unwrap_or_else(|_| hostname.to_string())
    });
    let values = [
        (
            "data_dir",
            q(&s.data_dir
                .as_ref()
                .map_or(Defaults::DATA_DIR.to_string(), |p| p.display().to_string())),
        ),
        (
            "storage_type",
            q(match s.storage_uri.as_deref() {
                Some(u) if u.starts_with("postgres") => "postgres",
                _ => "sqlite",
            }),
        ),
        ("storage_conn", opt(&s.storage_uri)),
        ("roles", q(s.roles.as_deref().unwrap_or(Defaults::ROLES))),
        ("cluster", q(&cluster)),
        ("listen", q(&listen)),
        ("public", q(&public)),
        ("peer", opt(&s.peer_addr)),
        ("diag", opt(&s.diag_addr)),
        ("cert", path(&s.tls_cert_file)),
        ("key", path(&s.tls_key_file)),
        (
            "second",
            q(s.second_factor
                .as_deref()
                .unwrap_or(Defaults::SECOND_FACTOR)),
        ),
        (
            "attempts",
            s.max_login_attempts
                .unwrap_or(Defaults::MAX_LOGIN_ATTEMPTS)
                .to_string(),
        ),
        (
            "lockout",
            q(&s.lockout_duration
                .clone()
                .unwrap_or_else(|| Defaults::LOCKOUT.to_string())),
        ),
        (
            "offline",
            q(&s.node_offline_after
                .clone()
                .unwrap_or_else(|| Defaults::NODE_OFFLINE_AFTER.to_string())),
        ),
        (
            "client_idle_timeout",
            q(s.client_idle_timeout.as_deref().unwrap_or("off")),
        ),
        (
            "shutdown_timeout",
            q(s.shutdown_timeout.as_deref().unwrap_or("30s")),
        ),
        (
            "audit_retention",
            q(s.audit_retention.as_deref().unwrap_or("365d")),
        ),
        (
            "recording_retention",
            q(s.recording_retention.as_deref().unwrap_or("90d")),
        ),
        ("recording", q(s.recording.as_deref().unwrap_or("node"))),
        ("ssh_relay", q(s.ssh_relay.as_deref().unwrap_or("raw"))),
        (
            "node_address_allow",
            q(s.node_address_allow.as_deref().unwrap_or("")),
        ),
        (
            "max_connections",
            s.max_connections
                .unwrap_or(Defaults::MAX_CONNECTIONS)
                .to_string(),
        ),
        (
            "max_connections_per_ip",
            s.max_connections_per_ip
                .unwrap_or(Defaults::MAX_CONNECTIONS_PER_IP)
                .to_string(),
        ),
        (
            "max_pending_per_ip",
            s.max_pending_per_ip
                .unwrap_or(Defaults::MAX_PENDING_PER_IP)
                .to_string(),
        ),
        (
            "log",
            q(s.log_level.as_deref().unwrap_or(Defaults::LOG_LEVEL)),
        ),
        ("log_format", q(s.log_format.as_deref().unwrap_or("text"))),
        ("token", opt(&s.token)),
        ("proxy", opt(&s.proxy)),
        ("pin", opt(&s.ca_pin)),
        ("nodename", q(s.nodename.as_deref().unwrap_or(hostname))),
        ("labels", q(s.labels.as_deref().unwrap_or(""))),
        ("ssh_listen", opt(&s.ssh_listen)),
        ("advertise", opt(&s.advertise_addr)),
        (
            "recording_disk_limit",
            q(s.recording_disk_limit.as_deref().unwrap_or("10GiB")),
        ),
    ];
    fill(TEMPLATE, &values)
}

/// The template's `{key}` places filled in one pass, so a value that
/// itself holds `{...}` stays as it is. Its text is plain YAML with
/// comments, kept in a file of its own to be read as one.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let key = &after[..close];
            let (_, value) = values.iter().find(|(k, _)| *k == key)?;
            Some((value, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::Config;
    use crate::storage::Storage;

    #[test]
    fn template_round_trips() {
        let flags = FileConfig {
            public_addr: Some("proxy.example.com:443".into()),
            data_dir: Some("/srv/jaunt".into()),
            ..Default::default()
        };
        let text = configure_template(&flags, "host1");
        let parsed = FileConfig::parse(&text, "t.yaml").expect("template parses");
        let c = Config::resolve(parsed, FileConfig::default(), "other", "t.yaml").expect("valid");
        assert_eq!(c.public_addr, "proxy.example.com:443");
        assert_eq!(c.cluster_name, "proxy.example.com");
        assert_eq!(c.data_dir, PathBuf::from("/srv/jaunt"));
        assert_eq!(
            c.storage,
            Storage::Sqlite {
                path: "/srv/jaunt/jaunt.db".into()
            }
        );
        assert!(text.contains("\nstorage:\n  type: "), "{text}");
        for key in [
            "data_dir",
            "roles",
            "cluster_name",
            "listen",
            "public_addr",
            "tls_cert_file",
            "tls_key_file",
            "second_factor",
            "max_login_attempts",
            "lockout_duration",
            "log_level",
            "log_format",
            "node_address_allow",
        ] {
            assert!(
                text.contains(&format!("\n{key}: ")),
                "{key} missing from template"
            );
        }
    }

    #[test]
    fn template_keeps_a_shared_database() {
        let flags = FileConfig {
            storage_uri: Some("postgres://jaunt@db1,db2/jaunt?sslmode=verify-full".into()),
            ..Default::default()
        };
        let text = configure_template(&flags, "host1");
        assert!(text.contains("\n  type: \"postgres\"\n"), "{text}");
        let parsed = FileConfig::parse(&text, "t.yaml").expect("template parses");
        let c = Config::resolve(parsed, FileConfig::default(), "h", "t.yaml").expect("valid");
        match c.storage {
            Storage::Postgres { conn_string, .. } => assert_eq!(
                conn_string.expose(),
                "postgres://jaunt@db1,db2/jaunt?sslmode=verify-full"
            ),
            other => panic!("{other:?}"),
        }
        let bad = FileConfig::parse("storage: {type: postgres}\n", "t.yaml").expect("parses");
        let err = Config::resolve(bad, FileConfig::default(), "h", "t.yaml").expect_err("no conn");
        assert!(err.to_string().starts_with("t.yaml: storage: "), "{err}");
    }

    #[test]
    fn template_places_are_filled_once() {
        let values = [("a", "{b}".to_string()), ("b", "x".to_string())];
        assert_eq!(super::fill("{a} {b} {c} {", &values), "{b} x {c} {");
        let text = super::configure_template(&FileConfig::default(), "host1");
        assert!(!text.contains('{'), "{text}");
        assert!(text.contains("cluster_name: \"host1\"\n"), "{text}");
    }
}
