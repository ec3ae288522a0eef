//! Files written whole: to a temporary name beside the target, synced, then
//! renamed into place, so a crash never leaves half a key, certificate or
//! profile. Private files and their directories are for their owner only.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Who may read a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The owner only (0600; directories 0700).
    Private,
    /// Everyone may read (0644).
    Public,
}

/// What failed, and on which path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `contents` to `path` atomically, creating missing parent
/// directories private to the owner.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Mode) -> Result<(), FileError> {
    let dir = path.parent().ok_or_else(|| FileError {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no parent directory"),
    })?;
    create_private_dir(dir)?;
    let tmp = path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if mode == Mode::Private { 0o600 } else { 0o644 });
    }
    // On Windows, files under the user's profile inherit its ACL, which
    // already keeps other users out.
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(at(&tmp))?;
    f.write_all(contents).map_err(at(&tmp))?;
    f.sync_all().map_err(at(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(at(path))
}

/// Creates `dir` (and its missing parents) readable by the owner only.
/// An existing directory keeps its mode.
pub fn create_private_dir(dir: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(at(dir))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(at(dir))
    }
}

/// Creates `dir` if needed and makes it private even if it existed: for
/// directories a daemon keeps secrets or other users' data in.
#[cfg(unix)]
pub fn ensure_private_dir(dir: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::PermissionsExt;
    create_private_dir(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("a/b/file.json");
        write_atomic(&path, b"first", Mode::Public).expect("write");
        write_atomic(&path, b"second", Mode::Public).expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["file.json"]);
    }

    #[test]
    fn a_failed_write_names_the_path() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").expect("seed");
        // A file where a directory must go.
        let err = write_atomic(&file.join("below"), b"y", Mode::Private).expect_err("refused");
        assert_eq!(err.path, file);
        assert!(err.to_string().starts_with(&file.display().to_string()));
    }

    #[cfg(unix)]
    #[test]
    fn private_files_and_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let dir = tempfile::tempdir().expect("tmp");
        let key = dir.path().join("keys/p/alice");
        write_atomic(&key, b"secret", Mode::Private).expect("write");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(key.parent().expect("dir")), 0o700);
        let public = dir.path().join("keys/p/alice.pub");
        write_atomic(&public, b"ssh-ed25519 AAAA", Mode::Public).expect("write");
        assert_eq!(mode(&public), 0o644);

        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&open).expect("ensure");
        assert_eq!(mode(&open), 0o700);
    }
}
