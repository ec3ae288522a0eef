//! The Windows `jsh.exe` (built for x86_64-pc-windows-gnu by
//! scripts/test.sh) under Wine with no display: it logs in to a real
//! cluster, `jsh.exe puttyconfig` writes PuTTY's registry keys through the
//! same code as on Windows, `wine reg query` reads every value back with
//! its type, and a `--reg-file` export imports with `regedit /S` to the
//! same keys. Set JAUNT_SKIP_WINE=1 to skip it (it says so loudly), and
//! JAUNT_TEST_WINEDEBUG (e.g. `+process,+loaddll`) to trace Wine.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const PUTTY: &str = r"HKCU\Software\SimonTatham\PuTTY";

// Wine's programs by their full Windows path: Wine loads them directly.
// A bare name (`wine reg`) is looked up through start.exe and
// ShellExecuteEx, a second launcher that failed now and then on a loaded
// machine ("ShellExecuteEx failed: Internal error") before the program
// ran at all.
const WINEBOOT: &str = r"C:\windows\system32\wineboot.exe";
const REG: &str = r"C:\windows\system32\reg.exe";
const REGEDIT: &str = r"C:\windows\regedit.exe";

/// A private, headless Wine prefix, stopped (`wineserver -k`) on drop.
struct Wine {
    dir: tempfile::TempDir,
    jsh: PathBuf,
}

impl Wine {
    fn start() -> Option<Wine> {
        if std::env::var_os("JAUNT_SKIP_WINE").is_some() {
            eprintln!(
                "\n!!!!!!!!\n!!! JAUNT_SKIP_WINE is set: the Windows jsh.exe and its \
                 registry writer are NOT tested\n!!!!!!!!\n"
            );
            return None;
        }
        let jsh = std::env::var_os("JAUNT_JSH_EXE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let native = bin("jsh");
                let target = native
                    .parent()
                    .and_then(Path::parent)
                    .expect("target directory");
                target.join("x86_64-pc-windows-gnu/debug/jsh.exe")
            });
        assert!(
            jsh.is_file(),
            "{} is missing: scripts/test.sh builds it (cargo build -p jaunt-cli --bin jsh \
             --no-default-features --target x86_64-pc-windows-gnu, with the mingw-w64 \
             toolchain and wine installed); JAUNT_SKIP_WINE=1 skips this test",
            jsh.display()
        );
        let dir = tempfile::tempdir().expect("tmp");
        let wine = Wine { dir, jsh };
        let out = run(wine.command("wine", &[WINEBOOT, "-i"]), "");
        assert_eq!(out.code, Some(0), "wineboot: {out:?}");
        // wineboot returns while what it started (services, the wine.inf
        // setup in rundll32) may still be writing the prefix's registry and
        // system32; wait until the prefix's server has nothing left
        // running, as winetricks does.
        let out = run(wine.command("wineserver", &["-w"]), "");
        assert_eq!(out.code, Some(0), "wineserver -w: {out:?}");
        // One server for the rest of the test (Drop stops it). Otherwise
        // each command's server exits 3 s after it, and the next command
        // boots another with Wine's services or meets one shutting down.
        wine.detached("wineserver", &["-p"]);
        // Those services start with the first program and live as long as
        // the server: started here, they hold none of a test command's
        // pipes (a command's output would not end until they exit).
        wine.detached("wine", &[WINEBOOT]);
        // Rust's std needs bcryptprimitives.dll, which Wine 8 lacks.
        let dll = wine
            .prefix()
            .join("drive_c/windows/system32/bcryptprimitives.dll");
        if !dll.exists() {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine/bcryptprimitives.c");
            let out = run(
                {
                    let mut c = Command::new("x86_64-w64-mingw32-gcc");
                    c.args(["-O2", "-shared", "-s", "-o"])
                        .arg(&dll)
                        .arg(&src)
                        .arg("-ladvapi32");
                    c
                },
                "",
            );
            assert_eq!(out.code, Some(0), "building the Wine shim: {out:?}");
        }
        Some(wine)
    }

    /// Runs a setup command with no pipes of ours, for what it leaves
    /// running.
    fn detached(&self, program: &str, args: &[&str]) {
        let status = self
            .command(program, args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect(program);
        assert!(status.success(), "{program} {args:?}: {status}");
    }

    fn prefix(&self) -> PathBuf {
        self.dir.path().join("prefix")
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("WINEPREFIX", self.prefix())
            // Debian's wine64 alone runs 64-bit programs only; say so, so
            // the prefix is made for that whatever else is installed.
            .env("WINEARCH", "win64")
            .env(
                "WINEDEBUG",
                std::env::var("JAUNT_TEST_WINEDEBUG").unwrap_or("-all".into()),
            )
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=;winemenubuilder.exe=d")
            .env_remove("DISPLAY")
            .env_remove("JSH_HOME")
            .env_remove("PUTTYDIR");
        cmd
    }

    fn wine(&self, args: &[&str], stdin: &str) -> Out {
        let out = run(self.command("wine", args), stdin);
        Out {
            code: out.code,
            stdout: out.stdout.replace("\r\n", "\n"),
            stderr: out.stderr.replace("\r\n", "\n"),
        }
    }

    fn jsh(&self, args: &[&str], stdin: &str) -> Out {
        let exe = self.jsh.display().to_string();
        let mut all = vec![exe.as_str()];
        all.extend_from_slice(args);
        self.wine(&all, stdin)
    }

    /// `reg query KEY`: value name -> (type, data).
    fn query(&self, key: &str) -> Option<BTreeMap<String, (String, String)>> {
        let out = self.wine(&[REG, "query", key], "");
        if out.code != Some(0) {
            return None;
        }
        Some(
            out.stdout
                .lines()
                .filter_map(|l| {
                    let mut parts = l.strip_prefix("    ")?.splitn(3, "    ");
                    let (name, kind) = (parts.next()?, parts.next()?);
                    let data = parts.next().unwrap_or("");
                    Some((name.to_string(), (kind.to_string(), data.to_string())))
                })
                .collect(),
        )
    }

    /// The Windows path Wine gives a Unix path (drive Z: is `/`).
    fn path(unix: &Path) -> String {
        format!("Z:{}", unix.display()).replace('/', "\\")
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = self.command("wineserver", &["-k"]).output();
    }
}

