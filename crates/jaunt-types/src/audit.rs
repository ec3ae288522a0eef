//! Audit events: their names and codes (the reference product's, so
//! existing log tooling reads ours), the event record, the query `jctl
//! audit ls` sends, and the one-line text form. Active sessions and
//! recordings' metadata live here too: they share the session ID.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The events a node writes (besides `sftp`); the rest of the catalogue is
/// auth's own, and auth refuses them from a node, which could otherwise
/// forge logins, certificates or administrative changes in the log.
const NODE_EVENTS: &[&str] = &[
    "session.start",
    "resize",
    "session.end",
    "subsystem",
    "exec",
    "port",
    "client.disconnect",
    "auth",
];

/// Whether a node may report an event of this name.
pub fn node_may_write(event: &str) -> bool {
    event == "sftp" || NODE_EVENTS.contains(&event)
}

/// Every event name Jaunt writes, with its code's stem; the code ends in
/// `I` (success) or the failure letter.
const CATALOGUE: &[(&str, &str, char)] = &[
    ("user.login", "T1000", 'W'),
    ("user.create", "T1002", 'E'),
    ("user.update", "T1003", 'E'),
    ("user.delete", "T1004", 'E'),
    // Jaunt's own: an account locked out by failed logins (the reference
    // product's TLK codes are its locks').
    ("user.locked", "TLK10", 'W'),
    ("lock.created", "TLK00", 'E'),
    ("lock.deleted", "TLK01", 'E'),
    ("role.created", "T9000", 'E'),
    ("role.deleted", "T9001", 'E'),
    ("join_token.create", "TJT00", 'E'),
    ("trusted_cluster.create", "T7000", 'E'),
    ("trusted_cluster.delete", "T7001", 'E'),
    ("trusted_cluster_token.create", "T7002", 'E'),
    ("node.join", "TJ002", 'E'),
    ("node.delete", "TJ003", 'E'),
    ("cert.create", "TC000", 'E'),
    // Jaunt's own: a CA rotation's phase changed (`jctl auth rotate`, or
    // an automatic rotation moving on).
    ("cert.rotate", "TCA01", 'E'),
    ("session.start", "T2000", 'E'),
    ("resize", "T2002", 'E'),
    ("session.end", "T2004", 'E'),
    ("subsystem", "T3001", 'E'),
    ("exec", "T3002", 'E'),
    ("port", "T3003", 'E'),
    ("client.disconnect", "T3006", 'E'),
    ("auth", "T3007", 'W'),
];

/// SFTP actions, in the order of their codes TS001 ... TS019.
pub const SFTP_ACTIONS: &[&str] = &[
    "open", "close", "read", "write", "lstat", "fstat", "setstat", "fsetstat", "opendir",
    "readdir", "remove", "mkdir", "rmdir", "realpath", "stat", "rename", "readlink", "symlink",
    "link",
];

/// The code of an event; `None` for a name Jaunt does not write.
pub fn code(event: &str, success: bool) -> Option<String> {
    let (_, stem, fail) = CATALOGUE.iter().find(|(n, _, _)| *n == event)?;
    Some(format!("{stem}{}", if success { 'I' } else { *fail }))
}

/// The code of an SFTP action's event (`sftp`).
pub fn sftp_code(action: &str, success: bool) -> Option<String> {
    let i = SFTP_ACTIONS.iter().position(|a| *a == action)?;
    Some(format!("TS{:03}{}", i + 1, if success { 'I' } else { 'E' }))
}

/// One SFTP file operation, as a node's SFTP server or the proxy (for an
/// agentless node) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftpOp {
    /// One of [`SFTP_ACTIONS`].
    pub action: String,
    pub path: String,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every event name, for `--type` checks.
pub fn names() -> impl Iterator<Item = &'static str> {
    CATALOGUE
        .iter()
        .map(|(n, _, _)| *n)
        .chain(std::iter::once("sftp"))
}

/// A counter for [`AuditEvent::seq`]: starts at the current Unix
/// nanoseconds (given by the caller), so it keeps growing across restarts.
#[derive(Debug)]
pub struct Sequence(std::sync::atomic::AtomicU64);

