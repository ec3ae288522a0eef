//! `jsh scp`: files to and from a node over SFTP through the proxy, as the
//! reference product's `tsh scp` does. What the arguments mean (pure:
//! `[login@]host:path` endpoints, the direction, where each file lands) is
//! decided first; the copying runs over one SFTP session and reports its
//! progress to the caller, which draws it (or not).

use crate::{ClientError, Result};
use russh_sftp::client::SftpSession;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Local(PathBuf),
    Remote {
        login: Option<String>,
        host: String,
        path: String,
    },
}

/// Reads an argument as scp does: `[login@]host:path` is remote (an empty
/// path is the login's home); anything with no colon before its first
/// slash is local, and so is `C:\...` (a drive letter).
pub fn parse_endpoint(arg: &str) -> Endpoint {
    let colon = arg.find(':');
    let slash = arg.find(['/', '\\']);
    let remote = match (colon, slash) {
        (Some(c), Some(s)) => c < s,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let drive = colon == Some(1) && arg.as_bytes()[0].is_ascii_alphabetic();
    if !remote || drive || arg.starts_with(':') {
        return Endpoint::Local(PathBuf::from(arg));
    }
    let (who, path) = arg.split_at(colon.unwrap_or(0));
    let path = path.trim_start_matches(':').to_string();
    let (login, host) = match who.rsplit_once('@') {
        Some((l, h)) => (Some(l.to_string()), h.to_string()),
        None => (None, who.to_string()),
    };
    Endpoint::Remote { login, host, path }
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub login: Option<String>,
    pub host: String,
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    /// Local sources to a remote path.
    Upload { sources: Vec<PathBuf>, dest: String },
    /// Remote sources (of one host) to a local path.
    Download { sources: Vec<String>, dest: PathBuf },
}

fn invalid(m: impl Into<String>) -> ClientError {
    ClientError::Invalid(m.into())
}

/// The copy `args` (sources, then the destination) ask for: one side
/// remote, on one host.
pub fn plan(args: &[String]) -> Result<Plan> {
    let Some((dest, sources)) = args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(invalid("give one or more sources and a destination"));
    };
    let sources: Vec<Endpoint> = sources.iter().map(|s| parse_endpoint(s)).collect();
    match parse_endpoint(dest) {
        Endpoint::Remote { login, host, path } => {
            let mut local = Vec::new();
            for s in sources {
                match s {
                    Endpoint::Local(p) => local.push(p),
                    Endpoint::Remote { .. } => {
                        return Err(invalid(
                            "copying from one remote host to another is not supported",
                        ));
                    }
                }
            }
            Ok(Plan {
                login,
                host,
                direction: Direction::Upload {
                    sources: local,
                    dest: path,
                },
            })
        }
        Endpoint::Local(dest) => {
            let mut remote = Vec::new();
            let mut from: Option<(Option<String>, String)> = None;
            for s in sources {
                let Endpoint::Remote { login, host, path } = s else {
                    return Err(invalid(
                        "one side must be remote ([login@]host:path); use cp for local copies",
                    ));
                };
                match &from {
                    Some((l, h)) if *l != login || *h != host => {
                        return Err(invalid("every remote source must be on the same host"));
                    }
                    _ => from = Some((login, host)),
                }
                remote.push(path);
            }
            let (login, host) = from.ok_or_else(|| invalid("no remote source"))?;
            Ok(Plan {
                login,
                host,
                direction: Direction::Download {
                    sources: remote,
                    dest,
                },
            })
        }
    }
}

/// Where a copied item lands: inside `dest` when it is a directory (or
/// several items go there), else at `dest` itself.
pub fn target(dest: &str, dest_is_dir: bool, name: &str) -> String {
    if !dest_is_dir {
        return dest.to_string();
    }
    match dest {
        "" | "." => name.to_string(),
        d if d.ends_with('/') => format!("{d}{name}"),
        d => format!("{d}/{name}"),
    }
}

/// The last component of a remote or local path.
pub fn base_name(path: &str) -> String {
    path.trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_string()
}

/// Told how each file goes, to draw progress.
pub trait Progress {
    /// A file of `len` bytes starts; `name` is what the user sees.
    fn start(&self, name: &str, len: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

const CHUNK: usize = 256 * 1024;

fn sftp_err(what: &str, path: &str, e: impl std::fmt::Display) -> ClientError {
    invalid(format!("{what} {path}: {e}"))
}

async fn copy<R, W>(mut from: R, mut to: W, progress: &dyn Progress, what: &str) -> Result<u64>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = from
            .read(&mut buf)
            .await
            .map_err(|e| invalid(format!("reading {what}: {e}")))?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])
            .await
            .map_err(|e| invalid(format!("writing {what}: {e}")))?;
        total += n as u64;
        progress.advance(n as u64);
    }
    to.shutdown()
        .await
        .map_err(|e| invalid(format!("writing {what}: {e}")))?;
    Ok(total)
}

/// Copies local `sources` to remote `dest`; directories only with
/// `recursive`.
pub async fn upload(
    sftp: &SftpSession,
    sources: &[PathBuf],
    dest: &str,
    recursive: bool,
    progress: &dyn Progress,
) -> Result<()> {
    let probe = if dest.is_empty() { "." } else { dest };
    let dest_is_dir = match sftp.metadata(probe).await {
        Ok(m) => m.is_dir(),
        Err(_) if sources.len() > 1 => {
            return Err(invalid(format!("{dest}: no such directory")));
        }
        Err(_) => false,
    };
    for src in sources {
        let name = base_name(&src.display().to_string());
        let to = target(dest, dest_is_dir, &name);
        upload_one(sftp, src, &to, recursive, progress).await?;
    }
    Ok(())
}

