//! PuTTY's `plink`, `psftp` and `pscp` with the sessions `jsh
//! puttyconfig` writes.

use super::*;

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
