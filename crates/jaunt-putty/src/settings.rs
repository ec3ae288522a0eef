//! Saved-session and host-CA settings as PuTTY stores them: named values,
//! strings or 32-bit numbers. On Unix a file of `Key=value` lines; Jaunt
//! changes only its own keys and keeps every other line as it was.

/// A value PuTTY stores (REG_SZ or REG_DWORD on Windows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Dword(u32),
}

impl Value {
    pub fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Dword(n) => n.to_string(),
        }
    }
}

/// What a Jaunt session sets.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub host: String,
    pub port: u16,
    pub login: String,
    pub ppk_path: String,
    pub cert_path: String,
    pub proxy_host: String,
    pub proxy_port: u16,
    /// The command PuTTY runs, with `%proxyhost` etc. left for PuTTY.
    pub proxy_command: String,
    /// Put AES-GCM first in PuTTY's cipher order (where the CPU has AES
    /// instructions); otherwise the session keeps PuTTY's own order.
    pub prefer_aes_gcm: bool,
}

/// PuTTY's default cipher order (`aes,chacha20,aesgcm,...`) with AES-GCM
/// moved to the front: PuTTY's "aes" is AES-CTR with a separate MAC.
pub const CIPHERS_AES_GCM_FIRST: &str = "aesgcm,aes,chacha20,3des,WARN,des,blowfish,arcfour";

/// The values of a Jaunt session, in PuTTY's names.
pub fn session_values(s: &SessionSpec) -> Vec<(&'static str, Value)> {
    let mut values = vec![
        ("Present", Value::Dword(1)),
        ("HostName", Value::Str(s.host.clone())),
        ("PortNumber", Value::Dword(s.port as u32)),
        ("Protocol", Value::Str("ssh".into())),
        ("UserName", Value::Str(s.login.clone())),
        ("PublicKeyFile", Value::Str(s.ppk_path.clone())),
        ("DetachedCertificate", Value::Str(s.cert_path.clone())),
        ("ProxyMethod", Value::Dword(5)),
        ("ProxyHost", Value::Str(s.proxy_host.clone())),
        ("ProxyPort", Value::Dword(s.proxy_port as u32)),
        ("ProxyUsername", Value::Str(s.login.clone())),
        ("ProxyTelnetCommand", Value::Str(s.proxy_command.clone())),
        ("ProxyLogToTerm", Value::Dword(2)),
        ("AuthGSSAPI", Value::Dword(0)),
        ("AuthGSSAPIKEX", Value::Dword(0)),
    ];
    if s.prefer_aes_gcm {
        values.push(("Cipher", Value::Str(CIPHERS_AES_GCM_FIRST.into())));
    }
    values
}

/// The values of a trusted host CA entry.
pub fn host_ca_values(public_key_b64: &str, validity: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("PublicKey", Value::Str(public_key_b64.to_string())),
        ("Validity", Value::Str(validity.to_string())),
        ("PermitRSASHA1", Value::Dword(0)),
        ("PermitRSASHA256", Value::Dword(1)),
        ("PermitRSASHA512", Value::Dword(1)),
    ]
}

/// Reads a Unix settings file into ordered `(key, value)` lines.
pub fn parse_unix(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

pub fn get<'a>(lines: &'a [(String, String)], key: &str) -> Option<&'a str> {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Sets `values` in `lines` (in place where present, appended otherwise)
/// and removes `remove`; every other line stays as it was.
pub fn update_unix(
    mut lines: Vec<(String, String)>,
    values: &[(&str, Value)],
    remove: &[&str],
) -> String {
    lines.retain(|(k, _)| !remove.contains(&k.as_str()));
    for (key, value) in values {
        match lines.iter_mut().find(|(k, _)| k == key) {
            Some(line) => line.1 = value.text(),
            None => lines.push((key.to_string(), value.text())),
        }
    }
    let mut out = String::new();
    for (k, v) in lines {
        out.push_str(&k);
        out.push('=');
        out.push_str(&v);
        out.push('\n');
    }
    out
}

/// The local proxy command of a Jaunt session: `jsh` at `exe` relays
/// PuTTY's connection to the node. PuTTY on Windows reads a backslash in
/// this value as an escape, so each is doubled there; a path with spaces
/// is quoted.
pub fn proxy_command(exe: &str, cluster: &str, windows: bool) -> String {
    let exe = match windows {
        true => exe.replace('\\', "\\\\"),
        false => exe.to_string(),
    };
    let exe = match exe.contains(' ') {
        true => format!("\"{exe}\""),
        false => exe,
    };
    format!("{exe} proxy ssh --cluster={cluster} --proxy=%proxyhost:%proxyport %user@%host:%port")
}

