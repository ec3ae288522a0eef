//! OpenSSH's `ssh` through a `jsh config` file, a direct-node
//! configuration, and a ControlMaster connection kept open for a test.

use super::*;

/// `ssh -F <jsh config>` with batch mode (never a prompt), for the user
/// whose home holds the config (its ProxyCommand runs that user's jsh).
pub fn ssh(config: &Path, args: &[&str], stdin: &str) -> Out {
    let home = config.parent().expect("config lives in the user's home");
    let mut cmd = Command::new("ssh");
    cmd.arg("-F")
        .arg(config)
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"])
        .args(args)
        .env("JSH_HOME", home.join(".jsh"))
        .env("HOME", home);
    run(cmd, stdin)
}

/// Runs `ssh -F config target command` until it exits 0, within `deadline`.
pub fn ssh_until_ok(
    config: &Path,
    target: &str,
    command: &str,
    what: &str,
    deadline: Duration,
) -> Out {
    eventually(what, deadline, || {
        let out = ssh(config, &[target, command], "");
        (out.code == Some(0)).then_some(out)
    })
}

/// An OpenSSH client config that reaches a direct node at `addr` without
/// the proxy (so it outlives an auth outage), with the login's key and
/// certificate, the cluster's host CA, and a control socket for more
/// sessions over the same connection. Returns the config's path.
pub fn direct_ssh_config(home: &Path, jsh_config: &Path, addr: &str, login: &str) -> PathBuf {
    let text = std::fs::read_to_string(jsh_config).expect("jsh config");
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .trim()
            .trim_matches('"')
            .to_string()
    };
    let known = std::fs::read_to_string(value("UserKnownHostsFile")).expect("known_hosts");
    let ca = known
        .lines()
        .find(|l| l.starts_with("@cert-authority"))
        .map(|l| {
            l.split_whitespace()
                .skip(2)
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .expect("host CA line");
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let direct_known = home.join("direct_known_hosts");
    std::fs::write(
        &direct_known,
        format!("@cert-authority [{host}]:{port},{host} {ca}\n"),
    )
    .expect("known hosts");
    let config = home.join("direct_ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host direct\n  HostName {host}\n  Port {port}\n  User {login}\n  \
             IdentityFile {}\n  CertificateFile {}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n  \
             ControlPath {}\n",
            value("IdentityFile"),
            value("CertificateFile"),
            direct_known.display(),
            home.join("direct.ctl").display()
        ),
    )
    .expect("config");
    config
}

/// A master connection (`ssh -M`) on the config's control socket, stopped
/// (`ssh -O exit`, then its PID) on drop.
pub struct Master {
    config: PathBuf,
    child: Child,
}

impl Master {
    pub fn open(config: &Path) -> Master {
        let child = Command::new("ssh")
            .arg("-F")
            .arg(config)
            .args(["-M", "-N", "direct"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh -M");
        let master = Master {
            config: config.to_path_buf(),
            child,
        };
        eventually("the master connection", Duration::from_secs(20), || {
            let out = Command::new("ssh")
                .arg("-F")
                .arg(config)
                .args(["-O", "check", "direct"])
                .output()
                .ok()?;
            out.status.success().then_some(())
        });
        master
    }

    /// `ssh -O check`: succeeds while the master connection is up.
    pub fn check_command(&self) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(&self.config)
            .args(["-O", "check", "direct"]);
        cmd
    }

    /// `ssh -tt` over the master: a session with a terminal.
    pub fn command(&self, remote: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(&self.config)
            .args(["-tt", "direct", remote]);
        cmd
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = Command::new("ssh")
            .arg("-F")
            .arg(&self.config)
            .args(["-O", "exit", "direct"])
            .output();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `child`'s stdout until a line contains `want`; returns the lines.
pub fn read_until(child: &mut Child, want: &str) -> Vec<String> {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read");
        assert!(n > 0, "output ended before {want:?}: {lines:?}");
        let line = line.trim_end().to_string();
        let done = line.contains(want);
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// A fresh ed25519 key `dir/name` (and `.pub`), no passphrase.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success());
    key
}

/// An ssh-agent of the test's own holding one fresh key, stopped on drop.
pub struct Agent {
    pub sock: PathBuf,
    /// The key's public file.
    pub public: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Agent {
    pub fn start() -> Agent {
        let dir = tempfile::tempdir().expect("tmp");
        let sock = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        eventually("ssh-agent's socket", Duration::from_secs(10), || {
            sock.exists().then_some(())
        });
        let key = keygen(dir.path(), "agentkey");
        let mut add = Command::new("ssh-add");
        add.arg(&key).env("SSH_AUTH_SOCK", &sock);
        run(add, "").ok();
        Agent {
            sock,
            public: key.with_extension("pub"),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
