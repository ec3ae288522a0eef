//! The SFTP file server. It runs in a helper process (`jaunt sftp-server`)
//! that the node starts as the login user, speaking SFTP on stdin/stdout, so
//! the kernel applies that user's permissions to every file operation.
//! Each file operation is reported to the node as an audit line on stderr
//! (reads and writes summed per open file, reported when it closes).

use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status, StatusCode, Version,
};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most a single read returns: what OpenSSH's sftp-server allows.
const MAX_READ: u32 = 256 * 1024;
/// Directory entries sent per READDIR reply.
const DIR_CHUNK: usize = 128;

/// Starts a helper's stderr line that is an audit record, not a message.
pub const AUDIT_PREFIX: &str = "\u{1e}jaunt-audit ";

/// One file operation, as the helper reports it to the node.
pub type SftpRecord = jaunt_types::audit::SftpOp;

/// A record of `action` on `path` and how it went.
fn record(action: &str, path: &Path, result: Result<(), StatusCode>) -> SftpRecord {
    SftpRecord {
        action: action.to_string(),
        path: path.display().to_string(),
        success: result.is_ok(),
        target: None,
        bytes: None,
        error: result.err().map(|c| format!("{c:?}")),
    }
}

/// Sending a record to the node.
trait Report {
    fn report(self);
}

impl Report for SftpRecord {
    /// Writes the record to stderr for the node (ignored if stderr is gone).
    fn report(self) {
        #[cfg(test)]
        if tests::capture(&self) {
            return;
        }
        use std::io::Write as _;
        if let Ok(json) = serde_json::to_string(&self) {
            let _ = writeln!(std::io::stderr().lock(), "{AUDIT_PREFIX}{json}");
        }
    }
}

/// An open file. Its reads and writes are plain `pread`/`pwrite` calls on
/// this (single-client) helper's thread: to the page cache they take
/// microseconds, far less than a hand-off to a blocking pool.
struct OpenFile {
    file: std::fs::File,
    path: PathBuf,
    read: u64,
    written: u64,
}

#[derive(Default)]
pub struct FileServer {
    next: u64,
    files: HashMap<String, OpenFile>,
    /// Open directories: their path and the entries not yet read.
    dirs: HashMap<String, (PathBuf, Vec<File>)>,
}

/// Reports what was read and written through a file, and its close.
fn report_closed(f: &OpenFile) {
    for (action, bytes) in [("read", f.read), ("write", f.written)] {
        if bytes > 0 {
            let mut r = record(action, &f.path, Ok(()));
            r.bytes = Some(bytes);
            r.report();
        }
    }
    let mut r = record("close", &f.path, Ok(()));
    r.bytes = Some(f.read + f.written);
    r.report();
}

/// Reports `action` on `path` with the operation's outcome and passes it on.
fn audited<T>(action: &str, path: &Path, result: Result<T, StatusCode>) -> Result<T, StatusCode> {
    record(action, path, result.as_ref().map(|_| ()).map_err(|c| *c)).report();
    result
}

fn status(e: std::io::Error) -> StatusCode {
    match e.kind() {
        std::io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        std::io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".to_string(),
        language_tag: "en-US".to_string(),
    }
}

/// `.` and `..` resolved lexically, against the working directory.
fn absolute(path: &str) -> PathBuf {
    let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    resolve(&base, path)
}

