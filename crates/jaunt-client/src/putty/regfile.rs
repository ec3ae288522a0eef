//! A `.reg` file holding what would go into the registry, to import on
//! another machine or for another user. It starts empty (nothing is read
//! from the file or from this machine's registry), so the host CA entry's
//! Validity lists just the hosts of this run; [`RegFile::finish`] writes it.

use super::{Kind, Store};
use crate::Result;
use jaunt_putty::names::escape_registry;
use jaunt_putty::regfile::{PUTTY_KEY, RegKey, render};
use jaunt_putty::settings::Value;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

pub struct RegFile {
    path: PathBuf,
    keys: RefCell<Vec<(Kind, String, RegKey)>>,
}

/// The registry path of an entry, under HKEY_CURRENT_USER.
pub fn key_path(kind: Kind, name: &str) -> String {
    let list = match kind {
        Kind::Session => "Sessions",
        Kind::HostCa => "SshHostCAs",
    };
    format!(r"{PUTTY_KEY}\{list}\{}", escape_registry(name))
}

impl RegFile {
    pub fn new(path: &Path) -> Self {
        RegFile {
            path: path.to_path_buf(),
            keys: RefCell::new(Vec::new()),
        }
    }

    /// Writes the file (readable only by this user: it names key files).
    pub fn finish(self) -> Result<()> {
        let keys: Vec<RegKey> = self.keys.into_inner().into_iter().map(|k| k.2).collect();
        let bytes = render(&keys).map_err(|e| crate::ClientError::Invalid(e.to_string()))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        crate::home::Home::new(&dir).write(&self.path, &bytes, crate::home::Mode::Private)
    }
}

impl Store for RegFile {
    fn read(&self, kind: Kind, name: &str) -> Result<Option<Vec<(String, String)>>> {
        Ok(self
            .keys
            .borrow()
            .iter()
            .find(|(k, n, _)| *k == kind && n == name)
            .map(|(_, _, key)| {
                key.values
                    .iter()
                    .filter_map(|(n, v)| Some((n.clone(), v.as_ref()?.text())))
                    .collect()
            }))
    }

    fn write(
        &self,
        kind: Kind,
        name: &str,
        values: &[(&str, Value)],
        remove: &[&str],
    ) -> Result<()> {
        let mut keys = self.keys.borrow_mut();
        let index = match keys.iter().position(|(k, n, _)| *k == kind && n == name) {
            Some(i) => i,
            None => {
                keys.push((
                    kind,
                    name.to_string(),
                    RegKey {
                        path: key_path(kind, name),
                        values: Vec::new(),
                    },
                ));
                keys.len() - 1
            }
        };
        let entry = &mut keys[index].2.values;
        let updates = values
            .iter()
            .map(|(n, v)| (*n, Some(v.clone())))
            .chain(remove.iter().map(|n| (*n, None)));
        for (n, v) in updates {
            match entry.iter_mut().find(|(k, _)| k == n) {
                Some(slot) => slot.1 = v,
                None => entry.push((n.to_string(), v)),
            }
        }
        Ok(())
    }

    fn names(&self, kind: Kind) -> Result<Vec<String>> {
        Ok(self
            .keys
            .borrow()
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, n, _)| n.clone())
            .collect())
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        self.keys
            .borrow_mut()
            .retain(|(k, n, _)| !(*k == kind && n == name));
        Ok(())
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
