//! `jctl tokens add|ls|rm`.

use crate::admin::{AdminClient, unexpected};
use crate::commands::users::print_outcome;
use clap::Subcommand;
use jaunt_cli::{Format, say, table};
use jaunt_types::admin::{AdminRequest, AdminResponse};
use jaunt_types::resources::TokenKind;
use jaunt_types::timefmt::format_unix;
use jaunt_types::{Secret, Ttl};

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a join token and print the command a node runs with it.
    Add {
        /// The token type: node, or trusted_cluster (a leaf cluster trusts
        /// this one with it; one use unless --uses says).
        #[arg(long = "type", default_value = "node")]
        kind: String,
        /// How long the token is valid [default: 30m]
        #[arg(long)]
        ttl: Option<Ttl>,
        /// How many nodes may join with it [default: any number until it expires]
        #[arg(long)]
        uses: Option<u32>,
        /// Labels every node joining with it gets, k=v,k=v; the node's own
        /// labels are then ignored, so it cannot widen who may reach it.
        #[arg(long)]
        labels: Option<String>,
    },
    /// List tokens.
    Ls {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Delete a token.
    Rm { token: String },
}

pub fn run(admin: &AdminClient, cmd: TokensCommand) -> anyhow::Result<()> {
    match cmd {
        TokensCommand::Add {
            kind,
            ttl,
            uses,
            labels,
        } => {
            let kind = match kind.as_str() {
                "node" => TokenKind::Node,
                "trusted_cluster" => TokenKind::TrustedCluster,
                other => anyhow::bail!(
                    "unknown token type {other:?}: use --type=node or --type=trusted_cluster (user signup tokens come from 'jctl users add')"
                ),
            };
            let labels = labels
                .as_deref()
                .map(jaunt_config::parse_labels)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--labels: {e}"))?;
            match admin.call(&AdminRequest::TokenAdd {
                kind,
                ttl,
                uses,
                labels,
            })? {
                AdminResponse::TokenAdded { token, command } => {
                    let left = token.expires - jaunt_sys::clock::now();
                    say!("The invite token: {}", token.token.expose())?;
                    say!(
                        "This token will expire in {} (at {}).",
                        Ttl::from_secs(left.max(0) as u64),
                        format_unix(token.expires)
                    )?;
                    say!()?;
                    match token.kind {
                        TokenKind::TrustedCluster => {
                            say!("Use it in a trusted_cluster resource at the leaf cluster:")?
                        }
                        _ => say!("Run this on the new node to join the cluster:")?,
                    }
                    say!()?;
                    say!("> {command}")?;
                    Ok(())
                }
                other => Err(unexpected(other)),
            }
        }
        TokensCommand::Ls { format } => list(admin, format),
        TokensCommand::Rm { token } => print_outcome(admin.call(&AdminRequest::TokenRemove {
            token: Secret::new(token),
        })?),
    }
}

pub fn list(admin: &AdminClient, format: Format) -> anyhow::Result<()> {
    let tokens = match admin.call(&AdminRequest::TokenList)? {
        AdminResponse::Tokens { tokens } => tokens,
        other => return Err(unexpected(other)),
    };
    if format != Format::Text {
        return jaunt_cli::print_structured(&tokens, format);
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.token.expose().clone(),
                t.kind.to_string(),
                format_unix(t.expires),
                t.uses_left
                    .map_or("unlimited".to_string(), |n| n.to_string()),
                t.user.clone().unwrap_or_default(),
                t.labels
                    .iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    jaunt_cli::print_text(&table::render(
        &[
            "Token",
            "Type",
            "Expiry Time (UTC)",
            "Uses Left",
            "User",
            "Labels",
        ],
        &rows,
    ))?;
    Ok(())
}