/// `path` against `base`, with `.` and `..` resolved lexically (never
/// above `/`); an empty path is `base`.
fn resolve(base: &Path, path: &str) -> PathBuf {
    let joined = if path.is_empty() {
        base.to_path_buf()
    } else {
        base.join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

fn longname(name: &str, meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let kind = if meta.is_dir() {
        'd'
    } else if meta.file_type().is_symlink() {
        'l'
    } else {
        '-'
    };
    Listing {
        kind,
        mode: meta.mode(),
        nlink: meta.nlink(),
        uid: meta.uid(),
        gid: meta.gid(),
        len: meta.len(),
    }
    .line(name)
}

/// What an `ls -l` line shows of a file.
struct Listing {
    /// `d`, `l` or `-`.
    kind: char,
    mode: u32,
    nlink: u64,
    uid: u32,
    gid: u32,
    len: u64,
}

impl Listing {
    /// The `longname` of a directory entry, as `ls -l` (and OpenSSH's
    /// sftp-server) lays it out; clients show it as it is.
    fn line(&self, name: &str) -> String {
        let bits: String = (0..9)
            .map(|i| {
                let bit = 1 << (8 - i);
                if self.mode & bit == 0 {
                    '-'
                } else {
                    ['r', 'w', 'x'][i % 3]
                }
            })
            .collect();
        format!(
            "{}{bits} {:>4} {:<8} {:<8} {:>8} {name}",
            self.kind, self.nlink, self.uid, self.gid, self.len
        )
    }
}

impl FileServer {
    fn handle(&mut self) -> String {
        self.next += 1;
        self.next.to_string()
    }

    async fn apply_attrs(path: &Path, attrs: &FileAttributes) -> Result<(), StatusCode> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(size) = attrs.size {
            let f = tokio::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .await
                .map_err(status)?;
            f.set_len(size).await.map_err(status)?;
        }
        if let Some(perm) = attrs.permissions {
            tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(perm & 0o7777))
                .await
                .map_err(status)?;
        }
        if let (Some(atime), Some(mtime)) = (attrs.atime, attrs.mtime) {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(atime as u64);
            let mt = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime as u64);
            let f = std::fs::File::options()
                .write(true)
                .open(path)
                .or_else(|_| std::fs::File::open(path))
                .map_err(status)?;
            f.set_times(std::fs::FileTimes::new().set_accessed(at).set_modified(mt))
                .map_err(status)?;
        }
        if attrs.uid.is_some() || attrs.gid.is_some() {
            std::os::unix::fs::chown(path, attrs.uid, attrs.gid).map_err(status)?;
        }
        Ok(())
    }
}

