//! `jsh ls`: the nodes you may reach.

use clap::Args;
use jaunt_cli::{print_text, say, table};
use jaunt_client::home::Home;
use jaunt_client::login::logged_in_client;
use jaunt_types::api::{NodeInfo, NodeListResponse, PATH_NODES};
use std::io::IsTerminal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LsFormat {
    Text,
    Json,
    Yaml,
    Names,
}

#[derive(Args)]
pub struct LsArgs {
    /// The cluster to list: the one you logged in to, or one of its leaves.
    #[arg(long)]
    cluster: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: LsFormat,
    /// Only nodes with these labels, key=value.
    labels: Vec<String>,
}

pub fn fetch_nodes(
    cluster: Option<&str>,
) -> anyhow::Result<(jaunt_client::profile::Profile, Vec<NodeInfo>)> {
    let home = Home::from_env()?;
    let (profile, client) = logged_in_client(&home, None)?;
    let path = match cluster.filter(|c| *c != profile.cluster) {
        Some(leaf) => format!("{PATH_NODES}?cluster={leaf}"),
        None => PATH_NODES.to_string(),
    };
    if let Some(leaf) = cluster {
        jaunt_types::resources::validate_name(leaf)
            .map_err(|e| anyhow::anyhow!("--cluster: {e}"))?;
    }
    let resp: NodeListResponse = crate::runtime()?.block_on(client.get(&path))?;
    Ok((profile, resp.nodes))
}

/// `k=v,k=v`, sorted (labels are kept sorted); an agentless node's kind
/// as `type=openssh` among them, as the reference product shows it.
fn labels_text(n: &NodeInfo) -> String {
    let kind = n
        .sub_kind
        .map(|k| ("type".to_string(), k.as_str().to_string()));
    let mut all: Vec<(String, String)> = n
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .filter(|(k, _)| n.sub_kind.is_none() || k != "type")
        .chain(kind)
        .collect();
    all.sort();
    all.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Cuts `s` to `width` characters, ending in "..." when cut.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let keep = width.saturating_sub(3);
    format!("{}...", s.chars().take(keep).collect::<String>())
}

pub fn run(args: LsArgs) -> anyhow::Result<()> {
    let mut filters = Vec::new();
    for f in &args.labels {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("{f:?} is not a key=value label filter"))?;
        filters.push((k.to_string(), v.to_string()));
    }
    let (_, mut nodes) = fetch_nodes(args.cluster.as_deref())?;
    nodes.retain(|n| filters.iter().all(|(k, v)| n.labels.get(k) == Some(v)));
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    match args.format {
        LsFormat::Json => jaunt_cli::print_structured(&nodes, jaunt_cli::Format::Json),
        LsFormat::Yaml => jaunt_cli::print_structured(&nodes, jaunt_cli::Format::Yaml),
        LsFormat::Names => {
            for n in &nodes {
                say!("{}", n.name)?;
            }
            Ok(())
        }
        LsFormat::Text => {
            let mut rows: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| {
                    vec![
                        n.name.clone(),
                        n.addr.clone().unwrap_or_else(|| "⟵ Tunnel".to_string()),
                        labels_text(n),
                    ]
                })
                .collect();
            // On a terminal, labels are cut to fit its width.
            if std::io::stdout().is_terminal()
                && let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size()
            {
                let name_w = rows
                    .iter()
                    .map(|r| r[0].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(9);
                let addr_w = rows
                    .iter()
                    .map(|r| r[1].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(7);
                let room = (w as usize).saturating_sub(name_w + addr_w + 2).max(10);
                for r in &mut rows {
                    r[2] = cut(&r[2], room);
                }
            }
            print_text(&table::render(&["Node Name", "Address", "Labels"], &rows))?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_with_dots() {
        assert_eq!(
            super::cut("company=acmecorp,env=aws,x=y", 27),
            "company=acmecorp,env=aws..."
        );
        assert_eq!(super::cut("short", 27), "short");
    }
}