fn value<'a>(values: &'a BTreeMap<String, (String, String)>, name: &str) -> (&'a str, &'a str) {
    let (kind, data) = values
        .get(name)
        .unwrap_or_else(|| panic!("no value {name} in {values:?}"));
    (kind.as_str(), data.as_str())
}

#[test]
fn jsh_exe_writes_putty_registry_keys_under_wine() {
    let Some(wine) = Wine::start() else {
        return;
    };
    let c = Cluster::start(Options::default());
    let _linux_home = c.signed_up("alice", "alice");
    let _nodes = [
        c.add_node("node1", "env=dev", true),
        c.add_node("node2", "env=prod", false),
    ];
    let (_, proxy_port) = c.proxy.rsplit_once(':').expect("host:port");
    wine.jsh(
        &[
            "login",
            &format!("--proxy={}", c.proxy),
            "--user=alice",
            &format!("--ca-pin={}", c.ca_pin),
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    )
    .ok();

    // A node name jsh ls does not show is refused, naming jsh ls.
    wine.jsh(&["puttyconfig", "alice@nosuch"], "")
        .fails_with("run 'jsh ls' to see them");

    let session = "alice@node1 [proxy:127.0.0.1]";
    let out = wine.jsh(&["puttyconfig", "alice@node1"], "").ok();
    assert_eq!(out.stdout, format!("Added PuTTY session for {session}\n"));
    let key = format!(r"{PUTTY}\Sessions\alice@node1%20[proxy:127.0.0.1]");
    let ca_key = format!(r"{PUTTY}\SshHostCAs\JauntHostCA-example");
    let first = wine.query(&key).expect("session key");
    let first_ca = wine.query(&ca_key).expect("host CA key");

    let node1_port = eventually(
        "node1 in jsh ls",
        std::time::Duration::from_secs(10),
        || {
            let out = wine.jsh(&["ls", "--format=json"], "");
            let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
            let addr = v.as_array()?.iter().find(|n| n["name"] == "node1")?["addr"]
                .as_str()?
                .to_string();
            addr.rsplit_once(':')?.1.parse::<u16>().ok()
        },
    );
    let dword = |n: u32| ("REG_DWORD".to_string(), format!("0x{n:x}"));
    let sz = |s: &str| ("REG_SZ".to_string(), s.to_string());
    for (name, want) in [
        ("Present", dword(1)),
        ("HostName", sz("node1")),
        ("PortNumber", dword(node1_port.into())),
        ("Protocol", sz("ssh")),
        ("UserName", sz("alice")),
        ("ProxyMethod", dword(5)),
        ("ProxyHost", sz("127.0.0.1")),
        ("ProxyPort", dword(proxy_port.parse().expect("proxy port"))),
        ("ProxyUsername", sz("alice")),
        ("ProxyLogToTerm", dword(2)),
        ("AuthGSSAPI", dword(0)),
        ("AuthGSSAPIKEX", dword(0)),
    ] {
        let (kind, data) = value(&first, name);
        assert_eq!((kind, data), (want.0.as_str(), want.1.as_str()), "{name}");
    }
    // Windows paths under the user's profile.
    let (kind, ppk) = value(&first, "PublicKeyFile");
    assert_eq!(kind, "REG_SZ");
    assert!(
        ppk.starts_with(r"C:\users\") && ppk.ends_with(r"\.jsh\keys\127.0.0.1\alice.ppk"),
        "{ppk}"
    );
    let (_, cert) = value(&first, "DetachedCertificate");
    assert!(
        cert.ends_with(r"\.jsh\keys\127.0.0.1\alice-ssh\example-cert.pub"),
        "{cert}"
    );
    // The files the session names exist where Windows programs look.
    let unix_of = |win: &str| {
        let rest = win.strip_prefix(r"C:\").expect("C: path");
        wine.prefix().join("drive_c").join(rest.replace('\\', "/"))
    };
    assert!(unix_of(ppk).is_file(), "{ppk}");
    assert!(unix_of(cert).is_file(), "{cert}");
    // Every backslash of jsh.exe's path doubled, as PuTTY's command needs.
    let (_, command) = value(&first, "ProxyTelnetCommand");
    let exe = Wine::path(&wine.jsh).replace('\\', r"\\");
    assert_eq!(
        command,
        format!(
            "{exe} proxy ssh --cluster=example --proxy=%proxyhost:%proxyport %user@%host:%port"
        )
    );

    // The host CA entry: the cluster's key, valid for node1.
    let known_hosts = std::fs::read_to_string(
        unix_of(ppk)
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .expect(".jsh")
            .join("known_hosts"),
    )
    .expect("known_hosts");
    let blob = known_hosts
        .lines()
        .find(|l| l.starts_with("@cert-authority"))
        .and_then(|l| l.split_whitespace().nth(3))
        .expect("host CA line");
    for (name, want) in [
        ("PublicKey", sz(blob)),
        ("Validity", sz("node1")),
        ("PermitRSASHA1", dword(0)),
        ("PermitRSASHA256", dword(1)),
        ("PermitRSASHA512", dword(1)),
    ] {
        let (kind, data) = value(&first_ca, name);
        assert_eq!((kind, data), (want.0.as_str(), want.1.as_str()), "{name}");
    }

    // A value the user set survives a re-run; the CA now trusts both nodes.
    wine.wine(
        &[
            REG,
            "add",
            &key,
            "/v",
            "FontHeight",
            "/t",
            "REG_DWORD",
            "/d",
            "14",
            "/f",
        ],
        "",
    )
    .ok();
    let other = format!(r"{PUTTY}\Sessions\mine");
    wine.wine(
        &[
            REG,
            "add",
            &other,
            "/v",
            "HostName",
            "/d",
            "example.org",
            "/f",
        ],
        "",
    )
    .ok();
    let out = wine.jsh(&["puttyconfig", "alice@node2"], "").ok();
    assert_eq!(
        out.stdout,
        "Added PuTTY session for alice@node2 [proxy:127.0.0.1]\n"
    );
    let out = wine.jsh(&["puttyconfig", "alice@node1"], "").ok();
    assert_eq!(out.stdout, format!("Updated PuTTY session for {session}\n"));
    let again = wine.query(&key).expect("session key");
    assert_eq!(value(&again, "FontHeight"), ("REG_DWORD", "0xe"));
    assert_eq!(
        value(&wine.query(&ca_key).expect("ca"), "Validity"),
        ("REG_SZ", "node1 || node2")
    );

    // --list shows jsh's sessions only; --remove never touches others.
    let out = wine.jsh(&["puttyconfig", "--list"], "").ok();
    assert!(out.stdout.contains(session), "{}", out.stdout);
    assert!(
        out.stdout.contains("alice@node2 [proxy:127.0.0.1]"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("mine"), "{}", out.stdout);
    wine.jsh(&["puttyconfig", "--remove", "alice@node2"], "")
        .ok();
    assert!(
        wine.query(&format!(
            r"{PUTTY}\Sessions\alice@node2%20[proxy:127.0.0.1]"
        ))
        .is_none()
    );
    assert!(wine.query(&other).is_some(), "another session was removed");

    // --reg-file: the same entries as the first run, in a file that
    // regedit imports to identical keys.
    let reg = wine.dir.path().join("putty.reg");
    let out = wine
        .jsh(
            &[
                "puttyconfig",
                "--reg-file",
                &Wine::path(&reg),
                "alice@node1",
            ],
            "",
        )
        .ok();
    assert!(
        out.stdout.contains("Added PuTTY session for"),
        "{}",
        out.stdout
    );
    let bytes = std::fs::read(&reg).expect("reg file");
    assert_eq!(
        &bytes[..2],
        &[0xff, 0xfe],
        "UTF-16LE with a byte-order mark"
    );
    wine.wine(&[REG, "delete", PUTTY, "/f"], "").ok();
    assert!(wine.query(&key).is_none());
    wine.wine(&[REGEDIT, "/S", &Wine::path(&reg)], "").ok();
    assert_eq!(wine.query(&key).expect("imported session"), first);
    assert_eq!(wine.query(&ca_key).expect("imported CA"), first_ca);
}
