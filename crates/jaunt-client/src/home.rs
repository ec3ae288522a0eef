//! The layout of `~/.jsh` (or `$JSH_HOME`), the same as the reference
//! product's `~/.tsh`:
//!
//! ```text
//! current-profile                               name of the active profile
//! <proxy host>.yaml                             profile
//! known_hosts                                   @cert-authority lines
//! keys/<proxy host>/<user>                      SSH private key (0600)
//! keys/<proxy host>/<user>.pub                  SSH public key
//! keys/<proxy host>/<user>.ppk                  the same key for PuTTY (0600)
//! keys/<proxy host>/<user>.crt / .key           TLS client certificate / key
//! keys/<proxy host>/<user>-ssh/<cluster>-cert.pub   SSH user certificate
//! keys/<proxy host>/cas/<cluster>.pem           cluster TLS CA
//! ```
//!
//! Files are written whole to a temporary name and renamed into place, so a
//! crash never leaves half a key.

use crate::profile::Profile;
use crate::{ClientError, Result, file_err};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

pub use jaunt_sys::fs::Mode;

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// `$JSH_HOME`, else `~/.jsh` (`%USERPROFILE%\.jsh` on Windows).
    pub fn from_env() -> Result<Self> {
        if let Some(dir) = std::env::var_os("JSH_HOME").filter(|d| !d.is_empty()) {
            return Ok(Home::new(dir));
        }
        // Windows programs find the profile in USERPROFILE (HOME there is
        // set by Unix-like shells, and may be a Unix path).
        let (first, second) = match cfg!(windows) {
            true => ("USERPROFILE", "HOME"),
            false => ("HOME", "USERPROFILE"),
        };
        let home = std::env::var_os(first)
            .filter(|d| !d.is_empty())
            .or_else(|| std::env::var_os(second))
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                ClientError::Invalid("cannot find your home directory: set HOME or JSH_HOME".into())
            })?;
        Ok(Home::new(PathBuf::from(home).join(".jsh")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn keys_dir(&self, profile: &str) -> PathBuf {
        self.root.join("keys").join(profile)
    }
    pub fn key_path(&self, profile: &str, user: &str) -> PathBuf {
        self.keys_dir(profile).join(user)
    }
    pub fn pub_path(&self, profile: &str, user: &str) -> PathBuf {
        self.keys_dir(profile).join(format!("{user}.pub"))
    }
    pub fn ppk_path(&self, profile: &str, user: &str) -> PathBuf {
        self.keys_dir(profile).join(format!("{user}.ppk"))
    }
    pub fn ssh_cert_path(&self, profile: &str, user: &str, cluster: &str) -> PathBuf {
        self.keys_dir(profile)
            .join(format!("{user}-ssh"))
            .join(format!("{cluster}-cert.pub"))
    }
    pub fn tls_cert_path(&self, profile: &str, user: &str) -> PathBuf {
        self.keys_dir(profile).join(format!("{user}.crt"))
    }
    pub fn tls_key_path(&self, profile: &str, user: &str) -> PathBuf {
        self.keys_dir(profile).join(format!("{user}.key"))
    }
    pub fn ca_path(&self, profile: &str, cluster: &str) -> PathBuf {
        self.keys_dir(profile)
            .join("cas")
            .join(format!("{cluster}.pem"))
    }
    pub fn profile_path(&self, profile: &str) -> PathBuf {
        self.root.join(format!("{profile}.yaml"))
    }
    pub fn current_profile_path(&self) -> PathBuf {
        self.root.join("current-profile")
    }
    pub fn known_hosts_path(&self) -> PathBuf {
        self.root.join("known_hosts")
    }

    /// Writes `contents` to `path` atomically, creating private directories.
    pub fn write(&self, path: &Path, contents: &[u8], mode: Mode) -> Result<()> {
        jaunt_sys::fs::write_atomic(path, contents, mode).map_err(|e| file_err(&e.path, e.source))
    }

    pub fn read_to_string(&self, path: &Path) -> Result<Option<String>> {
        match std::fs::read_to_string(path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(file_err(path, e)),
        }
    }

    pub fn load_profile(&self, name: &str) -> Result<Option<Profile>> {
        let path = self.profile_path(name);
        match self.read_to_string(&path)? {
            None => Ok(None),
            Some(text) => serde_yaml_ng::from_str(&text)
                .map(Some)
                .map_err(|e| file_err(&path, format!("{e}; run 'jsh logout' and log in again"))),
        }
    }

    pub fn current_profile_name(&self) -> Result<Option<String>> {
        Ok(self
            .read_to_string(&self.current_profile_path())?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()))
    }

    pub fn current_profile(&self) -> Result<Option<Profile>> {
        match self.current_profile_name()? {
            Some(name) => self.load_profile(&name),
            None => Ok(None),
        }
    }

    /// Every saved profile, sorted by name.
    pub fn profiles(&self) -> Result<Vec<Profile>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(file_err(&self.root, e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".yaml")
                && let Some(p) = self.load_profile(stem)?
            {
                out.push(p);
            }
        }
        out.sort_by_key(|p| p.name());
        Ok(out)
    }

    pub fn save_profile(&self, profile: &Profile, make_current: bool) -> Result<()> {
        let name = profile.name();
        let text =
            serde_yaml_ng::to_string(profile).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.write(&self.profile_path(&name), text.as_bytes(), Mode::Public)?;
        if make_current {
            self.write(
                &self.current_profile_path(),
                format!("{name}\n").as_bytes(),
                Mode::Public,
            )?;
        }
        Ok(())
    }

    /// Replaces this cluster's `@cert-authority` lines in known_hosts.
    pub fn set_host_cas(&self, proxy_host: &str, cluster: &str, keys: &[String]) -> Result<()> {
        let path = self.known_hosts_path();
        let old = self.read_to_string(&path)?.unwrap_or_default();
        let patterns = format!("{proxy_host},{cluster},*.{cluster}");
        let mut lines: Vec<String> = old
            .lines()
            .filter(|l| !is_cluster_ca_line(l, cluster))
            .map(str::to_string)
            .collect();
        for key in keys {
            lines.push(format!(
                "@cert-authority {patterns} {} type=host",
                key.trim()
            ));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        self.write(&path, text.as_bytes(), Mode::Public)
    }

    /// Removes a profile: its keys, its file, its known_hosts lines, and the
    /// current-profile pointer if it pointed there.
    pub fn remove_profile(&self, profile: &Profile) -> Result<()> {
        let name = profile.name();
        let keys = self.keys_dir(&name);
        if keys.exists() {
            std::fs::remove_dir_all(&keys).map_err(|e| file_err(&keys, e))?;
        }
        let path = self.profile_path(&name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| file_err(&path, e))?;
        }
        let kh = self.known_hosts_path();
        if let Some(old) = self.read_to_string(&kh)? {
            // The root's lines and its leaves' (all name the proxy first).
            let kept: Vec<&str> = old
                .lines()
                .filter(|l| !is_cluster_ca_line(l, &profile.cluster) && !is_proxy_ca_line(l, &name))
                .collect();
            let mut text = kept.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            self.write(&kh, text.as_bytes(), Mode::Public)?;
        }
        if self.current_profile_name()?.as_deref() == Some(name.as_str()) {
            let cur = self.current_profile_path();
            std::fs::remove_file(&cur).map_err(|e| file_err(&cur, e))?;
        }
        Ok(())
    }
}

