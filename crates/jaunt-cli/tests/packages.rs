//! `scripts/package.sh` on the binaries this build made: the Debian
//! packages hold what they say, install with `dpkg --install` into a
//! scratch root (their maintainer scripts run there, as dpkg runs them for
//! another root), make the data directory and a configuration, pass
//! `systemd-analyze verify`, and purge cleanly. Runs as root.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use support::*;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dpkg(root: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display()))
        .args([
            "--force-not-root",
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
        ])
        .args(args);
    run(cmd, "")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn debian_packages_install_configure_verify_and_purge() {
    let dir = tempfile::tempdir().expect("tmp");
    let dist = dir.path().join("dist");
    let bins = bin("jaunt").parent().expect("target dir").to_path_buf();
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/package.sh"))
        .env("JAUNT_BIN_DIR", &bins)
        .env("NO_WINDOWS", "1")
        .env("DEB_COMPRESS", "none")
        .env("OUT", &dist);
    run(cmd, "").ok();
    let deb = |name: &str| {
        std::fs::read_dir(&dist)
            .expect("dist")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{name}_")))
            })
            .unwrap_or_else(|| panic!("no {name} package in {}", dist.display()))
    };
    let (jaunt, jsh) = (deb("jaunt"), deb("jsh"));
    let info = run(
        {
            let mut c = Command::new("dpkg-deb");
            c.arg("--info").arg(&jaunt);
            c
        },
        "",
    )
    .ok();
    assert!(info.stdout.contains("Package: jaunt"), "{}", info.stdout);
    let contents = run(
        {
            let mut c = Command::new("dpkg-deb");
            c.arg("--contents").arg(&jaunt);
            c
        },
        "",
    )
    .ok()
    .stdout;
    for want in [
        "./usr/bin/jaunt",
        "./usr/bin/jctl",
        "./lib/systemd/system/jaunt.service",
        "./usr/share/man/man1/jctl.1.gz",
        "./usr/share/bash-completion/completions/jaunt",
    ] {
        assert!(contents.contains(want), "{want} in\n{contents}");
    }

    // dpkg --install into a scratch root.
    let root = dir.path().join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("dpkg dirs");
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").expect("status");
    dpkg(
        &root,
        &[
            "--install",
            &jaunt.display().to_string(),
            &jsh.display().to_string(),
        ],
    )
    .ok();
    assert_eq!(mode(&root.join("var/lib/jaunt")), 0o700);
    let config = root.join("etc/jaunt/jaunt.yaml");
    assert_eq!(mode(&config), 0o640);
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("data_dir: \"/var/lib/jaunt\""), "{text}");
    assert!(
        text.contains("# Second factor at login"),
        "commented: {text}"
    );
    // The configuration it made is one jaunt accepts.
    let file = jaunt_config::FileConfig::parse(&text, "jaunt.yaml").expect("parses");
    jaunt_config::Config::resolve(file, Default::default(), "host", "jaunt.yaml")
        .expect("a valid configuration");
    let version = run(
        {
            let mut c = Command::new(root.join("usr/bin/jsh"));
            c.arg("version");
            c
        },
        "",
    )
    .ok();
    assert!(version.stdout.starts_with("jsh "), "{version:?}");

    // systemd's own check of the unit, against the scratch root: the
    // binary it starts is the packaged one. The root has no systemd of its
    // own, so the host's units (the targets the unit orders after) and
    // `kill` (its reload) are copied in, as a real system has them.
    std::fs::create_dir_all(root.join("usr/lib/systemd")).expect("dir");
    std::fs::create_dir_all(root.join("bin")).expect("dir");
    run(
        {
            let mut c = Command::new("cp");
            c.arg("-a")
                .arg("/usr/lib/systemd/system")
                .arg(root.join("usr/lib/systemd/"));
            c
        },
        "",
    )
    .ok();
    std::fs::copy("/bin/kill", root.join("bin/kill")).expect("kill");
    let unit = root.join("lib/systemd/system/jaunt.service");
    let verify = run(
        {
            let mut c = Command::new("systemd-analyze");
            c.arg(format!("--root={}", root.display()))
                .arg("verify")
                .arg("jaunt.service");
            c
        },
        "",
    );
    assert_eq!(
        verify.code,
        Some(0),
        "{verify:?}\n{}",
        std::fs::read_to_string(&unit).unwrap_or_default()
    );
    assert_eq!(verify.stderr, "", "{verify:?}");

    // Removing keeps the cluster's data; purging removes it.
    dpkg(&root, &["--remove", "jaunt"]).ok();
    assert!(root.join("var/lib/jaunt").is_dir());
    assert!(!root.join("usr/bin/jaunt").exists());
    dpkg(&root, &["--purge", "jaunt", "jsh"]).ok();
    assert!(!root.join("var/lib/jaunt").exists());
    assert!(!root.join("usr/bin/jsh").exists());
}
