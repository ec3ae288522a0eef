//! Session recordings: a PTY session's output and resizes with their
//! timing, in asciicast v2 (so stock `asciinema play` plays them), written
//! to `<data_dir>/recordings/<session ID>.cast` as the session runs, next
//! to `<session ID>.meta.json`. The uploader sends a finished recording to
//! auth and then deletes it; one left by a killed node is sent (up to its
//! last whole line) when the node starts again.

use jaunt_transport::ApiClient;
use jaunt_types::api::{Ack, PATH_NODE_RECORDING, RecordingUpload};
use jaunt_types::audit::RecordingMeta;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Largest piece sent in one request.
const PIECE: usize = 4 * 1024 * 1024;

/// Writes one session's recording.
pub struct Recorder {
    file: std::fs::File,
    start: Instant,
    /// The start of a UTF-8 character split across two reads.
    partial: Vec<u8>,
}

impl Recorder {
    fn line(&mut self, kind: &str, data: &str) -> std::io::Result<()> {
        let t = self.start.elapsed().as_secs_f64();
        let line = serde_json::to_string(&(t, kind, data)).map_err(std::io::Error::other)?;
        // One write per event: a killed node leaves whole lines but the last.
        self.file.write_all(format!("{line}\n").as_bytes())
    }

    /// Terminal output.
    pub fn output(&mut self, data: &[u8]) -> std::io::Result<()> {
        let mut bytes = std::mem::take(&mut self.partial);
        bytes.extend_from_slice(data);
        let (text, rest) = match std::str::from_utf8(&bytes) {
            Ok(s) => (s.to_string(), Vec::new()),
            Err(e) if e.error_len().is_none() => {
                // Incomplete character at the end: keep it for the next read.
                let (ok, rest) = bytes.split_at(e.valid_up_to());
                (String::from_utf8_lossy(ok).into_owned(), rest.to_vec())
            }
            Err(_) => (String::from_utf8_lossy(&bytes).into_owned(), Vec::new()),
        };
        self.partial = rest;
        if text.is_empty() {
            return Ok(());
        }
        self.line("o", &text)
    }

    pub fn resize(&mut self, cols: u16, rows: u16) -> std::io::Result<()> {
        self.line("r", &format!("{cols}x{rows}"))
    }
}

/// asciicast v2's first line (fields in the format's order).
#[derive(serde::Serialize)]
struct Header<'a> {
    version: u8,
    width: u16,
    height: u16,
    timestamp: i64,
    title: String,
    env: std::collections::BTreeMap<&'a str, &'a str>,
}

/// The recordings directory and which recordings are still being written.
pub struct Spool {
    dir: PathBuf,
    active: Mutex<HashSet<String>>,
    wake: Notify,
}

