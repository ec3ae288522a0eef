//! `jsh sessions ls`: the sessions running now that you may see (your own;
//! every one with the auditor or editor role).

use clap::Subcommand;
use jaunt_cli::{print_text, say, table};
use jaunt_client::home::Home;
use jaunt_client::login::logged_in_client;
use jaunt_types::api::{PATH_SESSIONS, SessionListResponse};
use jaunt_types::timefmt::format_unix;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// List running sessions.
    Ls {
        #[arg(long, value_enum, default_value = "text")]
        format: ListFormat,
    },
}

pub fn run(cmd: SessionsCommand) -> anyhow::Result<()> {
    let SessionsCommand::Ls { format } = cmd;
    let home = Home::from_env()?;
    let (_, client) = logged_in_client(&home, None)?;
    let resp: SessionListResponse = crate::runtime()?.block_on(client.get(PATH_SESSIONS))?;
    match format {
        ListFormat::Json => {
            for s in &resp.sessions {
                say!("{}", serde_json::to_string(s)?)?;
            }
            Ok(())
        }
        ListFormat::Text if resp.sessions.is_empty() => {
            say!("No running sessions you may see.")?;
            Ok(())
        }
        ListFormat::Text => {
            let rows: Vec<Vec<String>> = resp
                .sessions
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        s.user.clone(),
                        s.login.clone(),
                        s.node.clone(),
                        s.kind.clone(),
                        format_unix(s.start),
                        s.client.clone(),
                    ]
                })
                .collect();
            print_text(&table::render(
                &["ID", "User", "Login", "Node", "Kind", "Started", "Client"],
                &rows,
            ))?;
            Ok(())
        }
    }
}