impl russh_sftp::server::Handler for FileServer {
    type Error = StatusCode;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut opts = std::fs::OpenOptions::new();
        opts.read(pflags.contains(OpenFlags::READ))
            .write(pflags.contains(OpenFlags::WRITE) || pflags.contains(OpenFlags::APPEND))
            .append(pflags.contains(OpenFlags::APPEND))
            .truncate(pflags.contains(OpenFlags::TRUNCATE));
        if pflags.contains(OpenFlags::CREATE) {
            if pflags.contains(OpenFlags::EXCLUDE) {
                opts.create_new(true);
            } else {
                opts.create(true);
            }
            opts.mode(attrs.permissions.unwrap_or(0o644) & 0o7777);
        }
        let path = absolute(&filename);
        let file = audited("open", &path, opts.open(&path).map_err(status))?;
        let handle = self.handle();
        self.files.insert(
            handle.clone(),
            OpenFile {
                file,
                path,
                read: 0,
                written: 0,
            },
        );
        Ok(Handle { id, handle })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        if let Some(f) = self.files.remove(&handle) {
            // Nothing is buffered here; the file closes when dropped.
            report_closed(&f);
            return Ok(ok(id));
        }
        if self.dirs.remove(&handle).is_some() {
            return Ok(ok(id));
        }
        Err(StatusCode::Failure)
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let open = self.files.get_mut(&handle).ok_or(StatusCode::Failure)?;
        let mut data = vec![0u8; len.min(MAX_READ) as usize];
        let mut filled = 0;
        while filled < data.len() {
            let n = open
                .file
                .read_at(&mut data[filled..], offset + filled as u64)
                .map_err(status)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            return Err(StatusCode::Eof);
        }
        data.truncate(filled);
        open.read += filled as u64;
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let open = self.files.get_mut(&handle).ok_or(StatusCode::Failure)?;
        open.file.write_all_at(&data, offset).map_err(status)?;
        open.written += data.len() as u64;
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let path = absolute(&path);
        let meta = audited(
            "lstat",
            &path,
            tokio::fs::symlink_metadata(&path).await.map_err(status),
        )?;
        Ok(Attrs {
            id,
            attrs: (&meta).into(),
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let path = absolute(&path);
        let meta = audited(
            "stat",
            &path,
            tokio::fs::metadata(&path).await.map_err(status),
        )?;
        Ok(Attrs {
            id,
            attrs: (&meta).into(),
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let f = self.files.get(&handle).ok_or(StatusCode::Failure)?;
        let meta = audited("fstat", &f.path, f.file.metadata().map_err(status))?;
        Ok(Attrs {
            id,
            attrs: (&meta).into(),
        })
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let path = absolute(&path);
        audited("setstat", &path, Self::apply_attrs(&path, &attrs).await)?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        let open = self.files.get_mut(&handle).ok_or(StatusCode::Failure)?;
        let result = Self::apply_file_attrs(&open.file, &attrs);
        audited("fsetstat", &open.path, result)?;
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        self.open_dir(id, path).await
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        self.read_dir(id, handle)
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        let path = absolute(&filename);
        audited(
            "remove",
            &path,
            tokio::fs::remove_file(&path).await.map_err(status),
        )?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        use std::os::unix::fs::DirBuilderExt;
        let path = absolute(&path);
        let mut b = std::fs::DirBuilder::new();
        b.mode(attrs.permissions.unwrap_or(0o755) & 0o7777);
        audited("mkdir", &path, b.create(&path).map_err(status))?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, Self::Error> {
        let path = absolute(&path);
        audited(
            "rmdir",
            &path,
            tokio::fs::remove_dir(&path).await.map_err(status),
        )?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let abs = absolute(&path);
        let real = std::fs::canonicalize(&abs).unwrap_or(abs);
        record("realpath", &real, Ok(())).report();
        let name = real.display().to_string();
        Ok(Name {
            id,
            files: vec![File::dummy(name)],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let (from, to) = (absolute(&oldpath), absolute(&newpath));
        let result = tokio::fs::rename(&from, &to).await.map_err(status);
        let mut r = record("rename", &from, result);
        r.target = Some(to.display().to_string());
        r.report();
        result?;
        Ok(ok(id))
    }

    async fn readlink(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let target = tokio::fs::read_link(absolute(&path))
            .await
            .map_err(status)?;
        Ok(Name {
            id,
            files: vec![File::dummy(target.display().to_string())],
        })
    }

    async fn symlink(
        &mut self,
        id: u32,
        linkpath: String,
        targetpath: String,
    ) -> Result<Status, Self::Error> {
        // OpenSSH (and so every client) sends the target first and the new
        // link second, the reverse of the draft's field names.
        let link = absolute(&targetpath);
        let result = std::os::unix::fs::symlink(&linkpath, &link).map_err(status);
        let mut r = record("symlink", &link, result);
        r.target = Some(linkpath);
        r.report();
        result?;
        Ok(ok(id))
    }
}

impl FileServer {
    fn apply_file_attrs(f: &std::fs::File, attrs: &FileAttributes) -> Result<(), StatusCode> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(size) = attrs.size {
            f.set_len(size).map_err(status)?;
        }
        if let Some(perm) = attrs.permissions {
            f.set_permissions(std::fs::Permissions::from_mode(perm & 0o7777))
                .map_err(status)?;
        }
        if let (Some(atime), Some(mtime)) = (attrs.atime, attrs.mtime) {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(atime as u64);
            let mt = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime as u64);
            f.set_times(std::fs::FileTimes::new().set_accessed(at).set_modified(mt))
                .map_err(status)?;
        }
        Ok(())
    }

    async fn open_dir(&mut self, id: u32, path: String) -> Result<Handle, StatusCode> {
        let dir = absolute(&path);
        let entries = audited("opendir", &dir, Self::list_dir(&dir).await)?;
        let handle = self.handle();
        self.dirs.insert(handle.clone(), (dir, entries));
        Ok(Handle { id, handle })
    }

    /// A directory's entries with `.` and `..`, to be served from the end.
    async fn list_dir(dir: &Path) -> Result<Vec<File>, StatusCode> {
        let mut entries = vec![];
        for name in [".", ".."] {
            if let Ok(meta) = std::fs::metadata(dir.join(name)) {
                entries.push(File {
                    filename: name.to_string(),
                    longname: longname(name, &meta),
                    attrs: (&meta).into(),
                });
            }
        }
        let mut rd = tokio::fs::read_dir(dir).await.map_err(status)?;
        while let Some(e) = rd.next_entry().await.map_err(status)? {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(meta) = tokio::fs::symlink_metadata(e.path()).await {
                entries.push(File {
                    longname: longname(&name, &meta),
                    filename: name,
                    attrs: (&meta).into(),
                });
            }
        }
        // Served from the end, in chunks.
        entries.reverse();
        Ok(entries)
    }

    fn read_dir(&mut self, id: u32, handle: String) -> Result<Name, StatusCode> {
        let (dir, entries) = self.dirs.get_mut(&handle).ok_or(StatusCode::Failure)?;
        if entries.is_empty() {
            return Err(StatusCode::Eof);
        }
        let take = entries.len().min(DIR_CHUNK);
        let files: Vec<File> = (0..take).filter_map(|_| entries.pop()).collect();
        let mut r = record("readdir", dir, Ok(()));
        r.bytes = Some(files.len() as u64);
        r.report();
        Ok(Name { id, files })
    }
}

/// A handler's answer as a packet: its reply, or a status for its error.
fn reply<T: Into<Packet>>(id: u32, result: Result<T, StatusCode>) -> Packet {
    match result {
        Ok(p) => p.into(),
        Err(code) => Packet::Status(Status {
            id,
            status_code: code,
            error_message: code.to_string(),
            language_tag: "en-US".to_string(),
        }),
    }
}

/// One request to the handler.
async fn dispatch(h: &mut FileServer, packet: Packet) -> Packet {
    use russh_sftp::server::Handler as _;
    let id = packet.get_request_id();
    match packet {
        Packet::Init(p) => reply(id, h.init(p.version, p.extensions).await),
        Packet::Open(p) => reply(id, h.open(p.id, p.filename, p.pflags, p.attrs).await),
        Packet::Close(p) => reply(id, h.close(p.id, p.handle).await),
        Packet::Read(p) => reply(id, h.read(p.id, p.handle, p.offset, p.len).await),
        Packet::Write(p) => reply(id, h.write(p.id, p.handle, p.offset, p.data).await),
        Packet::Lstat(p) => reply(id, h.lstat(p.id, p.path).await),
        Packet::Fstat(p) => reply(id, h.fstat(p.id, p.handle).await),
        Packet::SetStat(p) => reply(id, h.setstat(p.id, p.path, p.attrs).await),
        Packet::FSetStat(p) => reply(id, h.fsetstat(p.id, p.handle, p.attrs).await),
        Packet::OpenDir(p) => reply(id, h.opendir(p.id, p.path).await),
        Packet::ReadDir(p) => reply(id, h.readdir(p.id, p.handle).await),
        Packet::Remove(p) => reply(id, h.remove(p.id, p.filename).await),
        Packet::MkDir(p) => reply(id, h.mkdir(p.id, p.path, p.attrs).await),
        Packet::RmDir(p) => reply(id, h.rmdir(p.id, p.path).await),
        Packet::RealPath(p) => reply(id, h.realpath(p.id, p.path).await),
        Packet::Stat(p) => reply(id, h.stat(p.id, p.path).await),
        Packet::Rename(p) => reply(id, h.rename(p.id, p.oldpath, p.newpath).await),
        Packet::ReadLink(p) => reply(id, h.readlink(p.id, p.path).await),
        Packet::Symlink(p) => reply(id, h.symlink(p.id, p.linkpath, p.targetpath).await),
        _ => reply::<Status>(id, Err(StatusCode::OpUnsupported)),
    }
}

/// The largest request accepted (a 256 KiB write and its header).
const MAX_PACKET: u32 = 256 * 1024 + 1024;
/// Pipe buffers on each side: clients keep many requests in flight.
const PIPE_BUFFER: usize = 512 * 1024;

/// Serves SFTP requests from `input` in order, answering on `output`.
/// Answers are flushed only when no further request is already buffered,
/// so a client's pipelined requests cost one write for many answers.
pub async fn serve<R, W>(input: R, output: W, mut handler: FileServer) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let served = serve_requests(input, output, &mut handler).await;
    // A client that goes without closing its files (a killed transfer)
    // still has what it read and wrote recorded.
    for (_, f) in handler.files.drain() {
        report_closed(&f);
    }
    served
}

async fn serve_requests<R, W>(input: R, output: W, handler: &mut FileServer) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut input = tokio::io::BufReader::with_capacity(PIPE_BUFFER, input);
    let mut output = tokio::io::BufWriter::with_capacity(PIPE_BUFFER, output);
    loop {
        let len = match input.read_u32().await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        if len > MAX_PACKET {
            // The answers already made still go out (they were held back
            // only because more requests were waiting).
            output.flush().await?;
            return Err(std::io::Error::other(format!(
                "SFTP packet of {len} bytes is over the {MAX_PACKET}-byte limit"
            )));
        }
        let mut body = vec![0u8; len as usize];
        if let Err(e) = input.read_exact(&mut body).await {
            output.flush().await?;
            return Err(e);
        }
        // A request that does not parse is still answered under its ID
        // (after the type byte), which the client waits on.
        let id = body
            .get(1..5)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes);
        let answer = match Packet::try_from(&mut bytes::Bytes::from(body)) {
            Ok(request) => dispatch(handler, request).await,
            Err(_) => Packet::error(id, StatusCode::BadMessage),
        };
        let encoded = bytes::Bytes::try_from(answer).map_err(std::io::Error::other)?;
        output.write_all(&encoded).await?;
        if input.buffer().is_empty() {
            output.flush().await?;
        }
    }
    output.flush().await
}

/// Serves SFTP on stdin/stdout until the client closes its side.
pub async fn serve_stdio() {
    use jaunt_sys::stdio;
    let result = serve(stdio::stdin(), stdio::stdout(), FileServer::default()).await;
    if let Err(e) = result {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), "sftp-server: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Records reported on this thread while a test captures them.
        static CAPTURED: std::cell::RefCell<Option<Vec<SftpRecord>>> =
            const { std::cell::RefCell::new(None) };
    }

