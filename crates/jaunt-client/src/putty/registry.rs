//! PuTTY's Windows settings: keys under
//! `HKEY_CURRENT_USER\Software\SimonTatham\PuTTY\{Sessions,SshHostCAs}`
//! with PuTTY's key-name escaping, strings as REG_SZ and numbers as
//! REG_DWORD. Only HKEY_CURRENT_USER: no administrator rights needed.

use super::regfile::key_path;
use super::{Kind, Store};
use crate::{ClientError, Result};
use jaunt_putty::names::unescape;
use jaunt_putty::regfile::PUTTY_KEY;
use jaunt_putty::settings::Value;
use winreg::RegKey;
use winreg::enums::{HKEY_CURRENT_USER, REG_DWORD};
use winreg::types::FromRegValue;

pub struct Registry;

fn err(path: &str, e: std::io::Error) -> ClientError {
    ClientError::Invalid(format!(r"registry key HKEY_CURRENT_USER\{path}: {e}"))
}

fn list(kind: Kind) -> String {
    match kind {
        Kind::Session => format!(r"{PUTTY_KEY}\Sessions"),
        Kind::HostCa => format!(r"{PUTTY_KEY}\SshHostCAs"),
    }
}

fn hkcu() -> RegKey {
    RegKey::predef(HKEY_CURRENT_USER)
}

impl Store for Registry {
    fn read(&self, kind: Kind, name: &str) -> Result<Option<Vec<(String, String)>>> {
        let path = key_path(kind, name);
        let key = match hkcu().open_subkey(&path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(&path, e)),
        };
        let mut out = Vec::new();
        for value in key.enum_values() {
            let (n, v) = value.map_err(|e| err(&path, e))?;
            // A value of another type (a user's REG_BINARY) is kept as it
            // is and never read by Jaunt.
            let text = if v.vtype == REG_DWORD {
                u32::from_reg_value(&v).ok().map(|n| n.to_string())
            } else {
                String::from_reg_value(&v).ok()
            };
            if let Some(text) = text {
                out.push((n, text));
            }
        }
        Ok(Some(out))
    }

    fn write(
        &self,
        kind: Kind,
        name: &str,
        values: &[(&str, Value)],
        remove: &[&str],
    ) -> Result<()> {
        let path = key_path(kind, name);
        let (key, _) = hkcu().create_subkey(&path).map_err(|e| err(&path, e))?;
        for (n, v) in values {
            match v {
                Value::Str(s) => key.set_value(n, s),
                Value::Dword(d) => key.set_value(n, d),
            }
            .map_err(|e| err(&path, e))?;
        }
        for n in remove {
            match key.delete_value(n) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(&path, e)),
                _ => {}
            }
        }
        Ok(())
    }

    fn names(&self, kind: Kind) -> Result<Vec<String>> {
        let path = list(kind);
        let key = match hkcu().open_subkey(&path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(&path, e)),
        };
        Ok(key.enum_keys().filter_map(|k| unescape(&k.ok()?)).collect())
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let path = key_path(kind, name);
        hkcu().delete_subkey_all(&path).map_err(|e| err(&path, e))
    }

    fn describe(&self) -> String {
        format!(r"HKEY_CURRENT_USER\{PUTTY_KEY}")
    }
}
