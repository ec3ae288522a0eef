//! `jsh recordings ls` and `jsh play`: session recordings (asciicast v2),
//! your own or, with the auditor or editor role, everyone's.

use crate::commands::sessions::ListFormat;
use clap::{Args, Subcommand};
use jaunt_cli::{print_text, say, table};
use jaunt_client::home::Home;
use jaunt_client::login::logged_in_client;
use jaunt_types::Ttl;
use jaunt_types::api::{PATH_RECORDINGS, RecordingListResponse, RecordingResponse};
use jaunt_types::timefmt::format_unix;
use std::io::Write;
use std::time::Duration;

#[derive(Subcommand)]
pub enum RecordingsCommand {
    /// List recordings.
    Ls {
        /// Only sessions started within this long, e.g. 1h or 7d
        #[arg(long)]
        since: Option<Ttl>,
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
}

pub fn run(cmd: RecordingsCommand) -> anyhow::Result<()> {
    let RecordingsCommand::Ls { since, format } = cmd;
    let home = Home::from_env()?;
    let (_, client) = logged_in_client(&home, None)?;
    let path = match since {
        Some(d) => format!(
            "{PATH_RECORDINGS}?since={}",
            jaunt_sys::clock::now() - d.as_secs() as i64
        ),
        None => PATH_RECORDINGS.to_string(),
    };
    let resp: RecordingListResponse = crate::runtime()?.block_on(client.get(&path))?;
    match format {
        ListFormat::Json => {
            for r in &resp.recordings {
                say!("{}", serde_json::to_string(r)?)?;
            }
            Ok(())
        }
        ListFormat::Text if resp.recordings.is_empty() => {
            say!("No recordings you may play.")?;
            Ok(())
        }
        ListFormat::Text => {
            let rows: Vec<Vec<String>> = resp
                .recordings
                .iter()
                .map(|r| {
                    vec![
                        r.session_id.clone(),
                        r.user.clone(),
                        r.login.clone(),
                        r.node.clone(),
                        format_unix(r.start),
                        match r.end {
                            Some(end) => Ttl::from_secs((end - r.start).max(0) as u64).to_string(),
                            None => "running".into(),
                        },
                    ]
                })
                .collect();
            print_text(&table::render(
                &["Session ID", "User", "Login", "Node", "Started", "Duration"],
                &rows,
            ))?;
            Ok(())
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PlayFormat {
    /// Replay in this terminal with the original timing.
    Pty,
    /// The asciicast v2 file itself (for `asciinema play`).
    Asciicast,
}

#[derive(Args)]
pub struct PlayArgs {
    /// The session's ID ('jsh recordings ls', or 'jaunt status' inside it).
    session_id: String,
    /// Play this many times faster.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    #[arg(long, value_enum, default_value = "pty")]
    format: PlayFormat,
}

pub fn play(args: PlayArgs) -> anyhow::Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        anyhow::bail!("--speed must be a positive number");
    }
    let home = Home::from_env()?;
    let (_, client) = logged_in_client(&home, None)?;
    let path = format!("{PATH_RECORDINGS}/{}", args.session_id);
    let resp: RecordingResponse = crate::runtime()?.block_on(client.get(&path))?;
    match args.format {
        PlayFormat::Asciicast => print_text(&resp.data)?,
        PlayFormat::Pty => replay(&resp.data, args.speed)?,
    }
    Ok(())
}

/// Writes each output event when its time comes.
fn replay(cast: &str, speed: f64) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut clock = 0.0f64;
    for (n, line) in cast.lines().enumerate().skip(1) {
        let Ok((t, kind, data)) = serde_json::from_str::<(f64, String, String)>(line) else {
            anyhow::bail!("the recording's line {} is not an asciicast event", n + 1);
        };
        if t > clock {
            std::thread::sleep(Duration::from_secs_f64((t - clock) / speed));
            clock = t;
        }
        if kind == "o" {
            out.write_all(data.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}
