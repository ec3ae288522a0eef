//! A stock OpenSSH `sshd` of the test's own, for agentless nodes: on a
//! free loopback port, with a config, host key and PID file in a temporary
//! directory (never the machine's sshd or /etc/ssh), stopped by its PID on
//! drop.

use super::*;

pub const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
    child: Child,
}

impl Sshd {
    /// Starts sshd with a fresh host key and `extra` config lines.
    pub fn start(extra: &str) -> Sshd {
        // sshd's privilege separation directory (systemd makes it at boot).
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("ssh_host_ed25519_key");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success(), "ssh-keygen: {out:?}");
        eventually("sshd to listen", Duration::from_secs(20), || {
            // sshd cannot listen on port 0: a port free a moment ago.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .ok()?;
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                     AuthorizedKeysFile none\nStrictModes no\nSubsystem sftp internal-sftp\n\
                     LogLevel VERBOSE\n{extra}",
                    key.display(),
                    dir.path().join("sshd.pid").display()
                ),
            )
            .expect("sshd_config");
            let log = std::fs::File::create(dir.path().join("sshd.log")).expect("log");
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn sshd");
            let up = within(Duration::from_secs(5), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).ok()
            });
            match up {
                Some(_) => Some(Sshd {
                    dir: tempfile::tempdir().expect("tempdir"),
                    config,
                    port,
                    child,
                }),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    None
                }
            }
        })
        .with_dir(dir)
    }

    fn with_dir(mut self, dir: tempfile::TempDir) -> Sshd {
        self.dir = dir;
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What `jaunt join openssh` runs to restart this sshd: SIGHUP makes
    /// sshd execute itself again and read its config anew.
    pub fn restart_command(&self) -> String {
        format!("kill -HUP {}", self.pid())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
