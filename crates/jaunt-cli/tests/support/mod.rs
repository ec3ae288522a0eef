//! The integration-test harness: a whole cluster (store, auth, proxy) in
//! this process on port 0 in a temporary directory, and the real `jsh`,
//! `jctl` and `jaunt` binaries run as subprocesses against it.

#![allow(dead_code)]

use jaunt_config::{Config, FileConfig};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery";

pub fn bin(name: &str) -> PathBuf {
    match name {
        "jsh" => PathBuf::from(env!("CARGO_BIN_EXE_jsh")),
        "jctl" => PathBuf::from(env!("CARGO_BIN_EXE_jctl")),
        "jaunt" => PathBuf::from(env!("CARGO_BIN_EXE_jaunt")),
        other => panic!("unknown binary {other}"),
    }
}

/// What a finished command said.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "command failed:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Exit code 1 and `ERROR: ...` mentioning `fragment`.
    pub fn fails_with(self, fragment: &str) -> Self {
        assert_eq!(
            self.code,
            Some(1),
            "expected failure, got:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains("ERROR: "),
            "no ERROR line: {}",
            self.stderr
        );
        assert!(
            self.stderr.contains(fragment),
            "stderr should mention {fragment:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// Runs a command with `stdin` and collects its output.
pub fn run(mut cmd: Command, stdin: &str) -> Out {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `check` until it returns `Some` or the deadline passes.
pub fn eventually<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub struct Options {
    pub second_factor: &'static str,
    pub max_login_attempts: u32,
    pub node_offline_after: &'static str,
    pub recording: &'static str,
    pub ssh_relay: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            second_factor: "off",
            max_login_attempts: 5,
            node_offline_after: "60s",
            recording: "node",
            ssh_relay: "raw",
        }
    }
}

/// A cluster running in this process.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub data_dir: PathBuf,
    /// `127.0.0.1:port`
    pub proxy: String,
    pub ca_pin: String,
    rt: Option<tokio::runtime::Runtime>,
    daemon: Option<jaunt_cli::daemon::Daemon>,
    config: Config,
}

