//! Session recordings: a PTY session's output and resizes with their
//! timing, in asciicast v2 (so stock `asciinema play` plays them), written
//! to `<data_dir>/recordings/<session ID>.cast` as the session runs, next
//! to `<session ID>.meta.json`. The uploader sends a finished recording to
//! auth and then deletes it; one left by a killed node is sent (up to its
//! last whole line) when the node starts again.

use jaunt_transport::ApiClient;
use jaunt_types::api::{Ack, PATH_NODE_RECORDING, RecordingUpload};
use jaunt_types::asciicast::{self, Encoder};
use jaunt_types::audit::{MAX_RECORDING_BYTES, RecordingMeta};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Largest piece sent in one request.
const PIECE: usize = 4 * 1024 * 1024;

/// Room kept under a recording's limits for the line that says where it
/// stops.
const MARKER_ROOM: u64 = 512;

/// The recordings directory's use of disk, against its budget.
struct DiskUse {
    used: AtomicU64,
    budget: u64,
}

/// Writes one session's recording, up to [`MAX_RECORDING_BYTES`] and the
/// node's disk budget for recordings; past either, it writes one marker
/// line, marks the recording truncated, and records no more (the session
/// goes on).
pub struct Recorder {
    file: std::fs::File,
    start: Instant,
    cast: Encoder,
    written: u64,
    truncated: bool,
    disk: Arc<DiskUse>,
    meta: RecordingMeta,
    meta_path: PathBuf,
}

impl Recorder {
    /// Terminal output.
    pub fn output(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.truncated {
            return Ok(());
        }
        match self.cast.output(self.start.elapsed().as_secs_f64(), data) {
            Some(line) => self.write(&line),
            None => Ok(()),
        }
    }

    pub fn resize(&mut self, cols: u16, rows: u16) -> std::io::Result<()> {
        if self.truncated {
            return Ok(());
        }
        let line = self
            .cast
            .resize(self.start.elapsed().as_secs_f64(), cols, rows);
        self.write(&line)
    }

    /// Whether the recording stopped part way.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// One write per event: a killed node leaves whole lines but the last.
    fn write(&mut self, line: &str) -> std::io::Result<()> {
        let n = line.len() as u64;
        let why = if self.written + n + MARKER_ROOM > MAX_RECORDING_BYTES {
            Some(format!("it reached {MAX_RECORDING_BYTES} bytes"))
        } else if self.disk.used.load(Ordering::Relaxed) + n + MARKER_ROOM > self.disk.budget {
            Some("the node's disk budget for recordings is spent".to_string())
        } else {
            None
        };
        match why {
            None => self.append(line),
            Some(why) => self.truncate(&why),
        }
    }