    /// Keeps a record for the test capturing on this thread, if any.
    pub(super) fn capture(record: &SftpRecord) -> bool {
        CAPTURED.with(|c| match c.borrow_mut().as_mut() {
            Some(records) => {
                records.push(record.clone());
                true
            }
            None => false,
        })
    }

    /// Serves `requests` (then the client's end of input) on this thread
    /// and returns what was reported.
    fn served(requests: Vec<Packet>) -> Vec<SftpRecord> {
        let mut input = Vec::new();
        for p in requests {
            input.extend_from_slice(&bytes::Bytes::try_from(p).expect("encode"));
        }
        CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(serve(&input[..], tokio::io::sink(), FileServer::default()))
            .expect("served");
        CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default()
    }

    #[test]
    fn a_client_gone_before_close_still_has_its_bytes_recorded() {
        use russh_sftp::protocol::{Init, Open, Write};
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cut.bin");
        let records = served(vec![
            Packet::Init(Init {
                version: 3,
                extensions: Default::default(),
            }),
            Packet::Open(Open {
                id: 1,
                filename: path.display().to_string(),
                pflags: OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
                attrs: FileAttributes::default(),
            }),
            Packet::Write(Write {
                id: 2,
                handle: "1".into(),
                offset: 0,
                data: vec![7; 1000],
            }),
            // No close: the client is gone.
        ]);
        let actions: Vec<(&str, Option<u64>)> = records
            .iter()
            .map(|r| (r.action.as_str(), r.bytes))
            .collect();
        assert_eq!(
            actions,
            [("open", None), ("write", Some(1000)), ("close", Some(1000))]
        );
        assert!(records.iter().all(|r| r.path == path.display().to_string()));
    }

