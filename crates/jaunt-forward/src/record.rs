//! A terminal session's recording made at the proxy (agentless nodes have
//! no Jaunt process to record them): asciicast v2, handed to auth in
//! pieces as the session runs, the last one marking it complete. The
//! proxy runs beside auth, so a piece is stored at once; with
//! `recording: node-sync` a piece auth cannot take ends the session.

use jaunt_auth::AuthServer;
use jaunt_types::api::RecordingUpload;
use jaunt_types::asciicast::{self, Encoder};
use jaunt_types::audit::RecordingMeta;
use std::sync::Arc;
use std::time::Instant;

/// Text held back before it is sent: a piece a quarter second, or this
/// much, whichever comes first.
const PIECE: usize = 256 * 1024;
/// What is kept while auth cannot take pieces (recording: node); past it
/// the recording is given up, and the session goes on.
const MAX_HELD: usize = 16 * 1024 * 1024;

pub struct Recording {
    auth: Arc<AuthServer>,
    node_uuid: String,
    meta: RecordingMeta,
    start: Instant,
    cast: Encoder,
    held: String,
    sent: u64,
    /// Set once the recording is given up.
    failed: bool,
}

impl Recording {
    pub fn new(
        auth: Arc<AuthServer>,
        node_uuid: &str,
        meta: RecordingMeta,
        cols: u16,
        rows: u16,
        term: &str,
    ) -> Self {
        let held = asciicast::header(&meta, cols, rows, term);
        Recording {
            auth,
            node_uuid: node_uuid.to_string(),
            meta,
            start: Instant::now(),
            cast: Encoder::default(),
            held,
            sent: 0,
            failed: false,
        }
    }

    fn at(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn output(&mut self, data: &[u8]) {
        let at = self.at();
        if let Some(line) = self.cast.output(at, data) {
            self.hold(&line);
        }
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        let line = self.cast.resize(self.at(), cols, rows);
        self.hold(&line);
    }

    fn hold(&mut self, line: &str) {
        if self.failed {
            return;
        }
        if self.held.len() + line.len() > MAX_HELD {
            tracing::error!(session = %self.meta.session_id, "recording given up: auth has not taken it");
            self.failed = true;
            self.held.clear();
            return;
        }
        self.held.push_str(line);
    }

    /// Whether enough is held to send a piece now.
    pub fn due(&self) -> bool {
        self.held.len() >= PIECE
    }

    /// Sends what is held; `complete` stamps the end.
    pub async fn send(&mut self, complete: bool) -> Result<(), String> {
        if self.failed || (self.held.is_empty() && !complete) {
            return Ok(());
        }
        let mut meta = self.meta.clone();
        if complete {
            meta.end = Some(jaunt_sys::clock::now());
        }
        let up = RecordingUpload {
            meta,
            offset: self.sent,
            data: self.held.clone(),
            complete,
        };
        match self.auth.put_recording(&self.node_uuid, up).await {
            Ok(size) => {
                self.sent = size;
                self.held.clear();
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}