impl Cluster {
    pub fn start(opts: Options) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let flags = FileConfig {
            data_dir: Some(data_dir.clone()),
            cluster_name: Some("example".into()),
            listen: Some("127.0.0.1:0".into()),
            public_addr: Some(format!("127.0.0.1:{port}")),
            second_factor: Some(opts.second_factor.into()),
            max_login_attempts: Some(opts.max_login_attempts),
            node_offline_after: Some(opts.node_offline_after.into()),
            recording: Some(opts.recording.into()),
            ssh_relay: Some(opts.ssh_relay.into()),
            ..Default::default()
        };
        let config =
            Config::resolve(FileConfig::default(), flags, "test-host", "test").expect("config");
        let daemon = rt
            .block_on(jaunt_cli::daemon::start(&config, Some(listener), None))
            .expect("start cluster");
        let ca_pin = daemon.ca_pin.clone().expect("auth runs");
        Cluster {
            dir,
            data_dir,
            proxy: format!("127.0.0.1:{port}"),
            ca_pin,
            rt: Some(rt),
            daemon: Some(daemon),
            config,
        }
    }

    /// Stops auth and proxy (ending their connections) and starts them
    /// again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop_daemon();
        self.start_daemon();
    }

    /// Stops auth and proxy; nodes running in this process go on.
    pub fn stop_daemon(&mut self) {
        let rt = self.rt.as_ref().expect("runtime");
        if let Some(d) = self.daemon.take() {
            rt.block_on(d.stop());
        }
    }

    /// Starts auth and proxy again on the same port and data directory.
    pub fn start_daemon(&mut self) {
        let rt = self.rt.as_ref().expect("runtime");
        let listener = eventually(
            "the proxy port to be free again",
            Duration::from_secs(10),
            || rt.block_on(tokio::net::TcpListener::bind(&self.proxy)).ok(),
        );
        let daemon = rt
            .block_on(jaunt_cli::daemon::start(&self.config, Some(listener), None))
            .expect("restart");
        self.daemon = Some(daemon);
    }

    /// The running auth service (for the CA keys tests sign with).
    pub fn auth(&self) -> &jaunt_auth::AuthServer {
        self.daemon
            .as_ref()
            .and_then(|d| d.auth.as_deref())
            .expect("auth runs")
    }

    /// Joins a node in this process: direct mode on a port-0 listener when
    /// `direct`, else through a reverse tunnel. Its data lives in `dir/name`.
    pub fn add_node(&self, name: &str, labels: &str, direct: bool) -> jaunt_node::Node {
        let out = self.jctl(&["tokens", "add", "--type=node"]).ok();
        let token = out
            .stdout
            .split_whitespace()
            .nth(3)
            .expect("token")
            .to_string();
        self.start_node(name, labels, direct, Some(token))
    }

    pub fn start_node(
        &self,
        name: &str,
        labels: &str,
        direct: bool,
        token: Option<String>,
    ) -> jaunt_node::Node {
        let rt = self.rt.as_ref().expect("runtime");
        let listener = direct.then(|| {
            rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind")
        });
        let advertise = listener
            .as_ref()
            .map(|l| l.local_addr().expect("addr").to_string());
        let cfg = jaunt_node::NodeConfig {
            data_dir: self.dir.path().join(format!("node-{name}")),
            token: token.map(jaunt_types::Secret::new),
            proxy: self.proxy.clone(),
            ca_pin: Some(self.ca_pin.clone()),
            nodename: name.to_string(),
            labels: jaunt_config::parse_labels(labels).expect("labels"),
            advertise_addr: advertise,
            sftp_helper: Some(bin("jaunt")),
        };
        std::fs::create_dir_all(&cfg.data_dir).expect("node dir");
        rt.block_on(jaunt_node::start(cfg, listener))
            .expect("node starts")
    }

    pub fn jctl(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(bin("jctl"));
        cmd.args(args).env("JAUNT_DATA_DIR", &self.data_dir);
        run(cmd, "")
    }

    /// A fresh, empty `~/.jsh` for one user of this cluster.
    pub fn user_home(&self, name: &str) -> PathBuf {
        let home = self.dir.path().join(format!("home-{name}"));
        std::fs::create_dir_all(&home).expect("home");
        home
    }

    pub fn jsh(&self, home: &Path, args: &[&str], stdin: &str) -> Out {
        run(jsh_command(home, args), stdin)
    }

    /// `jctl users add`; returns the signup token.
    pub fn add_user(&self, name: &str, logins: &str) -> String {
        let out = self
            .jctl(&[
                "users",
                "add",
                name,
                "--roles=access",
                &format!("--logins={logins}"),
            ])
            .ok();
        token_from(&out.stdout)
    }

    /// Adds and signs up a user (second factor off); returns their home.
    pub fn signed_up(&self, name: &str, logins: &str) -> PathBuf {
        let token = self.add_user(name, logins);
        let home = self.user_home(name);
        self.jsh(
            &home,
            &[
                "signup",
                &format!("--proxy={}", self.proxy),
                &format!("--token={token}"),
                &format!("--ca-pin={}", self.ca_pin),
                "--password-stdin",
            ],
            &format!("{PASSWORD}\n"),
        )
        .ok();
        home
    }

    pub fn login(&self, home: &Path, user: &str, extra: &[&str], stdin: &str) -> Out {
        let proxy = format!("--proxy={}", self.proxy);
        let user = format!("--user={user}");
        let pin = format!("--ca-pin={}", self.ca_pin);
        let mut args = vec![
            "login",
            proxy.as_str(),
            user.as_str(),
            pin.as_str(),
            "--password-stdin",
        ];
        args.extend_from_slice(extra);
        self.jsh(home, &args, stdin)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let (Some(rt), Some(daemon)) = (self.rt.take(), self.daemon.take()) {
            rt.block_on(daemon.stop());
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

pub fn jsh_command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("jsh"));
    cmd.args(args)
        .env("JSH_HOME", home.join(".jsh"))
        .env("HOME", home)
        .env("USER", "jaunt-test-nobody");
    cmd
}

