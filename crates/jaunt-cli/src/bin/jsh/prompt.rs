//! Asking the user for secrets: from the terminal without echo, or line by
//! line from stdin with --password-stdin (for scripts).

use anyhow::{Context, bail};
use jaunt_types::Secret;
use std::io::{BufRead, IsTerminal, Write};

/// Where answers come from.
pub struct Prompter {
    from_stdin: bool,
    lines: std::io::Lines<std::io::StdinLock<'static>>,
}

impl Prompter {
    pub fn new(password_stdin: bool) -> anyhow::Result<Self> {
        if !password_stdin
            && !std::io::stdin().is_terminal()
            && std::fs::File::open("/dev/tty").is_err()
        {
            bail!("no terminal to ask for the password on: pass it with --password-stdin");
        }
        Ok(Prompter {
            from_stdin: password_stdin,
            lines: std::io::stdin().lock().lines(),
        })
    }

    fn next_line(&mut self, what: &str) -> anyhow::Result<String> {
        match self.lines.next() {
            Some(line) => Ok(line
                .context("reading stdin")?
                .trim_end_matches('\r')
                .to_string()),
            None => bail!("stdin ended before the {what}"),
        }
    }

    /// A secret: not echoed on a terminal.
    pub fn secret(&mut self, prompt: &str, what: &str) -> anyhow::Result<Secret<String>> {
        if self.from_stdin {
            return Ok(Secret::new(self.next_line(what)?));
        }
        Ok(Secret::new(
            rpassword::prompt_password(prompt).context("reading the password")?,
        ))
    }

    /// A visible answer such as a one-time code.
    pub fn line(&mut self, prompt: &str, what: &str) -> anyhow::Result<String> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        Ok(self.next_line(what)?.trim().to_string())
    }

    pub fn reads_stdin(&self) -> bool {
        self.from_stdin
    }
}
