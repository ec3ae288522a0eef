//! `jctl get trusted_clusters` (at a leaf: the roots it trusts) and `jctl
//! get remote_clusters` (at a root: the leaves that trust it).

use crate::admin::{AdminClient, unexpected};
use jaunt_cli::{Format, table};
use jaunt_types::admin::{AdminRequest, AdminResponse};
use jaunt_types::timefmt::format_unix;

fn labels(l: &jaunt_types::resources::Labels) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Keeps the one named `name`, if given; none left is an error.
fn only<T>(
    mut all: Vec<T>,
    name: Option<&str>,
    name_of: fn(&T) -> &str,
    kind: &str,
) -> anyhow::Result<Vec<T>> {
    if let Some(n) = name {
        all.retain(|c| name_of(c) == n);
        if all.is_empty() {
            anyhow::bail!("{kind} {n:?} not found");
        }
    }
    Ok(all)
}

pub fn list_trusted(admin: &AdminClient, name: Option<&str>, format: Format) -> anyhow::Result<()> {
    let clusters = match admin.call(&AdminRequest::TrustedClusterList)? {
        AdminResponse::TrustedClusters { clusters } => clusters,
        other => return Err(unexpected(other)),
    };
    let clusters = only(clusters, name, |c| &c.name, "trusted cluster")?;
    if format != Format::Text {
        return jaunt_cli::print_structured(&clusters, format);
    }
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            let map: Vec<String> = c
                .role_map
                .iter()
                .map(|m| format!("{} -> {}", m.remote, m.local.join("|")))
                .collect();
            vec![
                c.name.clone(),
                c.status.clone(),
                c.enabled.to_string(),
                c.proxy_addr.clone(),
                map.join(", "),
            ]
        })
        .collect();
    jaunt_cli::print_text(&table::render(
        &["Name", "Status", "Enabled", "Proxy", "Role Map"],
        &rows,
    ))?;
    Ok(())
}

pub fn list_remote(admin: &AdminClient, name: Option<&str>, format: Format) -> anyhow::Result<()> {
    let clusters = match admin.call(&AdminRequest::RemoteClusterList)? {
        AdminResponse::RemoteClusters { clusters } => clusters,
        other => return Err(unexpected(other)),
    };
    let clusters = only(clusters, name, |c| &c.name, "remote cluster")?;
    if format != Format::Text {
        return jaunt_cli::print_structured(&clusters, format);
    }
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.status.clone(),
                match c.last_heartbeat {
                    0 => "never".into(),
                    t => format_unix(t),
                },
                labels(&c.labels),
            ]
        })
        .collect();
    jaunt_cli::print_text(&table::render(
        &["Name", "Status", "Last Heartbeat", "Labels"],
        &rows,
    ))?;
    Ok(())
}