/// The `--token=` value in `jctl users add` output.
pub fn token_from(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--token="))
        .unwrap_or_else(|| panic!("no token in: {stdout}"))
        .to_string()
}

/// A `jaunt start` subprocess, stopped (SIGKILL) on drop.
pub struct Daemon {
    pub child: Child,
    pub proxy: String,
    pub stderr_log: PathBuf,
}

impl Daemon {
    /// Starts `jaunt start ARGS` and waits for its "is running" banner.
    pub fn spawn(args: &[&str], log: &Path) -> Daemon {
        let stderr = std::fs::File::create(log).expect("log file");
        let mut child = Command::new(bin("jaunt"))
            .arg("start")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn jaunt");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut proxy = None;
        let mut ready = false;
        for line in lines.by_ref() {
            let line = line.expect("read");
            if let Some(rest) = line.trim().strip_prefix("Proxy:     https://") {
                proxy = rest.split_whitespace().next().map(str::to_string);
            }
            if line.starts_with("Add a user:") || line.starts_with("Ready.") {
                ready = true;
                break;
            }
        }
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        if !ready {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("jaunt did not start:\n{log}")
        }
        // A node alone has no proxy of its own.
        let proxy = proxy.unwrap_or_default();
        Daemon {
            child,
            proxy,
            stderr_log: log.to_path_buf(),
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

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

/// A cluster with one direct node (node1) and one tunnel node (node2), an
/// OS user, and alice signed up and logged in with that login.
pub struct Setup {
    pub c: Cluster,
    pub os: OsUser,
    pub home: PathBuf,
    pub ssh_config: PathBuf,
    pub nodes: Vec<jaunt_node::Node>,
}

pub fn setup(tag: &str) -> Setup {
    let c = Cluster::start(Options {
        node_offline_after: "2s",
        ..Default::default()
    });
    let os = OsUser::create(tag);
    let home = c.signed_up("alice", &os.name);
    c.login(&home, "alice", &[], &format!("{PASSWORD}\n")).ok();
    let nodes = vec![
        c.add_node("node1", "env=dev,team=db", true),
        c.add_node("node2", "env=prod", false),
    ];
    let config = c.jsh(&home, &["config"], "").ok();
    let ssh_config = home.join("ssh_config");
    std::fs::write(&ssh_config, config.stdout).expect("ssh config");
    // The tunnel node is reachable once its tunnel is up.
    ssh_until_ok(
        &ssh_config,
        &format!("{}@node2.example", os.name),
        "true",
        "node2's tunnel",
        Duration::from_secs(20),
    );
    Setup {
        c,
        os,
        home,
        ssh_config,
        nodes,
    }
}

/// The SHA-256 of a file, as hex.
pub fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
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

/// A PuTTY tool with the user's home, jsh home and PuTTY directory.
pub fn putty_tool(s: &Setup, tool: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .env("HOME", &s.home)
        .env("JSH_HOME", s.home.join(".jsh"))
        .env("PUTTYDIR", s.home.join(".putty"));
    cmd
}

pub fn puttyconfig(s: &Setup, args: &[&str]) -> Out {
    let mut all = vec!["puttyconfig"];
    all.extend_from_slice(args);
    let mut cmd = jsh_command(&s.home, &all);
    cmd.env("PUTTYDIR", s.home.join(".putty"));
    run(cmd, "")
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

/// psftp with a saved session: uploads `src` as `remote`, then downloads it
/// to `back`.
pub fn psftp_round_trip(s: &Setup, session: &str, src: &Path, remote: &str, back: &Path) {
    let batch = back.with_extension("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {remote}\nget {remote} {}\n",
            src.display(),
            back.display()
        ),
    )
    .expect("batch");
    run(
        putty_tool(
            s,
            "psftp",
            &[
                "-batch",
                "-load",
                session,
                "-b",
                &batch.display().to_string(),
            ],
        ),
        "",
    )
    .ok();
}
