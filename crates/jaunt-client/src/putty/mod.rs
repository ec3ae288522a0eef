//! PuTTY's saved sessions and trusted host CAs, wherever PuTTY keeps them:
//! files on Unix, the registry on Windows, or a `.reg` file to import
//! elsewhere. The formats are `jaunt_putty`'s; the logic here (merge the
//! Validity list, touch only Jaunt's values and Jaunt's sessions) is shared
//! by every store, which only reads and writes entries.

pub mod config;
mod files;
mod regfile;
#[cfg(windows)]
mod registry;

use crate::home::Home;
use crate::{ClientError, Result};
use jaunt_putty::names::{host_ca_index, host_ca_name};
use jaunt_putty::settings::{
    SessionSpec, Value, get, host_ca_values, is_jaunt_session, session_values,
};
use jaunt_putty::validity;

pub use files::PuttyDir;
pub use regfile::RegFile;
#[cfg(windows)]
pub use registry::Registry;

/// A saved session's name and its settings as text.
pub type SavedSession = (String, Vec<(String, String)>);

/// PuTTY's two lists of named entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Session,
    HostCa,
}

/// Where PuTTY's entries live. Values read back are text (a number in
/// decimal), as PuTTY's Unix files hold them.
pub trait Store {
    fn read(&self, kind: Kind, name: &str) -> Result<Option<Vec<(String, String)>>>;
    /// Sets `values` and deletes `remove` in the entry (creating it),
    /// leaving every other value as it was.
    fn write(
        &self,
        kind: Kind,
        name: &str,
        values: &[(&str, Value)],
        remove: &[&str],
    ) -> Result<()>;
    /// The (unescaped) names of the entries of this kind.
    fn names(&self, kind: Kind) -> Result<Vec<String>>;
    fn delete(&self, kind: Kind, name: &str) -> Result<()>;
    /// Where the entries go, for messages.
    fn describe(&self) -> String;
}

/// PuTTY's settings for this user on this system: the registry on
/// Windows, PuTTY's directory elsewhere.
pub fn native() -> Result<Box<dyn Store>> {
    #[cfg(windows)]
    return Ok(Box::new(Registry));
    #[cfg(not(windows))]
    return Ok(Box::new(PuttyDir::from_env()?));
}

/// Writes a saved session (or updates Jaunt's values in it); returns true
/// if it is new.
pub fn save_session(store: &dyn Store, name: &str, spec: &SessionSpec) -> Result<bool> {
    let created = store.read(Kind::Session, name)?.is_none();
    store.write(Kind::Session, name, &session_values(spec), &[])?;
    Ok(created)
}

/// Trusts the cluster's host CA keys (OpenSSH lines) for `hosts`, merging
/// into what each entry already trusts.
pub fn trust_host_cas(
    store: &dyn Store,
    cluster: &str,
    keys: &[String],
    hosts: &[String],
) -> Result<()> {
    // Entries past the keys held a key no longer trusted (the old key
    // after a CA rotation): PuTTY must not trust it any more.
    for name in store.names(Kind::HostCa)? {
        if host_ca_index(cluster, &name).is_some_and(|i| i >= keys.len().max(1)) {
            store.delete(Kind::HostCa, &name)?;
        }
    }
    for (i, key) in keys.iter().enumerate() {
        let entry = host_ca_name(cluster, i);
        let lines = store.read(Kind::HostCa, &entry)?.unwrap_or_default();
        let mut trusted = validity::parse(&entry, get(&lines, "Validity").unwrap_or(""))
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        // Early PuTTY 0.78 kept a comma-separated MatchHosts list.
        let legacy = get(&lines, "MatchHosts");
        if let Some(legacy) = legacy {
            trusted = validity::merge(&trusted, &validity::legacy_match_hosts(legacy));
        }
        let merged = validity::merge(&trusted, hosts);
        let blob = key
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| ClientError::Invalid(format!("malformed host CA key {key:?}")))?;
        let remove: &[&str] = if legacy.is_some() {
            &["MatchHosts"]
        } else {
            &[]
        };
        store.write(
            Kind::HostCa,
            &entry,
            &host_ca_values(blob, &validity::format(&merged)),
            remove,
        )?;
    }
    Ok(())
}

/// The sessions Jaunt made, by name.
pub fn jaunt_sessions(store: &dyn Store) -> Result<Vec<SavedSession>> {
    let mut out = Vec::new();
    for name in store.names(Kind::Session)? {
        if let Some(lines) = store.read(Kind::Session, &name)?
            && is_jaunt_session(&lines)
        {
            out.push((name, lines));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Removes a session only if Jaunt made it.
pub fn remove_session(store: &dyn Store, name: &str) -> Result<bool> {
    match store.read(Kind::Session, name)? {
        Some(lines) if is_jaunt_session(&lines) => {
            store.delete(Kind::Session, name)?;
            Ok(true)
        }
        _ => Ok(false),
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
    fn a_rotation_adds_an_entry_and_its_end_removes_the_old_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let putty = PuttyDir::at(dir.path());
        let old =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBHW1f8CsiktqDULBwXwhSRlA/ASOAxX0gZMLRbOU5YV";
        let new =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0S3hgWgmmZQvGoBNUbALvhEAbxSLUlZD0f9Co0H/aX";
        let hosts = ["node1".to_string()];
        let entry = |name: &str| std::fs::read_to_string(dir.path().join("sshhostcas").join(name));
        trust_host_cas(&putty, "example", &[old.into()], &hosts).expect("before");
        trust_host_cas(&putty, "example", &[old.into(), new.into()], &hosts).expect("during");
        assert!(
            entry("JauntHostCA-example")
                .expect("first")
                .contains("AIBHW1f8")
        );
        let second = entry("JauntHostCA-example-1").expect("alongside");
        assert!(
            second.contains("PublicKey=AAAAC3NzaC1lZDI1NTE5AAAAIJ0S3hg"),
            "{second}"
        );
        assert!(second.contains("Validity=node1\n"), "{second}");
        // Another cluster's entries are not touched.
        trust_host_cas(&putty, "other", &[old.into(), new.into()], &hosts).expect("other");
        trust_host_cas(&putty, "example", &[new.into()], &hosts).expect("after");
        assert!(
            entry("JauntHostCA-example")
                .expect("first")
                .contains("AIJ0S3hg")
        );
        assert!(
            entry("JauntHostCA-example-1").is_err(),
            "the old key is gone"
        );
        assert!(entry("JauntHostCA-other-1").is_ok());
    }

    #[test]
    fn host_ca_entries_merge_and_report_broken_validity() {
        let dir = tempfile::tempdir().expect("tmp");
        let putty = PuttyDir::at(dir.path());
        let key = vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBHW1f8CsiktqDULBwXwhSRlA/ASOAxX0gZMLRbOU5YV"
                .to_string(),
        ];
        trust_host_cas(&putty, "example", &key, &["node1".into()]).expect("first");
        trust_host_cas(&putty, "example", &key, &["node2".into(), "node1".into()]).expect("second");
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
        let err = trust_host_cas(&putty, "example", &key, &["node3".into()]).expect_err("broken");
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
        trust_host_cas(&putty, "example", &key, &["node3".into()]).expect("legacy merge");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("Validity=node1 || legacy1 || legacy2 || node3\n"),
            "{text}"
        );
        assert!(!text.contains("MatchHosts"), "{text}");
    }
}
