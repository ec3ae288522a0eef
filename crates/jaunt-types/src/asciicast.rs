//! asciicast v2, the recording format stock `asciinema play` plays: a
//! header line, then one JSON line per event (`[seconds, "o", text]` for
//! output, `"r"` for a resize). Pure: the caller says when each event
//! happened and where the lines go (the node's disk, the proxy's pieces to
//! auth).

use crate::audit::RecordingMeta;

/// The header's fields in the format's order.
#[derive(serde::Serialize)]
struct Header<'a> {
    version: u8,
    width: u16,
    height: u16,
    timestamp: i64,
    title: String,
    env: std::collections::BTreeMap<&'a str, &'a str>,
}

/// The first line of a recording (with its newline).
pub fn header(meta: &RecordingMeta, cols: u16, rows: u16, term: &str) -> String {
    let header = Header {
        version: 2,
        width: cols,
        height: rows,
        timestamp: meta.start,
        title: format!("{}@{} ({})", meta.login, meta.node, meta.user),
        env: [("TERM", term)].into(),
    };
    // Serializing plain strings and numbers cannot fail.
    let text = serde_json::to_string(&header).unwrap_or_default();
    format!("{text}\n")
}

fn line(at_secs: f64, kind: &str, data: &str) -> String {
    let text = serde_json::to_string(&(at_secs, kind, data)).unwrap_or_default();
    format!("{text}\n")
}

/// Turns a terminal's output, read in arbitrary pieces, into event lines.
#[derive(Default)]
pub struct Encoder {
    /// The start of a UTF-8 character split across two reads.
    partial: Vec<u8>,
}

impl Encoder {
    /// The output line for `data` read `at_secs` into the session; `None`
    /// when it holds only the start of a character (kept for the next).
    pub fn output(&mut self, at_secs: f64, data: &[u8]) -> Option<String> {
        let mut bytes = std::mem::take(&mut self.partial);
        bytes.extend_from_slice(data);
        let text = match std::str::from_utf8(&bytes) {
            Ok(s) => s.to_string(),
            Err(e) if e.error_len().is_none() => {
                // Incomplete character at the end: keep it for the next read.
                let (ok, rest) = bytes.split_at(e.valid_up_to());
                self.partial = rest.to_vec();
                String::from_utf8_lossy(ok).into_owned()
            }
            Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
        };
        (!text.is_empty()).then(|| line(at_secs, "o", &text))
    }

    /// The resize line.
    pub fn resize(&self, at_secs: f64, cols: u16, rows: u16) -> String {
        line(at_secs, "r", &format!("{cols}x{rows}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_split_across_reads_are_joined() {
        let mut e = Encoder::default();
        let euro = "€".as_bytes();
        assert_eq!(e.output(0.5, &euro[..1]), None);
        assert_eq!(
            e.output(0.75, &euro[1..]),
            Some("[0.75,\"o\",\"€\"]\n".into())
        );
        // Bytes that can never be UTF-8 are replaced, not kept forever.
        assert_eq!(
            e.output(1.0, &[0xff, b'a']),
            Some("[1.0,\"o\",\"\u{fffd}a\"]\n".into())
        );
        assert_eq!(e.resize(2.0, 80, 24), "[2.0,\"r\",\"80x24\"]\n");
    }

    #[test]
    fn the_header_names_the_session() {
        let meta = RecordingMeta {
            session_id: "s".into(),
            user: "alice".into(),
            login: "root".into(),
            node: "web".into(),
            node_uuid: None,
            start: 1_700_000_000,
            end: None,
            size: 0,
            truncated: false,
        };
        assert_eq!(
            header(&meta, 80, 24, "xterm"),
            "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":1700000000,\"title\":\"root@web (alice)\",\"env\":{\"TERM\":\"xterm\"}}\n"
        );
    }
}