/// The cluster a Jaunt session's proxy command names, if any.
pub fn session_cluster(lines: &[(String, String)]) -> Option<&str> {
    get(lines, "ProxyTelnetCommand")?
        .split_whitespace()
        .find_map(|word| word.strip_prefix("--cluster="))
}

/// Whether a session's settings are a Jaunt session (so Jaunt may list or
/// remove it): a local proxy command that is `... proxy ssh --cluster=`.
pub fn is_jaunt_session(lines: &[(String, String)]) -> bool {
    get(lines, "ProxyMethod") == Some("5")
        && get(lines, "ProxyTelnetCommand").is_some_and(|c| c.contains(" proxy ssh --cluster="))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SessionSpec {
        SessionSpec {
            host: "node1".into(),
            port: 3022,
            login: "alice".into(),
            ppk_path: "/h/.jsh/keys/p/alice.ppk".into(),
            cert_path: "/h/.jsh/keys/p/alice-ssh/example-cert.pub".into(),
            proxy_host: "p".into(),
            proxy_port: 3080,
            proxy_command: "/usr/bin/jsh proxy ssh --cluster=example --proxy=%proxyhost:%proxyport %user@%host:%port".into(),
            prefer_aes_gcm: false,
        }
    }

    #[test]
    fn cipher_order_only_where_asked() {
        let cipher = |v: &[(&str, Value)]| {
            v.iter()
                .find(|(k, _)| *k == "Cipher")
                .map(|(_, v)| v.text())
        };
        assert_eq!(cipher(&session_values(&spec())), None);
        let gcm = SessionSpec {
            prefer_aes_gcm: true,
            ..spec()
        };
        let order = cipher(&session_values(&gcm)).expect("a Cipher value");
        assert!(order.starts_with("aesgcm,"), "{order}");
        // PuTTY's default entries, each once, none added.
        let mut names: Vec<&str> = order.split(',').collect();
        names.sort();
        assert_eq!(
            names,
            [
                "3des", "WARN", "aes", "aesgcm", "arcfour", "blowfish", "chacha20", "des"
            ]
        );
    }

    #[test]
    fn rerun_keeps_the_users_own_settings() {
        let first = update_unix(Vec::new(), &session_values(&spec()), &[]);
        assert!(
            first.starts_with("Present=1\nHostName=node1\nPortNumber=3022\nProtocol=ssh\n"),
            "{first}"
        );
        let edited = format!("FontHeight=14\n{first}WinTitle=mine\n");
        let mut changed = spec();
        changed.port = 22;
        let again = update_unix(parse_unix(&edited), &session_values(&changed), &[]);
        assert!(again.starts_with("FontHeight=14\n"), "{again}");
        assert!(again.contains("\nPortNumber=22\n"), "{again}");
        assert!(again.ends_with("WinTitle=mine\n"), "{again}");
        assert_eq!(again.matches("PortNumber=").count(), 1);
        assert!(is_jaunt_session(&parse_unix(&again)));
        assert!(!is_jaunt_session(&parse_unix(
            "HostName=x\nProxyMethod=0\n"
        )));
    }

    #[test]
    fn proxy_commands_and_their_cluster() {
        let cases = [
            (
                "/usr/bin/jsh",
                false,
                "/usr/bin/jsh proxy ssh --cluster=example --proxy=%proxyhost:%proxyport %user@%host:%port",
            ),
            (
                r"C:\Program Files\jaunt\jsh.exe",
                true,
                r#""C:\\Program Files\\jaunt\\jsh.exe" proxy ssh --cluster=example --proxy=%proxyhost:%proxyport %user@%host:%port"#,
            ),
            (
                r"C:\jsh.exe",
                true,
                r"C:\\jsh.exe proxy ssh --cluster=example --proxy=%proxyhost:%proxyport %user@%host:%port",
            ),
        ];
        for (exe, windows, want) in cases {
            let command = proxy_command(exe, "example", windows);
            assert_eq!(command, want);
            let lines = vec![("ProxyTelnetCommand".to_string(), command)];
            assert_eq!(session_cluster(&lines), Some("example"));
        }
        assert_eq!(session_cluster(&[]), None);
        let other = vec![(
            "ProxyTelnetCommand".to_string(),
            "nc %host %port".to_string(),
        )];
        assert_eq!(session_cluster(&other), None);
    }
}
