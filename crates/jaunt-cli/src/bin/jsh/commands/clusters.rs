//! `jsh clusters`: the cluster you logged in to (the root) and its leaf
//! clusters, as the reference product's `tsh clusters` lists them.

use clap::Args;
use jaunt_cli::{Format, print_text, table};
use jaunt_client::home::Home;
use jaunt_client::login::logged_in_client;
use serde::Serialize;

#[derive(Args)]
pub struct ClustersArgs {
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// One row, with the reference product's field names.
#[derive(Serialize)]
struct Row {
    cluster_name: String,
    status: String,
    cluster_type: String,
    labels: jaunt_types::resources::Labels,
    selected: bool,
}

pub fn run(args: ClustersArgs) -> anyhow::Result<()> {
    let home = Home::from_env()?;
    let (profile, client) = logged_in_client(&home, None)?;
    let clusters = crate::runtime()?.block_on(jaunt_client::clusters::fetch(&client))?;
    // Keep the leaves' host CAs current while at it.
    jaunt_client::clusters::remember(&home, &profile, &clusters)?;
    let rows: Vec<Row> = clusters
        .into_iter()
        .map(|c| Row {
            selected: c.name == profile.cluster,
            cluster_name: c.name,
            status: c.status,
            cluster_type: c.kind,
            labels: c.labels,
        })
        .collect();
    if args.format != Format::Text {
        return jaunt_cli::print_structured(&rows, args.format);
    }
    let text: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.cluster_name.clone(),
                r.status.clone(),
                r.cluster_type.clone(),
                r.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                if r.selected {
                    "*".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    print_text(&table::render(
        &[
            "Cluster Name",
            "Status",
            "Cluster Type",
            "Labels",
            "Selected",
        ],
        &text,
    ))?;
    Ok(())
}