impl Sequence {
    pub fn starting_at(unix_nanos: u64) -> Self {
        Sequence(std::sync::atomic::AtomicU64::new(unix_nanos))
    }

    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique; a retried delivery carries the same ID (and is stored once).
    pub id: String,
    /// Unix milliseconds.
    pub time: i64,
    /// Orders the events of one emitter within a millisecond (a counter
    /// that only grows, also across restarts).
    #[serde(default)]
    pub seq: u64,
    /// Unix milliseconds when auth received it, for an event a node sent:
    /// `time` is the node's word (it may have queued the event for a
    /// while), this is auth's. Queries select by it (see
    /// [`AuditEvent::recorded_at`]), so a node cannot hide an event in the
    /// past or the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<i64>,
    pub event: String,
    pub code: String,
    pub cluster: String,
    pub success: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_uuid: Option<String>,
    /// The client's address, as the service that saw it knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// What this kind of event adds: command, exit_status, reason, path,
    /// bytes, ...
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
}

impl AuditEvent {
    /// A new event of a known name; `id` and `time` come from the caller
    /// (this crate does no I/O).
    pub fn new(id: String, time: i64, event: &str, success: bool, cluster: &str) -> Self {
        let code = code(event, success).unwrap_or_else(|| "T0000I".into());
        AuditEvent {
            id,
            time,
            seq: 0,
            received: None,
            event: event.to_string(),
            code,
            cluster: cluster.to_string(),
            success,
            user: None,
            login: None,
            node: None,
            node_uuid: None,
            addr: None,
            session_id: None,
            fields: Map::new(),
        }
    }

    /// The event about the same user, login, node, client and session as
    /// `template`.
    pub fn about(mut self, template: &AuditEvent) -> Self {
        self.user = template.user.clone();
        self.login = template.login.clone();
        self.node = template.node.clone();
        self.node_uuid = template.node_uuid.clone();
        self.addr = template.addr.clone();
        self.session_id = template.session_id.clone();
        self
    }

