//! The integration-test harness: a whole cluster (store, auth, proxy) in
//! this process on port 0 in a temporary directory, and the real `jsh`,
//! `jctl` and `jaunt` binaries run as subprocesses against it. Split by
//! what it starts: the cluster and `jaunt` daemons (`cluster.rs`), OS users
//! for logins (`os_user.rs`), OpenSSH clients (`openssh.rs`), PuTTY's
//! tools (`putty.rs`); what every test uses is here.

#![allow(dead_code)]

mod cluster;
mod openssh;
mod os_user;
mod putty;
mod sshd;

// Each test binary uses its own part of the harness.
#[allow(unused_imports)]
pub use {cluster::*, openssh::*, os_user::*, putty::*, sshd::*};

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
pub fn eventually<T>(what: &str, deadline: Duration, check: impl FnMut() -> Option<T>) -> T {
    within(deadline, check).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Polls `check` until it returns `Some`, or `None` once the deadline
/// passes.
pub fn within<T>(deadline: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `jctl` against the auth service whose data directory is `data_dir`.
pub fn jctl(data_dir: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(bin("jctl"));
    cmd.args(args).env("JAUNT_DATA_DIR", data_dir);
    run(cmd, "")
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

/// `jsh signup` against `proxy` with a user's token, the password on stdin.
pub fn signup_command(home: &Path, proxy: &str, token: &str, ca_pin: &str) -> Command {
    jsh_command(
        home,
        &[
            "signup",
            &format!("--proxy={proxy}"),
            &format!("--token={token}"),
            &format!("--ca-pin={ca_pin}"),
            "--password-stdin",
        ],
    )
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

pub fn unix_now() -> u64 {
    jaunt_sys::clock::now() as u64
}

/// Runs `jsh signup` as a person would: password, then reads the otpauth
/// URI it prints and answers with the current code. Returns the TOTP of
/// `user` (of cluster "example").
pub fn signup_with_otp(
    home: &Path,
    proxy: &str,
    token: &str,
    ca_pin: &str,
    user: &str,
) -> totp_rs::TOTP {
    let mut child = signup_command(home, proxy, token, ca_pin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signup");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{PASSWORD}").expect("password");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut uri = None;
    let mut printed = String::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        printed.push_str(&line);
        printed.push('\n');
        if let Some(u) = line.strip_prefix("Or add it by hand: ") {
            uri = Some(u.to_string());
            break;
        }
    }
    let uri = uri.unwrap_or_else(|| panic!("no otpauth URI in:\n{printed}"));
    assert!(
        printed.contains('█') || printed.contains('▀'),
        "a QR code is drawn:\n{printed}"
    );
    assert!(
        uri.starts_with(&format!("otpauth://totp/Jaunt:{user}%40example?")),
        "{uri}"
    );
    let totp = totp_rs::TOTP::from_url_unchecked(&uri).expect("uri");
    writeln!(stdin, "{}", totp.generate(unix_now())).expect("code");
    drop(stdin);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert!(status.success(), "signup failed: {rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains(&format!("User {user} is ready"))),
        "{rest:?}"
    );
    totp
}

/// The status code and body of a plain HTTP GET.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: diag\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    tcp.read_to_string(&mut text).expect("read");
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}