fn is_proxy_ca_line(line: &str, proxy_host: &str) -> bool {
    let mut parts = line.split_whitespace();
    parts.next() == Some("@cert-authority")
        && parts
            .next()
            .is_some_and(|p| p.split(',').next() == Some(proxy_host))
}

fn is_cluster_ca_line(line: &str, cluster: &str) -> bool {
    let mut parts = line.split_whitespace();
    parts.next() == Some("@cert-authority")
        && parts
            .next()
            .is_some_and(|p| p.split(',').any(|h| h == format!("*.{cluster}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_are_replaced_per_cluster() {
        let dir = tempfile::tempdir().expect("tmp");
        let home = Home::new(dir.path());
        home.write(
            &home.known_hosts_path(),
            b"other.host ssh-ed25519 AAAA\n",
            Mode::Public,
        )
        .expect("seed");
        home.set_host_cas(
            "proxy.example.com",
            "example",
            &["ssh-ed25519 AAAAONE".into()],
        )
        .expect("set");
        home.set_host_cas(
            "proxy.example.com",
            "example",
            &["ssh-ed25519 AAAATWO".into()],
        )
        .expect("set");
        home.set_host_cas("p2", "other", &["ssh-ed25519 AAAAX".into()])
            .expect("set");
        let text = std::fs::read_to_string(home.known_hosts_path()).expect("read");
        assert_eq!(
            text,
            "other.host ssh-ed25519 AAAA\n\
             @cert-authority proxy.example.com,example,*.example ssh-ed25519 AAAATWO type=host\n\
             @cert-authority p2,other,*.other ssh-ed25519 AAAAX type=host\n"
        );
    }
}