    /// The `sftp` event's fields and code for `op`.
    pub fn with_sftp(mut self, op: SftpOp) -> Self {
        if let Some(code) = sftp_code(&op.action, op.success) {
            self.code = code;
        }
        self = self.with("action", op.action).with("path", op.path);
        if let Some(t) = op.target {
            self = self.with("target", t);
        }
        if let Some(b) = op.bytes {
            self = self.with("bytes", b);
        }
        if let Some(e) = op.error {
            self = self.with("error", e);
        }
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// The event with every text in it bounded, as it is stored and sent:
    /// users, nodes and clients choose much of it (a refused user name, a
    /// command, an SFTP path), and one oversized event must not stop a
    /// node's deliveries or fill the log. A text longer than
    /// [`MAX_TEXT_BYTES`] (counted as JSON writes it, escapes included)
    /// keeps its start and a marker with its full size and SHA-256, so the
    /// record still says what was there; past [`MAX_FIELDS`] fields the
    /// rest are dropped and counted.
    pub fn capped(mut self) -> Self {
        for text in [
            &mut self.user,
            &mut self.login,
            &mut self.node,
            &mut self.node_uuid,
            &mut self.addr,
            &mut self.session_id,
        ]
        .into_iter()
        .flatten()
        {
            cap_text(text);
        }
        cap_text(&mut self.event);
        cap_text(&mut self.id);
        let fields = std::mem::take(&mut self.fields);
        let dropped = fields.len().saturating_sub(MAX_FIELDS);
        for (mut key, mut value) in fields.into_iter().take(MAX_FIELDS) {
            cap_text(&mut key);
            cap_value(&mut value);
            self.fields.insert(key, value);
        }
        if dropped > 0 {
            self.fields
                .insert("fields_dropped".into(), Value::from(dropped as u64));
        }
        self
    }

    /// When the cluster recorded it: auth's receive time for a node's
    /// event, else its time.
    pub fn recorded_at(&self) -> i64 {
        self.received.unwrap_or(self.time)
    }

    /// One readable line: time, name, code, then `key=value` pairs (with
    /// `received=` when auth got a node's event more than a minute away
    /// from the time the node gave it).
    pub fn text_line(&self) -> String {
        // The name and code are auth's for every event it stores, but a
        // line is printed from whatever event it is given: quoted too.
        let mut line = format!(
            "{} {} {}",
            crate::timefmt::format_unix_millis(self.time),
            quote(&self.event),
            quote(&self.code)
        );
        if let Some(r) = self.received.filter(|r| (r - self.time).abs() > 60_000) {
            line.push_str(&format!(
                " received={}",
                crate::timefmt::format_unix_millis(r)
            ));
        }
        let common = [
            ("user", &self.user),
            ("login", &self.login),
            ("node", &self.node),
            ("session", &self.session_id),
            ("addr", &self.addr),
        ];
        for (k, v) in common {
            if let Some(v) = v {
                line.push_str(&format!(" {k}={}", quote(v)));
            }
        }
        for (k, v) in &self.fields {
            let v = match v {
                Value::String(s) => quote(s),
                other => other.to_string(),
            };
            line.push_str(&format!(" {}={v}", quote(k)));
        }
        line
    }
}

/// The most bytes one text of an event takes in JSON (escapes counted).
pub const MAX_TEXT_BYTES: usize = 4096;
/// The most fields an event keeps.
pub const MAX_FIELDS: usize = 32;

/// The bytes JSON takes for `c` inside a string.
fn json_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Cuts a text that JSON would write longer than [`MAX_TEXT_BYTES`]: its
/// start, then `…[truncated: N bytes, sha256:HEX]` naming the original.
fn cap_text(text: &mut String) {
    if text.chars().map(json_len).sum::<usize>() <= MAX_TEXT_BYTES {
        return;
    }
    use sha2::Digest;
    let marker = format!(
        "…[truncated: {} bytes, sha256:{}]",
        text.len(),
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    );
    let room = MAX_TEXT_BYTES - marker.len();
    let (mut used, mut end) = (0, 0);
    for (i, c) in text.char_indices() {
        used += json_len(c);
        if used > room {
            break;
        }
        end = i + c.len_utf8();
    }
    text.truncate(end);
    text.push_str(&marker);
}

/// Caps the texts in a field's value; a structure larger than a text may
/// be becomes a capped text of its JSON.
fn cap_value(value: &mut Value) {
    match value {
        Value::String(s) => cap_text(s),
        Value::Array(_) | Value::Object(_) => {
            let json = value.to_string();
            if json.len() > MAX_TEXT_BYTES {
                let mut text = json;
                cap_text(&mut text);
                *value = Value::String(text);
            }
        }
        _ => {}
    }
}

/// Quotes (with Rust's escapes) a value that is empty or has anything but
/// plain printable text: spaces, quotes, `=`, backslashes, control and
/// other unprintable characters. Fields come from users and nodes (a
/// command, a path, a refused user name): printed raw, an escape sequence
/// would reach the administrator's terminal and could rewrite what it
/// shows.
fn quote(v: &str) -> String {
    let plain = |c: char| !c.is_whitespace() && !"\"\\=".contains(c) && c.escape_debug().len() == 1;
    if !v.is_empty() && v.chars().all(plain) {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

/// What `jctl audit ls` asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, inclusive.
    pub until: Option<i64>,
    pub event: Option<String>,
    pub user: Option<String>,
    pub session_id: Option<String>,
    /// The most recent N matches.
    pub limit: Option<usize>,
}

impl AuditQuery {
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.since.is_none_or(|s| e.recorded_at() >= s)
            && self.until.is_none_or(|u| e.recorded_at() <= u)
            && self.event.as_ref().is_none_or(|t| &e.event == t)
            && self
                .user
                .as_ref()
                .is_none_or(|u| e.user.as_ref() == Some(u))
            && self
                .session_id
                .as_ref()
                .is_none_or(|s| e.session_id.as_ref() == Some(s))
    }

    /// The matches among `events` (in time order), newest `limit` kept.
    pub fn apply(&self, events: impl IntoIterator<Item = AuditEvent>) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = events.into_iter().filter(|e| self.matches(e)).collect();
        out.sort_by(|a, b| (a.time, a.seq, &a.id).cmp(&(b.time, b.seq, &b.id)));
        if let Some(limit) = self.limit
            && out.len() > limit
        {
            out.drain(..out.len() - limit);
        }
        out
    }
}

