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

impl Drop for OsUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .output();
        let _ = Command::new("userdel").args(["-r", &self.name]).output();
    }
}
