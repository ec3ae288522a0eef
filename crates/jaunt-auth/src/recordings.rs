//! Session recordings: pieces appended as nodes (and the proxy, for
//! agentless sessions) upload them, and who may list and play which
//! (their own; every one with the `recording` rule, as `auditor` and
//! `editor` have).
//!
//! The metadata always lives in the store (`/recordings/meta/<id>`): it is
//! small, its compare-and-swap orders the pieces, and it carries the
//! retention's expiry. The asciicast text lives where `recordings:` says:
//! in the store as one record per piece (`/recordings/data/<id>/<offset>`),
//! or in a directory, one file per session (`<dir>/<YYYY-MM-DD>/<id>.cast`,
//! the day of the session's start, UTC), which several auth instances may
//! share as a mounted volume. A file is written (and synced) before the
//! metadata says its bytes are held; a directory's days go whole once
//! `recording_retention` is over for every session in them.

use crate::sessions::check_id;
use crate::{AuthError, AuthServer, now};
use jaunt_types::api::RecordingUpload;
use jaunt_types::audit::RecordingMeta;
use std::path::{Path, PathBuf};

const REC_META: &str = "/recordings/meta/";
const REC_DATA: &str = "/recordings/data/";
/// The largest recording auth keeps (asciicast text).
pub use jaunt_types::audit::MAX_RECORDING_BYTES as MAX_RECORDING;

/// Where recordings' text is kept (`recordings: {type: store|dir}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RecordingStorage {
    /// In the cluster store, beside the metadata.
    #[default]
    Store,
    /// In files under this directory.
    Dir(PathBuf),
}

/// A recording's file: under the day its session started.
fn file_path(dir: &Path, meta_start: i64, id: &str) -> PathBuf {
    dir.join(jaunt_types::timefmt::format_day(meta_start))
        .join(format!("{id}.cast"))
}

/// Writes `piece` at `offset` of the file and syncs it (the same bytes at
/// the same offset when a retry writes them again).
fn write_piece(path: &Path, offset: u64, piece: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
    if let Some(day) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(day)?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    file.write_all_at(piece, offset)?;
    file.sync_data()
}