/// A session while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSession {
    pub id: String,
    pub user: String,
    pub login: String,
    pub node: String,
    pub node_uuid: String,
    /// `shell`, `exec` or `sftp`.
    pub kind: String,
    /// Unix seconds.
    pub start: i64,
    /// The client's address as the node sees it.
    pub client: String,
}

/// What is known of a recording without reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub session_id: String,
    pub user: String,
    pub login: String,
    pub node: String,
    /// The node that records it, set by auth: only that node may append
    /// (names are not unique, and a node reports its own). Absent in
    /// recordings stored before it was kept, which are matched by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_uuid: Option<String>,
    /// Unix seconds.
    pub start: i64,
    /// Unix seconds; `None` while a node-sync session runs.
    pub end: Option<i64>,
    /// Bytes of asciicast text.
    pub size: u64,
    /// The node stopped recording part way ([`MAX_RECORDING_BYTES`], or
    /// its disk budget for recordings): the session went on, unrecorded
    /// from the marker line on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The largest recording auth keeps, and so the most a node records of
/// one session.
pub const MAX_RECORDING_BYTES: u64 = 256 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_reference_products() {
        assert_eq!(code("session.start", true).as_deref(), Some("T2000I"));
        assert_eq!(code("user.login", false).as_deref(), Some("T1000W"));
        assert_eq!(code("auth", false).as_deref(), Some("T3007W"));
        assert_eq!(code("exec", false).as_deref(), Some("T3002E"));
        assert_eq!(sftp_code("open", true).as_deref(), Some("TS001I"));
        assert_eq!(sftp_code("link", true).as_deref(), Some("TS019I"));
        assert_eq!(sftp_code("rename", false).as_deref(), Some("TS016E"));
        assert_eq!(code("nope", true), None);
        assert!(names().any(|n| n == "sftp"));
    }

    #[test]
    fn query_filters_and_keeps_the_newest() {
        let ev = |id: &str, time: i64, event: &str, user: &str| {
            let mut e = AuditEvent::new(id.into(), time, event, true, "c");
            e.user = Some(user.into());
            e
        };
        let events = vec![
            ev("3", 3000, "exec", "bob"),
            ev("1", 1000, "exec", "alice"),
            ev("2", 2000, "session.start", "alice"),
            ev("4", 4000, "exec", "alice"),
        ];
        let q = AuditQuery {
            user: Some("alice".into()),
            event: Some("exec".into()),
            ..Default::default()
        };
        let ids = |v: Vec<AuditEvent>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(q.apply(events.clone())), ["1", "4"]);
        let q = AuditQuery {
            since: Some(2000),
            until: Some(3000),
            ..Default::default()
        };
        assert_eq!(ids(q.apply(events.clone())), ["2", "3"]);
        let q = AuditQuery {
            limit: Some(2),
            ..Default::default()
        };
        assert_eq!(ids(q.apply(events)), ["3", "4"]);
    }

    #[test]
    fn text_line_reads_well() {
        let mut e = AuditEvent::new("x".into(), 0, "exec", true, "c").with("command", "ls -l");
        e.user = Some("alice".into());
        e = e.with("exit_status", 0);
        assert_eq!(
            e.text_line(),
            "1970-01-01T00:00:00.000Z exec T3002I user=alice command=\"ls -l\" exit_status=0"
        );
    }

    #[test]
    fn text_lines_escape_what_a_terminal_would_act_on() {
        for (value, shown) in [
            ("plain/path.txt", "plain/path.txt"),
            ("caf\u{e9}", "caf\u{e9}"),
            ("", "\"\""),
            ("a b", "\"a b\""),
            ("a=b", "\"a=b\""),
            ("\x1b]0;owned\x07", "\"\\u{1b}]0;owned\\u{7}\""),
            ("ok\rforged", "\"ok\\rforged\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("bidi\u{202e}txt", "\"bidi\\u{202e}txt\""),
        ] {
            let e = AuditEvent::new("x".into(), 0, "exec", true, "c").with("command", value);
            let line = e.text_line();
            assert_eq!(
                line.split_once(" command=").map(|(_, v)| v),
                Some(shown),
                "{value:?}"
            );
            assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        }
        // Keys come from nodes too.
        let e = AuditEvent::new("x".into(), 0, "exec", true, "c").with("k\x1b[2J", 1);
        assert!(
            e.text_line().ends_with(" \"k\\u{1b}[2J\"=1"),
            "{}",
            e.text_line()
        );
        // And so the event's name and code, though auth sets them on what
        // it stores (found by the audit_ingest fuzz target: a DEL in the
        // name reached the line raw).
        let mut e = AuditEvent::new("x".into(), 7, "exec", true, "c");
        e.event = "\u{7f}".into();
        e.code = "\x1b[2J".into();
        let line = e.text_line();
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert!(line.contains(" \"\\u{7f}\" \"\\u{1b}[2J\""), "{line:?}");
    }

    #[test]
    fn oversized_texts_are_capped_with_their_size_and_hash() {
        let json_len = |e: &AuditEvent| serde_json::to_string(e).map(|j| j.len()).unwrap_or(0);
        let small = AuditEvent::new("x".into(), 0, "exec", true, "c").with("command", "ls -l");
        assert_eq!(
            small.clone().capped(),
            small,
            "small events stay as they are"
        );

        // Control bytes grow sixfold in JSON: 300 KB of them was ~1.8 MB.
        let control = "\u{1}".repeat(300_000);
        let mut e = AuditEvent::new("x".into(), 0, "auth", false, "c")
            .with("command", control.clone())
            .with("path", "é".repeat(10_000));
        e.user = Some("u".repeat(1_000_000));
        let capped = e.capped();
        assert!(
            json_len(&capped) < 4 * MAX_TEXT_BYTES,
            "{}",
            json_len(&capped)
        );
        let user = capped.user.as_deref().unwrap_or_default();
        assert!(user.starts_with("uuu"));
        assert!(
            user.contains("…[truncated: 1000000 bytes, sha256:"),
            "{}",
            &user[user.len() - 100..]
        );
        let command = capped.fields["command"].as_str().unwrap_or_default();
        use sha2::Digest;
        let hash = hex::encode(sha2::Sha256::digest(control.as_bytes()));
        assert!(command.ends_with(&format!("sha256:{hash}]")), "{command}");
        for text in [
            user,
            command,
            capped.fields["path"].as_str().unwrap_or_default(),
        ] {
            let written = serde_json::to_string(text).map(|j| j.len()).unwrap_or(0);
            assert!(written <= MAX_TEXT_BYTES + 2, "{written}");
        }
    }

    #[test]
    fn extra_fields_are_dropped_and_counted() {
        let mut e = AuditEvent::new("x".into(), 0, "exec", true, "c");
        for i in 0..100 {
            e = e.with(&format!("k{i:03}"), i);
        }
        e = e.with("list", vec!["x".repeat(100); 100]);
        let capped = e.capped();
        assert_eq!(capped.fields.len(), MAX_FIELDS + 1);
        assert_eq!(capped.fields["fields_dropped"], 69);
    }

    #[test]
    fn nodes_write_session_events_only() {
        for (name, node) in [
            ("session.start", true),
            ("session.end", true),
            ("exec", true),
            ("sftp", true),
            ("port", true),
            ("auth", true),
            ("user.login", false),
            ("cert.create", false),
            ("user.create", false),
            ("role.created", false),
            ("node.join", false),
            ("nope", false),
        ] {
            assert_eq!(super::node_may_write(name), node, "{name}");
            // Every name a node may write has a code.
            if node && name != "sftp" {
                assert!(super::code(name, true).is_some(), "{name}");
            }
        }
    }
}