impl Spool {
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join("recordings");
        std::fs::create_dir_all(&dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Spool {
            dir,
            active: Mutex::new(HashSet::new()),
            wake: Notify::new(),
        })
    }

    fn cast_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.cast"))
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.meta.json"))
    }

    /// Starts a recording: metadata, then the asciicast header.
    pub fn create(
        &self,
        meta: &RecordingMeta,
        cols: u16,
        rows: u16,
        term: &str,
    ) -> std::io::Result<Recorder> {
        let id = &meta.session_id;
        uuid::Uuid::parse_str(id).map_err(std::io::Error::other)?;
        let meta_bytes = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        std::fs::write(self.meta_path(id), meta_bytes)?;
        let header = serde_json::to_string(&Header {
            version: 2,
            width: cols,
            height: rows,
            timestamp: meta.start,
            title: format!("{}@{} ({})", meta.login, meta.node, meta.user),
            env: [("TERM", term)].into(),
        })
        .map_err(std::io::Error::other)?;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(self.cast_path(id))?;
        file.write_all(format!("{header}\n").as_bytes())?;
        if let Ok(mut a) = self.active.lock() {
            a.insert(id.clone());
        }
        Ok(Recorder {
            file,
            start: Instant::now(),
            partial: Vec::new(),
        })
    }

    /// The session ended: its recording may be uploaded.
    pub fn finish(&self, id: &str) {
        if let Ok(mut a) = self.active.lock() {
            a.remove(id);
        }
        self.wake.notify_one();
    }

    /// Sends the recording from byte `from` on; returns the bytes auth
    /// then has. With `complete`, the text is cut after its last whole line
    /// (a killed node may have left half of one) and the end is stamped.
    pub async fn send(
        &self,
        api: &ApiClient,
        id: &str,
        from: u64,
        complete: bool,
    ) -> Result<u64, String> {
        let meta: RecordingMeta =
            serde_json::from_slice(&std::fs::read(self.meta_path(id)).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        // Only what follows `from` (node-sync sends every quarter second;
        // the file is append-only and `from` ends a line).
        let bytes = {
            use std::io::{Read, Seek};
            let mut file = std::fs::File::open(self.cast_path(id)).map_err(|e| e.to_string())?;
            file.seek(std::io::SeekFrom::Start(from))
                .map_err(|e| e.to_string())?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
            bytes
        };
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let text = String::from_utf8_lossy(&bytes[..whole]).into_owned();
        let end = std::fs::metadata(self.cast_path(id))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        let mut offset = 0;
        loop {
            let mut stop = (offset + PIECE).min(text.len());
            while !text.is_char_boundary(stop) {
                stop -= 1;
            }
            let last = stop == text.len();
            let mut m = meta.clone();
            m.end = (complete && last).then_some(end.unwrap_or(meta.start));
            let _: Ack = api
                .post(
                    PATH_NODE_RECORDING,
                    &RecordingUpload {
                        meta: m,
                        offset: from + offset as u64,
                        data: text[offset..stop].to_string(),
                        complete: complete && last,
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            offset = stop;
            if last {
                return Ok(from + offset as u64);
            }
        }
    }

    /// Finished recordings waiting for upload.
    fn waiting(&self) -> Vec<String> {
        let active = self.active.lock().map(|a| a.clone()).unwrap_or_default();
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_suffix(".meta.json").map(str::to_string)
                    })
                    .filter(|id| !active.contains(id))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Uploads finished recordings for ever, retrying with backoff; each
    /// is deleted here once auth holds it whole.
    pub async fn upload_forever(&self, api: impl Fn() -> Option<ApiClient>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let mut failed = false;
            for id in self.waiting() {
                let Some(client) = api() else {
                    failed = true;
                    break;
                };
                match self.send(&client, &id, 0, true).await {
                    Ok(size) => {
                        tracing::info!(session = %id, size, "recording uploaded");
                        let _ = std::fs::remove_file(self.cast_path(&id));
                        let _ = std::fs::remove_file(self.meta_path(&id));
                    }
                    Err(e) => {
                        tracing::warn!(session = %id, error = %e, retry_in = ?backoff, "recording not uploaded yet");
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            } else {
                backoff = Duration::from_millis(500);
                let _ = tokio::time::timeout(Duration::from_secs(30), self.wake.notified()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_asciicast_v2_and_keeps_split_characters_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let spool = Spool::open(dir.path()).expect("spool");
        let id = uuid::Uuid::new_v4().to_string();
        let meta = RecordingMeta {
            session_id: id.clone(),
            user: "alice".into(),
            login: "root".into(),
            node: "node1".into(),
            node_uuid: None,
            start: 1_800_000_000,
            end: None,
            size: 0,
        };
        let mut rec = spool.create(&meta, 80, 24, "xterm").expect("create");
        let euro = "€".as_bytes();
        rec.output(b"hello ").expect("out");
        rec.output(&euro[..1]).expect("first byte");
        rec.output(&euro[1..]).expect("rest");
        rec.resize(100, 30).expect("resize");
        let text = std::fs::read_to_string(spool.cast_path(&id)).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 80);
        assert_eq!(lines[1][1], "o");
        assert_eq!(lines[1][2], "hello ");
        assert_eq!(lines[2][2], "€");
        assert_eq!(lines[3][1], "r");
        assert_eq!(lines[3][2], "100x30");
        assert_eq!(lines.len(), 4);
        assert!(spool.waiting().is_empty(), "still being written");
        spool.finish(&id);
        assert_eq!(spool.waiting(), vec![id]);
    }
}