    fn append(&mut self, line: &str) -> std::io::Result<()> {
        self.file.write_all(line.as_bytes())?;
        self.written += line.len() as u64;
        self.disk
            .used
            .fetch_add(line.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Ends the recording with a line saying so, and marks its metadata.
    fn truncate(&mut self, why: &str) -> std::io::Result<()> {
        self.truncated = true;
        tracing::warn!(session = %self.meta.session_id, reason = why, "recording truncated");
        let text = format!("\r\n[jaunt: the recording stops here: {why}]\r\n");
        if let Some(line) = self
            .cast
            .output(self.start.elapsed().as_secs_f64(), text.as_bytes())
        {
            self.append(&line)?;
        }
        self.meta.truncated = true;
        let bytes = serde_json::to_vec(&self.meta).map_err(std::io::Error::other)?;
        jaunt_sys::fs::write_atomic(&self.meta_path, &bytes, jaunt_sys::fs::Mode::Private)
            .map_err(|e| e.source)
    }
}

/// The recordings directory and which recordings are still being written.
pub struct Spool {
    dir: PathBuf,
    active: Mutex<HashSet<String>>,
    wake: Notify,
    disk: Arc<DiskUse>,
}

impl Spool {
    /// The spool in `data_dir`, holding at most `budget` bytes of
    /// recordings on disk.
    pub fn open(data_dir: &Path, budget: u64) -> std::io::Result<Self> {
        let dir = data_dir.join("recordings");
        std::fs::create_dir_all(&dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        // What earlier runs left (waiting for upload, or set aside).
        let used = std::fs::read_dir(&dir)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".cast"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        Ok(Spool {
            dir,
            active: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            disk: Arc::new(DiskUse {
                used: AtomicU64::new(used),
                budget,
            }),
        })
    }

    /// Deletes an uploaded recording, giving its disk back to the budget.
    fn remove(&self, id: &str) {
        let cast = self.cast_path(id);
        let size = std::fs::metadata(&cast).map(|m| m.len()).unwrap_or(0);
        if std::fs::remove_file(&cast).is_ok() {
            let _ = self
                .disk
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                    Some(u.saturating_sub(size))
                });
        }
        let _ = std::fs::remove_file(self.meta_path(id));
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
        let header = asciicast::header(meta, cols, rows, term);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(self.cast_path(id))?;
        if let Ok(mut a) = self.active.lock() {
            a.insert(id.clone());
        }
        let mut recorder = Recorder {
            file,
            start: Instant::now(),
            cast: Encoder::default(),
            written: 0,
            truncated: false,
            disk: self.disk.clone(),
            meta: meta.clone(),
            meta_path: self.meta_path(id),
        };
        recorder.append(&header)?;
        Ok(recorder)
    }

    /// The session ended: its recording may be uploaded.
    pub fn finish(&self, id: &str) {
        if let Ok(mut a) = self.active.lock() {
            a.remove(id);
        }
        self.wake.notify_one();
    }

    /// Sends the recording from byte `from` on; returns the bytes auth
    /// then has. Pieces are read from disk one at a time (a recording can
    /// be far larger than memory should hold) and end on whole lines; the
    /// text after the last whole line is left (a killed node may have left
    /// half of one). With `complete`, the end is stamped.
    pub async fn send(
        &self,
        api: &ApiClient,
        id: &str,
        from: u64,
        complete: bool,
    ) -> Result<u64, SendError> {
        let meta: RecordingMeta = serde_json::from_slice(
            &std::fs::read(self.meta_path(id)).map_err(|e| SendError::Local(e.to_string()))?,
        )
        .map_err(|e| SendError::Local(format!("{}: {e}", self.meta_path(id).display())))?;
        let end = std::fs::metadata(self.cast_path(id))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        let mut pieces = Pieces::open(&self.cast_path(id), from)?;
        let mut offset = from;
        loop {
            let (data, last) = pieces.next()?;
            if data.is_empty() && !(last && complete) {
                return Ok(offset);
            }
            let mut m = meta.clone();
            m.end = (complete && last).then_some(end.unwrap_or(meta.start));
            let _: Ack = api
                .post(
                    PATH_NODE_RECORDING,
                    &RecordingUpload {
                        meta: m,
                        offset,
                        complete: complete && last,
                        data: String::from_utf8_lossy(&data).into_owned(),
                    },
                )
                .await
                .map_err(SendError::from)?;
            offset += data.len() as u64;
            if last {
                return Ok(offset);
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
    /// is deleted here once auth holds it whole. One that fails does not
    /// hold back the others; one that can never be sent (its files are
    /// unreadable, or auth refuses its content) is set aside as
    /// `<id>.meta.json.rejected` and reported, not retried for ever.
    pub async fn upload_forever(&self, api: impl Fn() -> Option<ApiClient>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let mut failed = false;
            jaunt_metrics::metrics()
                .node_recording_backlog_bytes
                .set(self.disk.used.load(Ordering::Relaxed) as i64);
            for id in self.waiting() {
                let Some(client) = api() else {
                    failed = true;
                    break;
                };
                match self.send(&client, &id, 0, true).await {
                    Ok(size) => {
                        tracing::info!(session = %id, size, "recording uploaded");
                        self.remove(&id);
                    }
                    Err(e) if e.is_permanent() => {
                        tracing::error!(session = %id, error = %e, "recording cannot be uploaded; set aside");
                        let meta = self.meta_path(&id);
                        let _ = std::fs::rename(&meta, meta.with_extension("json.rejected"));
                    }
                    Err(e) => {
                        tracing::warn!(session = %id, error = %e, retry_in = ?backoff, "recording not uploaded yet");
                        failed = true;
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

/// Why a recording was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Its files cannot be read as a recording: sending again cannot help.
    #[error("{0}")]
    Local(String),
    /// Auth refused the content (too large, out of order): likewise.
    #[error("auth refused it: {0}")]
    Refused(String),
    /// Auth could not be reached or failed: try again later.
    #[error("{0}")]
    Transient(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, SendError::Transient(_))
    }
}

impl From<jaunt_transport::TransportError> for SendError {
    fn from(e: jaunt_transport::TransportError) -> Self {
        match e {
            jaunt_transport::TransportError::Api {
                code: jaunt_types::api::ErrorCode::BadRequest,
                message,
            } => SendError::Refused(message),
            other => SendError::Transient(other.to_string()),
        }
    }
}

/// A recording file read in pieces of at most [`PIECE`] bytes that end on
/// a line (or, for a line longer than a piece, on a character).
struct Pieces {
    file: std::fs::File,
    /// Read but not yet handed out.
    held: Vec<u8>,
    eof: bool,
}

impl Pieces {
    fn open(path: &Path, from: u64) -> Result<Self, SendError> {
        use std::io::Seek;
        let local = |e: std::io::Error| SendError::Local(format!("{}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(local)?;
        file.seek(std::io::SeekFrom::Start(from)).map_err(local)?;
        Ok(Pieces {
            file,
            held: Vec::new(),
            eof: false,
        })
    }

    /// The next piece, and whether no whole line follows it.
    fn next(&mut self) -> Result<(Vec<u8>, bool), SendError> {
        use std::io::Read;
        while !self.eof && self.held.len() < PIECE {
            let mut buf = vec![0; PIECE - self.held.len()];
            let n = self
                .file
                .read(&mut buf)
                .map_err(|e| SendError::Local(e.to_string()))?;
            self.eof = n == 0;
            self.held.extend_from_slice(&buf[..n]);
        }
        let cut = match self.held.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            // One line longer than a piece: cut it on a character.
            None if self.held.len() >= PIECE => match std::str::from_utf8(&self.held) {
                Err(e) if e.valid_up_to() > 0 => e.valid_up_to(),
                // Whole, or not text at all (sent as it reads).
                _ => self.held.len(),
            },
            None => 0,
        };
        let piece: Vec<u8> = self.held.drain(..cut).collect();
        let last = self.eof && !self.held.contains(&b'\n');
        Ok((piece, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_asciicast_v2_and_keeps_split_characters_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let spool = Spool::open(dir.path(), u64::MAX).expect("spool");
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
            truncated: false,
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

    #[test]
    fn pieces_end_on_lines_and_leave_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.cast");
        let mut text = String::from("{\"version\": 2}\n");
        for i in 0..2000 {
            text.push_str(&format!("[{i}.0, \"o\", \"{}\"]\n", "é".repeat(i % 700)));
        }
        // One line longer than a piece, then a line cut off by a crash.
        let long = format!("[9.9, \"o\", \"{}\"]\n", "ü".repeat(PIECE));
        text.push_str(&long);
        text.push_str("[10.0, \"o\", \"tor");
        std::fs::write(&path, &text).expect("write");
        let whole = text.rfind('\n').map_or(0, |i| i + 1);

        let mut pieces = Pieces::open(&path, 0).expect("open");
        let mut got = Vec::new();
        loop {
            let (piece, last) = pieces.next().expect("piece");
            assert!(piece.len() <= PIECE, "{}", piece.len());
            assert!(
                std::str::from_utf8(&piece).is_ok(),
                "pieces end on characters"
            );
            got.extend_from_slice(&piece);
            if last {
                break;
            }
        }
        assert_eq!(got.len(), whole);
        assert_eq!(&got[..], &text.as_bytes()[..whole]);

        // From an offset on a line, as node-sync sends.
        let from = text.find("[5.0,").expect("line") as u64;
        let (piece, _) = Pieces::open(&path, from)
            .expect("open")
            .next()
            .expect("piece");
        assert!(piece.starts_with(b"[5.0,"));
    }
}