async fn upload_one(
    sftp: &SftpSession,
    src: &Path,
    to: &str,
    recursive: bool,
    progress: &dyn Progress,
) -> Result<()> {
    let meta = std::fs::metadata(src).map_err(|e| crate::file_err(src, e))?;
    if meta.is_dir() {
        if !recursive {
            return Err(invalid(format!(
                "{}: is a directory; use -r to copy it",
                src.display()
            )));
        }
        if !sftp.try_exists(to).await.unwrap_or(false) {
            sftp.create_dir(to)
                .await
                .map_err(|e| sftp_err("creating", to, e))?;
        }
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(|e| crate::file_err(src, e))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for entry in entries {
            let name = base_name(&entry.display().to_string());
            Box::pin(upload_one(
                sftp,
                &entry,
                &target(to, true, &name),
                recursive,
                progress,
            ))
            .await?;
        }
        return Ok(());
    }
    let file = tokio::fs::File::open(src)
        .await
        .map_err(|e| crate::file_err(src, e))?;
    let remote = sftp
        .create(to)
        .await
        .map_err(|e| sftp_err("creating", to, e))?;
    progress.start(to, meta.len());
    copy(file, remote, progress, to).await?;
    progress.finish();
    Ok(())
}

/// Copies remote `sources` to local `dest`; directories only with
/// `recursive`.
pub async fn download(
    sftp: &SftpSession,
    sources: &[String],
    dest: &Path,
    recursive: bool,
    progress: &dyn Progress,
) -> Result<()> {
    let dest_is_dir = dest.is_dir();
    if sources.len() > 1 && !dest_is_dir {
        return Err(invalid(format!("{}: no such directory", dest.display())));
    }
    for src in sources {
        let name = base_name(src);
        let to = target(&dest.display().to_string(), dest_is_dir, &name);
        download_one(sftp, src, Path::new(&to), recursive, progress).await?;
    }
    Ok(())
}

async fn download_one(
    sftp: &SftpSession,
    src: &str,
    to: &Path,
    recursive: bool,
    progress: &dyn Progress,
) -> Result<()> {
    let meta = sftp
        .metadata(src)
        .await
        .map_err(|e| sftp_err("reading", src, e))?;
    if meta.is_dir() {
        if !recursive {
            return Err(invalid(format!("{src}: is a directory; use -r to copy it")));
        }
        std::fs::create_dir_all(to).map_err(|e| crate::file_err(to, e))?;
        let mut names: Vec<String> = sftp
            .read_dir(src)
            .await
            .map_err(|e| sftp_err("listing", src, e))?
            .map(|e| e.file_name())
            .filter(|n| n != "." && n != "..")
            .collect();
        names.sort();
        for name in names {
            Box::pin(download_one(
                sftp,
                &target(src, true, &name),
                &to.join(&name),
                recursive,
                progress,
            ))
            .await?;
        }
        return Ok(());
    }
    let remote = sftp
        .open(src)
        .await
        .map_err(|e| sftp_err("opening", src, e))?;
    let file = tokio::fs::File::create(to)
        .await
        .map_err(|e| crate::file_err(to, e))?;
    progress.start(src, meta.len());
    copy(remote, file, progress, src).await?;
    progress.finish();
    Ok(())
}

/// An SFTP session on a connected, authenticated node.
pub async fn sftp<H: russh::client::Handler>(
    handle: &russh::client::Handle<H>,
) -> Result<SftpSession> {
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| ClientError::Protocol(format!("session channel: {e}")))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| ClientError::Protocol(format!("sftp subsystem: {e}")))?;
    SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| ClientError::Protocol(format!("sftp: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(items: &[&str]) -> Vec<String> {
        items.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("root@db:/etc/hosts"),
            Endpoint::Remote {
                login: Some("root".into()),
                host: "db".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(
            parse_endpoint("db:"),
            Endpoint::Remote {
                login: None,
                host: "db".into(),
                path: String::new()
            }
        );
        for local in [
            "file.txt",
            "./a:b",
            "/tmp/x:y",
            "C:\\Users\\gus\\f.txt",
            ":odd",
        ] {
            assert!(
                matches!(parse_endpoint(local), Endpoint::Local(_)),
                "{local}"
            );
        }
    }

    #[test]
    fn plans() {
        let up = plan(&s(&["a", "b", "alice@db:dir"])).expect("upload");
        assert_eq!(
            (up.login.as_deref(), up.host.as_str()),
            (Some("alice"), "db")
        );
        assert_eq!(
            up.direction,
            Direction::Upload {
                sources: vec!["a".into(), "b".into()],
                dest: "dir".into()
            }
        );
        let down = plan(&s(&["db:x", "db:y", "."])).expect("download");
        assert!(
            matches!(down.direction, Direction::Download { ref sources, .. } if sources.len() == 2)
        );
        for (args, why) in [
            (s(&["a", "b"]), "one side must be remote"),
            (s(&["db:a", "web:b", "."]), "same host"),
            (s(&["db:a", "web:b"]), "one remote host to another"),
            (s(&["db:a"]), "sources and a destination"),
        ] {
            let err = plan(&args).expect_err(why).to_string();
            assert!(err.contains(why), "{args:?}: {err}");
        }
    }

    #[test]
    fn targets() {
        assert_eq!(target("dir", true, "f"), "dir/f");
        assert_eq!(target("dir/", true, "f"), "dir/f");
        assert_eq!(target("", true, "f"), "f");
        assert_eq!(target("new.txt", false, "f"), "new.txt");
        assert_eq!(base_name("/a/b/c.txt"), "c.txt");
        assert_eq!(base_name("dir/"), "dir");
        assert_eq!(base_name("C:\\x\\y"), "y");
    }
}
