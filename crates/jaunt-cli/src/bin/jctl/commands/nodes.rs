//! `jctl nodes ls|rm|add`: the inventory as an administrator sees it, and
//! agentless hosts registered by hand.

use crate::admin::{AdminClient, unexpected};
use crate::commands::users::print_outcome;
use clap::Subcommand;
use jaunt_cli::{Format, table};
use jaunt_types::admin::{AdminRequest, AdminResponse};
use jaunt_types::timefmt::format_unix;

#[derive(Subcommand)]
pub enum NodesCommand {
    /// List every node, online or not.
    Ls {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Remove a node (by UUID, or by a name only one node has): it is no
    /// longer listed or reached, and must join again with a new token.
    Rm { node: String },
    /// Register an agentless host (its sshd set up by hand: see 'jctl auth
    /// export --type=openssh-user-ca' and 'jctl auth sign --host').
    Add {
        /// The host runs stock OpenSSH (the only kind added by hand; a
        /// Jaunt node joins with a token).
        #[arg(long)]
        openssh: bool,
        #[arg(long)]
        name: String,
        /// host[:port] the proxy dials [port default: 22]
        #[arg(long)]
        addr: String,
        /// k=v,k=v
        #[arg(long, default_value = "")]
        labels: String,
    },
}

pub fn run(admin: &AdminClient, cmd: NodesCommand) -> anyhow::Result<()> {
    match cmd {
        NodesCommand::Ls { format } => list(admin, format),
        NodesCommand::Rm { node } => print_outcome(admin.call(&AdminRequest::NodeRemove { node })?),
        NodesCommand::Add {
            openssh,
            name,
            addr,
            labels,
        } => {
            if !openssh {
                anyhow::bail!(
                    "only OpenSSH nodes are added by hand (--openssh); a Jaunt node joins with a token from 'jctl tokens add --type=node'"
                );
            }
            let labels = jaunt_config::parse_labels(&labels)
                .map_err(|e| anyhow::anyhow!("--labels: {e}"))?;
            print_outcome(admin.call(&AdminRequest::NodeAddOpenssh { name, addr, labels })?)
        }
    }
}

fn list(admin: &AdminClient, format: Format) -> anyhow::Result<()> {
    let nodes = match admin.call(&AdminRequest::NodeList)? {
        AdminResponse::Nodes { nodes } => nodes,
        other => return Err(unexpected(other)),
    };
    if format != Format::Text {
        return jaunt_cli::print_structured(&nodes, format);
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let kind = n.info.sub_kind.map(|k| format!("type={}", k.as_str()));
            let labels = n
                .info
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .chain(kind)
                .collect::<Vec<_>>()
                .join(",");
            vec![
                n.info.name.clone(),
                n.info.uuid.clone(),
                n.info.addr.clone().unwrap_or_else(|| "⟵ Tunnel".into()),
                match n.labels_pinned {
                    true => format!("{labels} (pinned)"),
                    false => labels,
                },
                match n.info.sub_kind {
                    // Agentless nodes send no heartbeats.
                    Some(_) => "-".to_string(),
                    None => format_unix(n.info.last_seen),
                },
                if n.online { "online" } else { "offline" }.to_string(),
            ]
        })
        .collect();
    jaunt_cli::print_text(&table::render(
        &[
            "Node Name",
            "UUID",
            "Address",
            "Labels",
            "Last Heartbeat",
            "Status",
        ],
        &rows,
    ))?;
    Ok(())
}
