//! A private PostgreSQL server for a test: `initdb` in a temporary directory
//! as the `postgres` OS user (initdb refuses root; Debian's `postgresql`
//! package makes that user), on a free loopback port, stopped by PID when
//! dropped. Never the machine's own cluster.

// Shared by several test binaries; each uses part of it.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    uid: u32,
    gid: u32,
    /// `postgresql.conf` lines added at start (TLS, say).
    extra: Vec<String>,
}

/// The newest installed server's binaries.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (apt-get install postgresql; scripts/test.sh does)")
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL server under /usr/lib/postgresql")
        .1
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn postgres_user() -> (u32, u32) {
    let user = nix::unistd::User::from_name("postgres")
        .expect("read the user database")
        .expect("no postgres OS user (made by Debian's postgresql package)");
    (user.uid.as_raw(), user.gid.as_raw())
}

/// Makes `path` the server's own (key files must be, and private).
pub fn give_to_postgres(path: &Path) {
    let (uid, gid) = postgres_user();
    nix::unistd::chown(path, Some(uid.into()), Some(gid.into())).expect("chown");
}

impl Postgres {
    /// Starts a fresh server; `extra` lines go to its configuration.
    pub fn start_with(extra: &[String]) -> Postgres {
        Postgres::made_by(extra.to_vec(), |data| {
            let mut initdb = Command::new(bin_dir().join("initdb"));
            initdb
                .args([
                    "-D",
                    &data.display().to_string(),
                    "-U",
                    "jaunt",
                    "-A",
                    "trust",
                ])
                // A language's collation, as production databases have: the
                // store must not depend on the database's default order.
                .args(["--no-sync", "-E", "UTF8", "--locale=C"])
                .args(["--locale-provider=icu", "--icu-locale=en-US"]);
            initdb
        })
    }

    /// A streaming standby of `primary`: a base backup of it, started on a
    /// port of its own, reporting to the primary as `name` (what
    /// `synchronous_standby_names` there names).
    pub fn standby_of(primary: &Postgres, name: &str) -> Postgres {
        let mut extra = primary.extra.clone();
        extra.retain(|line| !line.starts_with("synchronous_standby_names"));
        extra.push(format!("cluster_name={name}"));
        let port = primary.port.to_string();
        Postgres::made_by(extra, |data| {
            let mut backup = Command::new(bin_dir().join("pg_basebackup"));
            backup
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "jaunt"])
                .args([
                    "-D",
                    &data.display().to_string(),
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                ]);
            backup
        })
    }

    /// A server whose data directory `make` writes (run as the postgres
    /// user) in a fresh temporary directory, started.
    fn made_by(extra: Vec<String>, make: impl FnOnce(&Path) -> Command) -> Postgres {
        let (uid, gid) = postgres_user();
        let dir = tempfile::Builder::new()
            .prefix("jaunt-pg-")
            .tempdir()
            .expect("tempdir");
        nix::unistd::chown(dir.path(), Some(uid.into()), Some(gid.into())).expect("chown");
        let mut cmd = make(&dir.path().join("data"));
        let out = cmd
            .uid(uid)
            .gid(gid)
            .output()
            .expect("run the data directory's maker");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            child: None,
            dir,
            port: 0,
            uid,
            gid,
            extra,
        };
        pg.run();
        pg
    }

    /// Promotes a standby and waits until it takes writes.
    pub fn promote(&self) {
        let done = self.psql("postgres", "SELECT pg_promote(true, 60)");
        assert_eq!(done.trim(), "t", "promotion");
    }

    /// Starts the server on `port`, its output in a log of its own.
    fn spawn(&self, port: u16) -> Child {
        let data = self.dir.path().join("data");
        let log =
            std::fs::File::create(self.dir.path().join(format!("server-{port}.log"))).expect("log");
        let mut cmd = Command::new(bin_dir().join("postgres"));
        cmd.args(["-D", &data.display().to_string(), "-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                &format!("unix_socket_directories={}", self.dir.path().display()),
            ])
            // Tests do not outlive the machine: no fsync (commits are
            // still acknowledged only once written to the WAL).
            .args(["-c", "fsync=off", "-c", "max_connections=200"]);
        for line in &self.extra {
            cmd.args(["-c", line]);
        }
        cmd.uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start postgres")
    }

    /// Waits until the server on `port` answers; false if it exited.
    fn wait_ready(&self, child: &mut Child, port: u16) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // the port was taken, or a bad setting
            }
            if self.ready(port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Starts the server on a free port (another if that one was taken in
    /// between) and waits until it accepts connections.
    fn run(&mut self) {
        for _ in 0..5 {
            let port = free_port();
            let mut child = self.spawn(port);
            if self.wait_ready(&mut child, port) {
                self.port = port;
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let logs: Vec<String> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("server-"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        panic!("postgres did not start: {}", logs.join("\n---\n"));
    }

    /// Whether the server answers queries (not only accepts TCP).
    fn ready(&self, port: u16) -> bool {
        Command::new(bin_dir().join("pg_isready"))
            .args([
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "jaunt",
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A URI for `database` (created if needed) with `options`.
    pub fn uri(&self, database: &str, options: &str) -> String {
        self.create_database(database);
        let q = if options.is_empty() {
            String::new()
        } else {
            format!("?{options}")
        };
        format!("postgres://jaunt@127.0.0.1:{}/{database}{q}", self.port)
    }

    pub fn create_database(&self, database: &str) {
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{database}'"),
        );
        if exists.trim() != "1" {
            self.psql("postgres", &format!("CREATE DATABASE \"{database}\""));
        }
    }

    /// Runs SQL with psql over the Unix socket (so a test may ask TLS of
    /// every TCP client); returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let socket_dir = self.dir.path().display().to_string();
        let out = Command::new("psql")
            .args([
                "-X",
                "-qAt",
                "-h",
                &socket_dir,
                "-p",
                &self.port.to_string(),
            ])
            .args([
                "-U",
                "jaunt",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server (fast shutdown: sessions are cut, committed data
    /// kept) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same port.
    pub fn restart_same_port(&mut self) {
        let mut child = self.spawn(self.port);
        assert!(
            self.wait_ready(&mut child, self.port),
            "postgres did not come back"
        );
        self.child = Some(child);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
