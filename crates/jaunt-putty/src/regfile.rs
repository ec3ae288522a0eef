//! `.reg` files as `regedit` exports them: version 5.00, UTF-16LE with a
//! byte-order mark and CRLF line ends. `regedit /S` or `reg import` on
//! another machine (or for another user) then recreates Jaunt's entries.

use crate::settings::Value;

/// Where PuTTY keeps its settings, under HKEY_CURRENT_USER.
pub const PUTTY_KEY: &str = r"Software\SimonTatham\PuTTY";

/// One registry key and its values; `None` deletes the value on import
/// (a legacy value Jaunt replaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegKey {
    /// The path under HKEY_CURRENT_USER, e.g. `Software\...\Sessions\x`.
    pub path: String,
    pub values: Vec<(String, Option<Value>)>,
}

/// A value that a `.reg` file cannot carry on one line.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} contains a line break, which a .reg file cannot hold")]
pub struct RegFileError(String);

/// The file's bytes.
pub fn render(keys: &[RegKey]) -> Result<Vec<u8>, RegFileError> {
    let mut text = String::from("Windows Registry Editor Version 5.00\r\n");
    for key in keys {
        text.push_str(&format!(
            "\r\n[HKEY_CURRENT_USER\\{}]\r\n",
            check(&key.path)?
        ));
        for (name, value) in &key.values {
            let value = match value {
                None => "-".to_string(),
                Some(Value::Str(s)) => quote(check(s)?),
                Some(Value::Dword(n)) => format!("dword:{n:08x}"),
            };
            text.push_str(&format!("{}={value}\r\n", quote(check(name)?)));
        }
    }
    text.push_str("\r\n");
    let mut bytes = vec![0xff, 0xfe];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    Ok(bytes)
}

fn check(s: &str) -> Result<&str, RegFileError> {
    match s.contains(['\r', '\n']) {
        true => Err(RegFileError(s.to_string())),
        false => Ok(s),
    }
}

/// A string in `.reg` syntax: quoted, with `\` and `"` escaped.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(bytes: &[u8]) -> String {
        assert_eq!(&bytes[..2], &[0xff, 0xfe], "byte-order mark");
        let units: Vec<u16> = bytes[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).expect("utf-16")
    }

    #[test]
    fn renders_what_regedit_exports() {
        let keys = [RegKey {
            path: format!(r"{PUTTY_KEY}\Sessions\alice@node1%20[proxy:p]"),
            values: vec![
                ("PortNumber".into(), Some(Value::Dword(3022))),
                (
                    "ProxyTelnetCommand".into(),
                    Some(Value::Str(
                        r#""C:\\Program Files\\jsh.exe" proxy ssh %user@%host"#.into(),
                    )),
                ),
                ("MatchHosts".into(), None),
            ],
        }];
        let text = utf8(&render(&keys).expect("render"));
        assert_eq!(
            text,
            "Windows Registry Editor Version 5.00\r\n\r\n\
             [HKEY_CURRENT_USER\\Software\\SimonTatham\\PuTTY\\Sessions\\alice@node1%20[proxy:p]]\r\n\
             \"PortNumber\"=dword:00000bce\r\n\
             \"ProxyTelnetCommand\"=\"\\\"C:\\\\\\\\Program Files\\\\\\\\jsh.exe\\\" proxy ssh %user@%host\"\r\n\
             \"MatchHosts\"=-\r\n\r\n"
        );
    }

    #[test]
    fn refuses_line_breaks() {
        let keys = [RegKey {
            path: "Software\\x".into(),
            values: vec![("v".into(), Some(Value::Str("a\nb".into())))],
        }];
        assert!(render(&keys).is_err());
    }
}
