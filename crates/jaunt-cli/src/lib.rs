//! What the three binaries share: how errors reach the terminal, how tables
//! are laid out, and how the daemon's services are assembled (which the
//! integration tests also use to run a cluster in-process).

#[cfg(feature = "daemon")]
pub mod daemon;
pub mod table;

use std::io::Write;
use std::process::ExitCode;

/// Writes a line to stdout, returning the I/O error (a closed pipe) instead
/// of panicking as `println!` does.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

/// Runs a binary's body: an error prints `ERROR: ...` (with its causes) and
/// exits 1; a closed stdout (`jsh ls | head`) exits quietly.
pub fn run(body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Only a write to stdout that failed as such (the outermost
            // error, with no context added) is a closed pipe to be quiet
            // about; a broken socket deeper in the chain is a real error.
            let broken_pipe = e
                .chain()
                .next()
                .and_then(|c| c.downcast_ref::<std::io::Error>())
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "ERROR: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `name`'s shell completions for `shell` (the `completion`
/// subcommand of each binary).
pub fn print_completions<C: clap::CommandFactory>(
    shell: clap_complete::Shell,
    name: &str,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut C::command(), name, &mut out);
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// Prints the program's manual page (roff), as the packages install it.
pub fn print_man<C: clap::CommandFactory>() -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(C::command()).render(&mut out)?;
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// Writes text to stdout without panicking on a closed pipe.
pub fn print_text(text: &str) -> std::io::Result<()> {
    std::io::stdout().write_all(text.as_bytes())
}

/// Splits a comma-separated flag value, dropping empty parts.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The text/json/yaml output switch shared by listing commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML.
pub fn print_structured<T: serde::Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    let text = match format {
        Format::Json => serde_json::to_string_pretty(value)? + "\n",
        Format::Yaml => serde_yaml_ng::to_string(value)?,
        Format::Text => anyhow::bail!("text output is made by the command itself"),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(())
}
