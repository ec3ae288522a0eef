//! `jctl audit ls`: the audit log, filtered; one line (or one JSON
//! object) per event, oldest first.

use crate::admin::{AdminClient, unexpected};
use clap::Subcommand;
use jaunt_cli::say;
use jaunt_types::Ttl;
use jaunt_types::admin::{AdminRequest, AdminResponse};
use jaunt_types::audit::{AuditQuery, names};
use jaunt_types::timefmt::parse_rfc3339_millis;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List events.
    Ls {
        /// Only events newer than this, e.g. 1h or 7d
        #[arg(long)]
        since: Option<Ttl>,
        /// Only events up to this time (RFC 3339, e.g. 2026-11-24T10:00:00Z)
        #[arg(long)]
        until: Option<String>,
        /// Only events of this type, e.g. session.start
        #[arg(long = "type")]
        event: Option<String>,
        /// Only events of this Jaunt user
        #[arg(long)]
        user: Option<String>,
        /// Only events of this session
        #[arg(long)]
        session: Option<String>,
        /// The most recent N events
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value = "text")]
        format: AuditFormat,
    },
}

pub fn run(admin: &AdminClient, cmd: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Ls {
        since,
        until,
        event,
        user,
        session,
        limit,
        format,
    } = cmd;
    if let Some(t) = &event
        && !names().any(|n| n == t)
    {
        anyhow::bail!(
            "unknown event type {t:?}; the types are: {}",
            names().collect::<Vec<_>>().join(", ")
        );
    }
    let now_ms = jaunt_sys::clock::now() * 1000;
    let query = AuditQuery {
        since: since.map(|d| now_ms - d.as_secs() as i64 * 1000),
        until: until
            .as_deref()
            .map(parse_rfc3339_millis)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        event,
        user,
        session_id: session,
        limit,
    };
    match admin.call(&AdminRequest::AuditSearch { query })? {
        AdminResponse::Events { events } => {
            for e in events {
                match format {
                    AuditFormat::Text => say!("{}", e.text_line())?,
                    AuditFormat::Json => say!("{}", serde_json::to_string(&e)?)?,
                }
            }
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}