    #[test]
    fn looking_is_recorded_too() {
        use russh_sftp::protocol::{OpenDir, ReadDir, RealPath, Stat};
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("a"), b"x").expect("file");
        let at = dir.path().display().to_string();
        let records = served(vec![
            Packet::RealPath(RealPath {
                id: 1,
                path: at.clone(),
            }),
            Packet::Stat(Stat {
                id: 2,
                path: format!("{at}/a"),
            }),
            Packet::Stat(Stat {
                id: 3,
                path: format!("{at}/missing"),
            }),
            Packet::OpenDir(OpenDir {
                id: 4,
                path: at.clone(),
            }),
            Packet::ReadDir(ReadDir {
                id: 5,
                handle: "1".into(),
            }),
            Packet::ReadDir(ReadDir {
                id: 6,
                handle: "1".into(),
            }),
        ]);
        let seen: Vec<(&str, bool, Option<u64>)> = records
            .iter()
            .map(|r| (r.action.as_str(), r.success, r.bytes))
            .collect();
        assert_eq!(
            seen,
            [
                ("realpath", true, None),
                ("stat", true, None),
                ("stat", false, None),
                ("opendir", true, None),
                // ".", ".." and a; the second read is the end, not an event.
                ("readdir", true, Some(3)),
            ]
        );
    }

    #[test]
    fn paths_resolve_lexically_and_never_above_root() {
        let base = Path::new("/home/alice");
        for (path, want) in [
            ("", "/home/alice"),
            (".", "/home/alice"),
            ("file", "/home/alice/file"),
            ("a/./b/../c", "/home/alice/a/c"),
            ("..", "/home"),
            ("../../../..", "/"),
            ("/etc/passwd", "/etc/passwd"),
            ("/etc/../tmp/./x", "/tmp/x"),
            ("//double//slash/", "/double/slash"),
        ] {
            assert_eq!(resolve(base, path), PathBuf::from(want), "{path:?}");
        }
    }

    #[test]
    fn longnames_read_like_ls() {
        let entry = |kind, mode| Listing {
            kind,
            mode,
            nlink: 1,
            uid: 1000,
            gid: 100,
            len: 4096,
        };
        for (listing, want) in [
            (
                entry('-', 0o644),
                "-rw-r--r--    1 1000     100          4096 f",
            ),
            (
                entry('d', 0o755),
                "drwxr-xr-x    1 1000     100          4096 f",
            ),
            (
                entry('l', 0o777),
                "lrwxrwxrwx    1 1000     100          4096 f",
            ),
            (
                entry('-', 0o100600),
                "-rw-------    1 1000     100          4096 f",
            ),
            (
                entry('-', 0),
                "----------    1 1000     100          4096 f",
            ),
        ] {
            assert_eq!(listing.line("f"), want);
        }
    }

    #[test]
    fn io_errors_become_sftp_statuses() {
        use std::io::ErrorKind as K;
        for (kind, want) in [
            (K::NotFound, StatusCode::NoSuchFile),
            (K::PermissionDenied, StatusCode::PermissionDenied),
            (K::AlreadyExists, StatusCode::Failure),
            (K::Other, StatusCode::Failure),
        ] {
            assert_eq!(status(std::io::Error::from(kind)), want, "{kind:?}");
        }
    }
}
