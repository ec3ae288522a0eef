//! A cluster in this process (store, auth, proxy on port 0 in a temporary
//! directory) with in-process nodes, `jaunt start` as a subprocess, and
//! the common setup of two nodes and a logged-in user.

use super::*;

pub struct Options {
    pub cluster_name: &'static str,
    pub second_factor: &'static str,
    pub max_login_attempts: u32,
    pub node_offline_after: &'static str,
    pub recording: &'static str,
    pub ssh_relay: &'static str,
    /// The proxy's node_address_allow; empty: the default.
    pub node_address_allow: &'static str,
    /// Nodes close idle connections after this (`off`: never).
    pub client_idle_timeout: &'static str,
    /// The operator's own certificate and key (PEM), as tls_cert_file and
    /// tls_key_file.
    pub public_cert: Option<(String, String)>,
    /// How long the cluster's nodes wait for a client to authenticate.
    pub login_grace: Duration,
    /// The disk the nodes' recordings may take.
    pub recording_disk_limit: u64,
    /// Serve the diagnostics port (on port 0; see `Cluster::diag`).
    pub diag: bool,
    /// Keep recordings in a directory (`Cluster::recordings_dir`) instead
    /// of the store.
    pub recordings_dir: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cluster_name: "example",
            second_factor: "off",
            max_login_attempts: 5,
            node_offline_after: "60s",
            recording: "node",
            ssh_relay: "raw",
            node_address_allow: "",
            client_idle_timeout: "off",
            public_cert: None,
            login_grace: jaunt_node::LOGIN_GRACE,
            recording_disk_limit: 10 << 30,
            diag: false,
            recordings_dir: false,
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
    login_grace: Duration,
    recording_disk_limit: u64,
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
            .block_on(async { jaunt_cli::daemon::bind_public(([127, 0, 0, 1], 0).into()) })
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tls_cert_file, tls_key_file) = match &opts.public_cert {
            Some((cert, key)) => {
                let (c, k) = (dir.path().join("public.crt"), dir.path().join("public.key"));
                std::fs::write(&c, cert).expect("cert");
                std::fs::write(&k, key).expect("key");
                (Some(c), Some(k))
            }
            None => (None, None),
        };
        let flags = FileConfig {
            tls_cert_file,
            tls_key_file,
            data_dir: Some(data_dir.clone()),
            cluster_name: Some(opts.cluster_name.into()),
            listen: Some("127.0.0.1:0".into()),
            public_addr: Some(format!("127.0.0.1:{port}")),
            second_factor: Some(opts.second_factor.into()),
            max_login_attempts: Some(opts.max_login_attempts),
            node_offline_after: Some(opts.node_offline_after.into()),
            recording: Some(opts.recording.into()),
            ssh_relay: Some(opts.ssh_relay.into()),
            node_address_allow: Some(opts.node_address_allow.into()),
            client_idle_timeout: Some(opts.client_idle_timeout.into()),
            diag_addr: opts.diag.then(|| "127.0.0.1:0".into()),
            recordings: opts
                .recordings_dir
                .then(|| jaunt_config::RecordingsSection {
                    kind: Some("dir".into()),
                    path: Some(dir.path().join("recordings")),
                }),
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
            login_grace: opts.login_grace,
            recording_disk_limit: opts.recording_disk_limit,
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
            || {
                let addr = self.proxy.parse().ok()?;
                rt.block_on(async { jaunt_cli::daemon::bind_public(addr) })
                    .ok()
            },
        );
        let daemon = rt
            .block_on(jaunt_cli::daemon::start(&self.config, Some(listener), None))
            .expect("restart");
        self.daemon = Some(daemon);
    }

    /// The diagnostics port's address, when `Options::diag` was set.
    pub fn diag(&self) -> String {
        self.daemon
            .as_ref()
            .and_then(|d| d.diag_addr)
            .expect("diag_addr is on")
            .to_string()
    }

    /// Where the cluster keeps recordings, when `Options::recordings_dir`
    /// was set.
    pub fn recordings_dir(&self) -> PathBuf {
        match &self.config.recordings {
            jaunt_config::Recordings::Dir(dir) => dir.clone(),
            jaunt_config::Recordings::Store => panic!("recordings are in the store"),
        }
    }

    /// Runs `f` (a call into the in-process services) on the cluster's
    /// runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("runtime").block_on(f)
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
            login_grace: self.login_grace,
            recording_disk_limit: self.recording_disk_limit,
        };
        std::fs::create_dir_all(&cfg.data_dir).expect("node dir");
        rt.block_on(jaunt_node::start(cfg, listener))
            .expect("node starts")
    }

    /// An API client with no certificate (trusting the cluster's CA), on
    /// a runtime of its own.
    pub fn anonymous_api(&self) -> (tokio::runtime::Runtime, jaunt_transport::ApiClient) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let trust = jaunt_transport::Trust {
            ca_pin: Some(self.ca_pin.clone()),
            ..Default::default()
        };
        let client = jaunt_transport::ApiClient::new(&self.proxy, &trust, None).expect("client");
        (rt, client)
    }

    pub fn jctl(&self, args: &[&str]) -> Out {
        jctl(&self.data_dir, args)
    }

    /// `jctl auth rotate --type=CA --manual --phase=PHASE`; what it says.
    pub fn rotate(&self, ca: &str, phase: &str) -> String {
        self.jctl(&[
            "auth",
            "rotate",
            &format!("--type={ca}"),
            "--manual",
            &format!("--phase={phase}"),
        ])
        .ok()
        .stdout
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

    /// A cluster with alice signed up and logged in, her logins a fresh
    /// OS user (`tag` as in [`OsUser::create`]); her home.
    pub fn with_alice(opts: Options, tag: &str) -> (Cluster, OsUser, PathBuf) {
        let c = Cluster::start(opts);
        let os = OsUser::create(tag);
        let home = c.signed_up("alice", &os.name);
        c.login(&home, "alice", &[], &format!("{PASSWORD}\n")).ok();
        (c, os, home)
    }

    /// Adds and signs up a user (second factor off); returns their home.
    pub fn signed_up(&self, name: &str, logins: &str) -> PathBuf {
        let token = self.add_user(name, logins);
        let home = self.user_home(name);
        self.signup(&home, &token, PASSWORD).ok();
        home
    }

    /// `jsh signup` with `token` (second factor off), `password` on stdin.
    pub fn signup(&self, home: &Path, token: &str, password: &str) -> Out {
        run(
            signup_command(home, &self.proxy, token, &self.ca_pin),
            &format!("{password}\n"),
        )
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

/// `jctl audit ls --format=json ARGS` of `c`, one object per line.
pub fn audit(c: &Cluster, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit", "ls", "--format=json"];
    all.extend_from_slice(args);
    c.jctl(&all)
        .ok()
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
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

impl Setup {
    /// OpenSSH through the proxy runs `true` on `node` (`node1`, ...) as
    /// the OS user, within `deadline`.
    pub fn ssh_eventually(&self, node: &str, what: &str, deadline: Duration) -> Out {
        let target = format!("{}@{node}.example", self.os.name);
        ssh_until_ok(&self.ssh_config, &target, "true", what, deadline)
    }
}

/// Gives alice only the role in `yaml` (named `name`) and logs in again.
pub fn switch_role(s: &Setup, name: &str, yaml: &str) {
    let role = s.home.join(format!("{name}.yaml"));
    std::fs::write(&role, yaml).expect("role");
    s.c.jctl(&["create", "-f", &role.display().to_string()])
        .ok();
    s.c.jctl(&["users", "update", "alice", &format!("--set-roles={name}")])
        .ok();
    s.c.login(&s.home, "alice", &[], &format!("{PASSWORD}\n"))
        .ok();
}