/// The first `size` bytes of a recording's file.
fn read_file(path: &Path, size: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut data = Vec::with_capacity(size as usize);
    std::fs::File::open(path)?
        .take(size)
        .read_to_end(&mut data)?;
    String::from_utf8(data).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> AuthError {
    AuthError::Internal(format!("cannot {what} {}: {e}", path.display()))
}

impl AuthServer {
    /// Stores a piece of a recording from node `uuid`; returns the size
    /// auth now holds. A new piece is appended (its own record in the
    /// store, or written at its offset in the file), never rewriting what
    /// is held; the metadata's size, updated with compare-and-swap, says
    /// how much of it counts. A piece auth already has is accepted again
    /// (a retry).
    pub async fn put_recording(&self, uuid: &str, up: RecordingUpload) -> Result<u64, AuthError> {
        check_id(&up.meta.session_id)?;
        let node = self
            .node(uuid)
            .await?
            .ok_or_else(|| AuthError::AccessDenied("this node is not in the inventory".into()))?;
        let id = up.meta.session_id.clone();
        let meta_key = format!("{REC_META}{id}");
        let held = self.store.get::<RecordingMeta>(&meta_key).await?;
        let owner = |m: &RecordingMeta| match &m.node_uuid {
            Some(owner) => *owner == node.uuid,
            None => m.node == node.name,
        };
        if let Some(h) = &held
            && !owner(&h.value)
        {
            return Err(AuthError::AccessDenied(
                "this recording belongs to another node".into(),
            ));
        }
        let have = held.as_ref().map_or(0, |h| h.value.size);
        let end = up.offset + up.data.len() as u64;
        // The session's start as kept (never later than now: the node
        // says); every piece and the metadata go `recording_retention`
        // after it.
        let start = held
            .as_ref()
            .map_or(up.meta.start.min(now()), |h| h.value.start);
        let keep_until = crate::AuthConfig::expiry(self.config.recording_retention, start);
        if up.offset > have {
            return Err(AuthError::BadRequest(format!(
                "recording {id}: piece at {} but only {have} bytes held",
                up.offset
            )));
        }
        if end > MAX_RECORDING {
            return Err(AuthError::BadRequest(format!(
                "recording {id} is larger than {MAX_RECORDING} bytes"
            )));
        }
        if end > have {
            let Some(new) = up.data.get((have - up.offset) as usize..) else {
                return Err(AuthError::BadRequest(
                    "a recording piece must start on a character boundary".into(),
                ));
            };
            self.write_recording_piece(&id, start, have, new, keep_until)
                .await?;
        }
        let mut meta = up.meta;
        meta.start = start;
        meta.node = node.name;
        meta.node_uuid = Some(node.uuid);
        meta.size = end.max(have);
        if !up.complete {
            meta.end = None;
        }
        match held {
            Some(h) => {
                self.store
                    .update_if(&meta_key, h.revision, &meta, keep_until)
                    .await?
            }
            None => self.store.create(&meta_key, &meta, keep_until).await?,
        };
        Ok(meta.size)
    }

    /// Writes the new bytes of a recording at `offset`, where
    /// `recordings:` keeps them. Put, not create: a piece whose metadata
    /// update failed is written again by the retry (the one node that
    /// owns a recording sends the same bytes for the same offset).
    async fn write_recording_piece(
        &self,
        id: &str,
        start: i64,
        offset: u64,
        piece: &str,
        keep_until: Option<i64>,
    ) -> Result<(), AuthError> {
        match &self.config.recordings {
            RecordingStorage::Store => {
                self.store
                    .put(&format!("{REC_DATA}{id}/{offset:020}"), &piece, keep_until)
                    .await?;
            }
            RecordingStorage::Dir(dir) => {
                let path = file_path(dir, start, id);
                let bytes = piece.as_bytes().to_vec();
                tokio::task::spawn_blocking(move || {
                    write_piece(&path, offset, &bytes).map_err(|e| io_error("write", &path, e))
                })
                .await
                .map_err(|e| AuthError::Internal(e.to_string()))??;
            }
        }
        Ok(())
    }

    /// The recordings `user` may play, oldest first.
    pub async fn recordings_for(
        &self,
        user: &str,
        since: Option<i64>,
    ) -> Result<Vec<RecordingMeta>, AuthError> {
        let all_visible = self.may(user, "recording").await?;
        let mut out: Vec<RecordingMeta> = self
            .store
            .list::<RecordingMeta>(REC_META)
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|m| all_visible || m.user == user)
            .filter(|m| since.is_none_or(|s| m.start >= s))
            .collect();
        out.sort_by_key(|m| m.start);
        Ok(out)
    }

    /// One recording, if `user` may play it.
    pub async fn recording(
        &self,
        user: &str,
        id: &str,
    ) -> Result<(RecordingMeta, String), AuthError> {
        check_id(id)?;
        let missing = || AuthError::NotFound(format!("no recording of session {id}"));
        let meta = self
            .store
            .get::<RecordingMeta>(&format!("{REC_META}{id}"))
            .await?
            .ok_or_else(missing)?
            .value;
        // Someone else's recording is "not found", not "forbidden".
        if meta.user != user && !self.may(user, "recording").await? {
            return Err(missing());
        }
        let data = match &self.config.recordings {
            RecordingStorage::Dir(dir) => {
                let path = file_path(dir, meta.start, id);
                let size = meta.size;
                let read = tokio::task::spawn_blocking(move || match read_file(&path, size) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    other => other.map(Some).map_err(|e| io_error("read", &path, e)),
                })
                .await
                .map_err(|e| AuthError::Internal(e.to_string()))??;
                match read {
                    Some(data) => data,
                    // Recorded before the cluster kept them in a directory.
                    None => self.stored_recording(id, meta.size).await?,
                }
            }
            RecordingStorage::Store => self.stored_recording(id, meta.size).await?,
        };
        Ok((meta, data))
    }

    /// A recording's pieces from the store in offset order (the keys sort
    /// so), up to the size the metadata vouches for.
    async fn stored_recording(&self, id: &str, size: u64) -> Result<String, AuthError> {
        let mut data = String::with_capacity(size as usize);
        for piece in self
            .store
            .list::<String>(&format!("{REC_DATA}{id}/"))
            .await?
        {
            if data.len() as u64 >= size {
                break;
            }
            data.push_str(&piece.value);
        }
        if data.len() as u64 > size
            && let Some(cut) = data.get(..size as usize)
        {
            data = cut.to_string();
        }
        Ok(data)
    }

    /// Deletes the days of a recordings directory whose every session's
    /// `recording_retention` is over (a day ends a day after its date;
    /// another day's grace covers the instances' clocks); returns how
    /// many. Their metadata has expired in the store already.
    pub async fn purge_recording_files(&self) -> Result<usize, AuthError> {
        let (RecordingStorage::Dir(dir), Some(keep)) =
            (&self.config.recordings, self.config.recording_retention)
        else {
            return Ok(0);
        };
        let cutoff = now() - keep.as_secs() as i64 - 2 * 86_400;
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                other => other.map_err(|e| io_error("list", &dir, e))?,
            };
            let mut removed = 0;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(day) = name.to_str().and_then(jaunt_types::timefmt::parse_day) else {
                    continue; // not ours
                };
                if day < cutoff {
                    let path = entry.path();
                    std::fs::remove_dir_all(&path).map_err(|e| io_error("remove", &path, e))?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?
    }
}
