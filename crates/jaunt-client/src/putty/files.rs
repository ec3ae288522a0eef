//! PuTTY's Unix settings: one file of `Key=value` lines per entry in
//! PuTTY's own directory (`$PUTTYDIR`, else `$XDG_CONFIG_HOME/putty` or
//! `~/.config/putty` if it exists, else `~/.putty`; `$PUTTYSESSIONS` and
//! `$PUTTYSSHHOSTCAS` override the sub-directories), names `%XX`-escaped.

use super::{Kind, Store};
use crate::home::{Home, Mode};
use crate::{ClientError, Result};
use jaunt_putty::names::{escape_unix, unescape};
use jaunt_putty::settings::{Value, parse_unix, update_unix};
use std::path::{Path, PathBuf};

pub struct PuttyDir {
    sessions: PathBuf,
    cas: PathBuf,
}

fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl PuttyDir {
    pub fn from_env() -> Result<Self> {
        let home = var("HOME").ok_or_else(|| ClientError::Invalid("HOME is not set".into()))?;
        let root = var("PUTTYDIR").unwrap_or_else(|| {
            let xdg = var("XDG_CONFIG_HOME")
                .unwrap_or_else(|| home.join(".config"))
                .join("putty");
            if xdg.is_dir() {
                xdg
            } else {
                home.join(".putty")
            }
        });
        Ok(PuttyDir {
            sessions: var("PUTTYSESSIONS").unwrap_or_else(|| root.join("sessions")),
            cas: var("PUTTYSSHHOSTCAS").unwrap_or_else(|| root.join("sshhostcas")),
        })
    }

    /// PuTTY's layout under `root`.
    pub fn at(root: &Path) -> Self {
        PuttyDir {
            sessions: root.join("sessions"),
            cas: root.join("sshhostcas"),
        }
    }

    fn dir(&self, kind: Kind) -> &Path {
        match kind {
            Kind::Session => &self.sessions,
            Kind::HostCa => &self.cas,
        }
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        self.dir(kind).join(escape_unix(name))
    }
}

impl Store for PuttyDir {
    fn read(&self, kind: Kind, name: &str) -> Result<Option<Vec<(String, String)>>> {
        let path = self.path(kind, name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(parse_unix(&text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::file_err(&path, e)),
        }
    }

    fn write(
        &self,
        kind: Kind,
        name: &str,
        values: &[(&str, Value)],
        remove: &[&str],
    ) -> Result<()> {
        let existing = self.read(kind, name)?.unwrap_or_default();
        let path = self.path(kind, name);
        let text = update_unix(existing, values, remove);
        Home::new(self.dir(kind)).write(&path, text.as_bytes(), Mode::Private)
    }

    fn names(&self, kind: Kind) -> Result<Vec<String>> {
        let dir = self.dir(kind);
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(crate::file_err(dir, e)),
        };
        Ok(entries
            .flatten()
            .filter_map(|e| unescape(&e.file_name().to_string_lossy()))
            .collect())
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let path = self.path(kind, name);
        std::fs::remove_file(&path).map_err(|e| crate::file_err(&path, e))
    }

    fn describe(&self) -> String {
        self.sessions
            .parent()
            .unwrap_or(&self.sessions)
            .display()
            .to_string()
    }
}
