//! PuTTY's names: how a saved session or host-CA name becomes a Unix file
//! name or a Windows registry key name, and how sessions are named.

/// Unix file names: `A-Z a-z 0-9 + - . @ _` stay; every other byte is
/// `%XX` in upper-case hex (lower case is not found by PuTTY).
pub fn escape_unix(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'@' | b'_') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`escape_unix`] (and of [`escape_registry`]); `None` for
/// a malformed escape.
pub fn unescape(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Windows registry key names (PuTTY's `mungestr`): space, `\`, `*`, `?`,
/// `%`, control and non-ASCII bytes, and a leading `.` become `%XX`.
pub fn escape_registry(name: &str) -> String {
    let mut out = String::new();
    for (i, b) in name.bytes().enumerate() {
        let escape = matches!(b, b' ' | b'\\' | b'*' | b'?' | b'%')
            || !(0x20..0x7f).contains(&b)
            || (i == 0 && b == b'.');
        if escape {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// `<login>@<host> [proxy:<proxy host>]`, or with `leaf:<leaf>,` first.
pub fn session_name(login: &str, host: &str, proxy_host: &str, leaf: Option<&str>) -> String {
    match leaf {
        Some(leaf) => format!("{login}@{host} [leaf:{leaf},proxy:{proxy_host}]"),
        None => format!("{login}@{host} [proxy:{proxy_host}]"),
    }
}

/// `JauntHostCA-<cluster>` for a cluster's first host CA key, then
/// `-1`, `-2`... for more (during a CA rotation, the new key), so the
/// first entry keeps its name through a rotation.
pub fn host_ca_name(cluster: &str, index: usize) -> String {
    match index {
        0 => format!("{HOST_CA_PREFIX}{cluster}"),
        i => format!("{HOST_CA_PREFIX}{cluster}-{i}"),
    }
}

/// How the names of the host-CA entries Jaunt writes begin.
pub const HOST_CA_PREFIX: &str = "JauntHostCA-";

/// The index of one of `cluster`'s host-CA entries, from its name: 0 for
/// `JauntHostCA-<cluster>`, `i` for `JauntHostCA-<cluster>-<i>`.
pub fn host_ca_index(cluster: &str, name: &str) -> Option<usize> {
    let rest = name.strip_prefix(HOST_CA_PREFIX)?.strip_prefix(cluster)?;
    match rest {
        "" => Some(0),
        _ => rest
            .strip_prefix('-')?
            .parse()
            .ok()
            .filter(|i| *i > 0 && !rest[1..].starts_with('0')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_escaping_as_putty_md_says() {
        let table = [
            (
                "alice@node1 [proxy:proxy.example.com]",
                "alice@node1%20%5Bproxy%3Aproxy.example.com%5D",
            ),
            ("a,b/c%d", "a%2Cb%2Fc%25d"),
            ("ok+-.@_AZaz09", "ok+-.@_AZaz09"),
            ("é", "%C3%A9"),
        ];
        for (name, want) in table {
            assert_eq!(escape_unix(name), want);
            assert_eq!(unescape(want).as_deref(), Some(name));
        }
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("%4"), None);
    }

    #[test]
    fn registry_escaping_keeps_punctuation() {
        let table = [
            (
                "alice@node1 [proxy:proxy.example.com]",
                "alice@node1%20[proxy:proxy.example.com]",
            ),
            (".hidden", "%2Ehidden"),
            ("a.b", "a.b"),
            ("x\\y*z?%", "x%5Cy%2Az%3F%25"),
            ("(a),b", "(a),b"),
        ];
        for (name, want) in table {
            assert_eq!(escape_registry(name), want, "{name}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            session_name("ubuntu", "node1", "proxy.example.com", None),
            "ubuntu@node1 [proxy:proxy.example.com]"
        );
        assert_eq!(
            session_name("ec2-user", "n", "p", Some("leaf.example")),
            "ec2-user@n [leaf:leaf.example,proxy:p]"
        );
        assert_eq!(host_ca_name("example", 0), "JauntHostCA-example");
        assert_eq!(host_ca_name("example", 1), "JauntHostCA-example-1");
        for (name, index) in [
            ("JauntHostCA-example", Some(0)),
            ("JauntHostCA-example-1", Some(1)),
            ("JauntHostCA-example-12", Some(12)),
            ("JauntHostCA-example-0", None),
            ("JauntHostCA-example-01", None),
            ("JauntHostCA-example-x", None),
            ("JauntHostCA-examples", None),
            ("JauntHostCA-example-eu", None),
            ("TeleportHostCA-example", None),
        ] {
            assert_eq!(host_ca_index("example", name), index, "{name}");
        }
    }
}
