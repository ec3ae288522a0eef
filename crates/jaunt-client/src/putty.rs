//! PuTTY's saved sessions and trusted host CAs on Unix: files in PuTTY's
//! own directory (`$PUTTYDIR`, else `$XDG_CONFIG_HOME/putty` or
//! `~/.config/putty` if it exists, else `~/.putty`; `$PUTTYSESSIONS` and
//! `$PUTTYSSHHOSTCAS` override the sub-directories). The formats are
//! `jaunt_putty`'s; this module only reads and writes.

use crate::home::{Home, Mode};
use crate::{ClientError, Result};
use jaunt_putty::names::{escape_unix, host_ca_name, unescape};
use jaunt_putty::settings::{
    SessionSpec, get, host_ca_values, is_jaunt_session, parse_unix, session_values, update_unix,
};
use jaunt_putty::validity;
use std::path::{Path, PathBuf};

/// A saved session's name and its `Key=value` settings.
pub type SavedSession = (String, Vec<(String, String)>);

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

    pub fn sessions_dir(&self) -> &Path {
        &self.sessions
    }

    fn read(path: &Path) -> Result<Option<Vec<(String, String)>>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(parse_unix(&text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::file_err(path, e)),
        }
    }

    fn write(path: &Path, text: &str) -> Result<()> {
        let dir = path
            .parent()
            .ok_or_else(|| crate::file_err(path, "no directory"))?;
        Home::new(dir).write(path, text.as_bytes(), Mode::Private)
    }

    /// Writes (or updates) a saved session; returns true if it is new.
    pub fn save_session(&self, name: &str, spec: &SessionSpec) -> Result<bool> {
        let path = self.sessions.join(escape_unix(name));
        let existing = Self::read(&path)?;
        let created = existing.is_none();
        Self::write(
            &path,
            &update_unix(existing.unwrap_or_default(), &session_values(spec), &[]),
        )?;
        Ok(created)
    }

    /// Trusts the cluster's host CA keys (OpenSSH lines) for `hosts`,
    /// merging into what each entry already trusts.
    pub fn trust_host_cas(&self, cluster: &str, keys: &[String], hosts: &[String]) -> Result<()> {
        for (i, key) in keys.iter().enumerate() {
            let entry = host_ca_name(cluster, i, keys.len());
            let path = self.cas.join(escape_unix(&entry));
            let lines = Self::read(&path)?.unwrap_or_default();
            let mut trusted = validity::parse(&entry, get(&lines, "Validity").unwrap_or(""))
                .map_err(|e| ClientError::Invalid(e.to_string()))?;
            // Early PuTTY 0.78 kept a comma-separated MatchHosts list.
            if let Some(legacy) = get(&lines, "MatchHosts") {
                let old = validity::legacy_match_hosts(legacy);
                trusted = validity::merge(&trusted, &old);
            }
            let merged = validity::merge(&trusted, hosts);
            let blob = key
                .split_whitespace()
                .nth(1)
                .ok_or_else(|| ClientError::Invalid(format!("malformed host CA key {key:?}")))?;
            let text = update_unix(
                lines,
                &host_ca_values(blob, &validity::format(&merged)),
                &["MatchHosts"],
            );
            Self::write(&path, &text)?;
        }
        Ok(())
    }

    /// The sessions Jaunt made: `(name, settings)`.
    pub fn jaunt_sessions(&self) -> Result<Vec<SavedSession>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.sessions) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(crate::file_err(&self.sessions, e)),
        };
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = unescape(&file) else {
                continue;
            };
            if let Some(lines) = Self::read(&entry.path())?
                && is_jaunt_session(&lines)
            {
                out.push((name, lines));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Removes a session only if Jaunt made it.
    pub fn remove_session(&self, name: &str) -> Result<bool> {
        let path = self.sessions.join(escape_unix(name));
        match Self::read(&path)? {
            Some(lines) if is_jaunt_session(&lines) => {
                std::fs::remove_file(&path).map_err(|e| crate::file_err(&path, e))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The host CA public key lines of `cluster` from `known_hosts`.
pub fn host_ca_lines(home: &Home, cluster: &str) -> Result<Vec<String>> {
    let text = home
        .read_to_string(&home.known_hosts_path())?
        .unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some("@cert-authority")).then_some(())?;
            let patterns = parts.next()?;
            patterns
                .split(',')
                .any(|p| p == format!("*.{cluster}"))
                .then_some(())?;
            Some(format!("{} {}", parts.next()?, parts.next()?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ca_entries_merge_and_report_broken_validity() {
        let dir = tempfile::tempdir().expect("tmp");
        let putty = PuttyDir {
            sessions: dir.path().join("sessions"),
            cas: dir.path().join("sshhostcas"),
        };
        let key = vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBHW1f8CsiktqDULBwXwhSRlA/ASOAxX0gZMLRbOU5YV"
                .to_string(),
        ];
        putty
            .trust_host_cas("example", &key, &["node1".into()])
            .expect("first");
        putty
            .trust_host_cas("example", &key, &["node2".into(), "node1".into()])
            .expect("second");
        let path = dir.path().join("sshhostcas/JauntHostCA-example");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("Validity=node1 || node2\n"), "{text}");
        assert!(
            text.contains("PublicKey=AAAAC3NzaC1lZDI1NTE5AAAAIBHW1f8"),
            "{text}"
        );
        std::fs::write(
            &path,
            text.replace("Validity=node1 || node2", "Validity=node1 && node2") + "MatchHosts=old\n",
        )
        .expect("break");
        let err = putty
            .trust_host_cas("example", &key, &["node3".into()])
            .expect_err("broken");
        assert!(
            err.to_string()
                .starts_with("validity string for JauntHostCA-example"),
            "{err}"
        );
        std::fs::write(
            &path,
            "PublicKey=x\nValidity=node1\nMatchHosts=legacy1,legacy2\n",
        )
        .expect("legacy");
        putty
            .trust_host_cas("example", &key, &["node3".into()])
            .expect("legacy merge");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("Validity=node1 || legacy1 || legacy2 || node3\n"),
            "{text}"
        );
        assert!(!text.contains("MatchHosts"), "{text}");
    }
}
