//! `jctl lock`, and the lock rows of `jctl get locks`: cutting a user, a
//! role, a node or a login off now, not when certificates expire.

use crate::admin::{AdminClient, unexpected};
use crate::commands::users::print_outcome;
use clap::Args;
use jaunt_cli::{Format, table};
use jaunt_types::Ttl;
use jaunt_types::admin::{AdminRequest, AdminResponse};
use jaunt_types::resources::{Lock, LockTarget};
use jaunt_types::timefmt::{format_unix, parse_rfc3339_millis};

#[derive(Args)]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(true))]
pub struct LockArgs {
    /// Lock this user.
    #[arg(long, group = "target")]
    user: Option<String>,
    /// Lock everyone who holds this role.
    #[arg(long, group = "target")]
    role: Option<String>,
    /// Lock this node (name or UUID): no session reaches it.
    #[arg(long, group = "target")]
    node: Option<String>,
    /// Lock this OS login on every node.
    #[arg(long, group = "target")]
    login: Option<String>,
    /// Shown to the users the lock stops.
    #[arg(long)]
    message: Option<String>,
    /// The lock ends after this long [default: until removed]
    #[arg(long, conflicts_with = "expires")]
    ttl: Option<Ttl>,
    /// The lock ends at this time (RFC 3339, e.g. 2026-12-24T18:00:00Z).
    #[arg(long)]
    expires: Option<String>,
}

pub fn lock(admin: &AdminClient, args: LockArgs) -> anyhow::Result<()> {
    let expires = match (args.ttl, args.expires.as_deref()) {
        (Some(ttl), _) => Some(jaunt_sys::clock::now() + ttl.as_secs() as i64),
        (None, Some(at)) => Some(parse_rfc3339_millis(at).map_err(anyhow::Error::msg)? / 1000),
        (None, None) => None,
    };
    print_outcome(admin.call(&AdminRequest::LockAdd {
        target: LockTarget {
            user: args.user,
            role: args.role,
            login: args.login,
            node: args.node,
            node_name: None,
        },
        message: args.message,
        expires,
    })?)
}

pub fn list(admin: &AdminClient, format: Format) -> anyhow::Result<()> {
    let locks: Vec<Lock> = match admin.call(&AdminRequest::LockList)? {
        AdminResponse::Locks { locks } => locks,
        other => return Err(unexpected(other)),
    };
    if format != Format::Text {
        return jaunt_cli::print_structured(&locks, format);
    }
    let rows: Vec<Vec<String>> = locks
        .iter()
        .map(|l| {
            vec![
                l.id.clone(),
                l.target.to_string(),
                l.message.clone().unwrap_or_default(),
                l.expires.map(format_unix).unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    jaunt_cli::print_text(&table::render(
        &["ID", "Target", "Message", "Expires"],
        &rows,
    ))?;
    Ok(())
}
