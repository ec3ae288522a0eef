//! Throwaway OS users for SSH logins (`jt<tag><pid>`), removed on drop.

use super::*;

/// An OS user made for a test, removed (with its home) on drop. Names start
/// with `jt` and a random part, so they cannot clash with real accounts.
pub struct OsUser {
    pub name: String,
}

impl OsUser {
    pub fn create(tag: &str) -> OsUser {
        let name = format!("jt{tag}{:06x}", std::process::id() & 0xffffff);
        // Two tests of one binary with the same tag would share (and
        // delete) one user: refuse the second.
        assert!(
            IN_USE.lock().expect("in use").insert(name.clone()),
            "OS user tag {tag:?} is taken by another test of this binary"
        );
        let _ = Command::new("userdel").args(["-r", &name]).output();
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/bash", &name])
            .output()
            .expect("useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        OsUser { name }
    }
}

/// The users this test binary holds now.
static IN_USE: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

impl Drop for OsUser {
    fn drop(&mut self) {
        if let Ok(mut in_use) = IN_USE.lock() {
            in_use.remove(&self.name);
        }
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .output();
        let _ = Command::new("userdel").args(["-r", &self.name]).output();
    }
}
