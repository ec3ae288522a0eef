//! `jctl create`, `jctl get`, `jctl rm`: resources by kind and name.

use crate::admin::{AdminClient, unexpected};
use crate::commands::users::print_outcome;
use clap::Args;
use jaunt_cli::{Format, say, table};
use jaunt_types::Secret;
use jaunt_types::admin::{AdminRequest, AdminResponse};
use jaunt_types::resources::Role;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct CreateArgs {
    /// A YAML file with one or more roles or trusted clusters ('-' for stdin).
    file: PathBuf,
    /// Overwrite resources that exist.
    #[arg(short, long)]
    force: bool,
}

pub fn create(admin: &AdminClient, args: CreateArgs) -> anyhow::Result<()> {
    let (text, name) = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        (s, "stdin".to_string())
    } else {
        let text = std::fs::read_to_string(&args.file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
        (text, args.file.display().to_string())
    };
    // Everything is parsed and checked before anything is sent, so a bad
    // document in the middle of a file changes nothing.
    let resources = jaunt_config::parse_resources(&text, &name)?;
    for resource in resources {
        let req = match resource {
            jaunt_config::Resource::Role(role) => AdminRequest::RoleUpsert {
                role,
                force: args.force,
            },
            jaunt_config::Resource::TrustedCluster(cluster) => {
                AdminRequest::TrustedClusterUpsert { cluster }
            }
            jaunt_config::Resource::User(user) => user_request(admin, user, args.force)?,
            jaunt_config::Resource::Lock(lock) => {
                // A restore run twice makes no second lock.
                if lock_exists(admin, &lock.spec)? {
                    say!("Lock on {} exists already", lock.spec.target)?;
                    continue;
                }
                AdminRequest::LockAdd {
                    target: lock.spec.target,
                    message: lock.spec.message,
                    expires: lock.spec.expires,
                }
            }
        };
        print_outcome(admin.call(&req)?)?;
    }
    Ok(())
}

/// Whether a lock of the same target, words and end is in force.
fn lock_exists(
    admin: &AdminClient,
    spec: &jaunt_types::resources::LockSpec,
) -> anyhow::Result<bool> {
    match admin.call(&AdminRequest::LockList)? {
        AdminResponse::Locks { locks } => Ok(locks.iter().any(|l| {
            l.target == spec.target && l.message == spec.message && l.expires == spec.expires
        })),
        other => Err(unexpected(other)),
    }
}

/// A new user (who signs up again: a backup holds no secrets), or with
/// `force` an existing one's roles and logins set.
fn user_request(
    admin: &AdminClient,
    user: jaunt_types::resources::UserResource,
    force: bool,
) -> anyhow::Result<AdminRequest> {
    let name = user.metadata.name;
    let exists = match admin.call(&AdminRequest::UserList)? {
        AdminResponse::Users { users } => users.iter().any(|u| u.name == name),
        other => return Err(unexpected(other)),
    };
    Ok(match (exists, force) {
        (true, false) => {
            anyhow::bail!("user {name:?} exists; use --force to set its roles and logins")
        }
        (true, true) => AdminRequest::UserUpdate {
            name,
            roles: Some(user.spec.roles),
            logins: Some(user.spec.logins),
        },
        (false, _) => AdminRequest::UserAdd {
            name,
            roles: user.spec.roles,
            logins: user.spec.logins,
            ttl: None,
        },
    })
}

#[derive(Args)]
pub struct GetArgs {
    /// roles, users, tokens, locks, trusted_clusters, remote_clusters,
    /// role/NAME, or all (roles, users and locks, for a backup that
    /// `jctl create --force` restores)
    what: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

fn roles(admin: &AdminClient) -> anyhow::Result<Vec<Role>> {
    match admin.call(&AdminRequest::RoleList)? {
        AdminResponse::Roles { roles } => Ok(roles),
        other => Err(unexpected(other)),
    }
}

pub fn get(admin: &AdminClient, args: GetArgs) -> anyhow::Result<()> {
    let (kind, name) = match args.what.split_once('/') {
        Some((k, n)) => (k, Some(n)),
        None => (args.what.as_str(), None),
    };
    match (kind, name) {
        ("all", None) => print_all(admin, args.format),
        ("users" | "user", None) => crate::commands::users::list(admin, args.format),
        ("tokens" | "token", None) => crate::commands::tokens::list(admin, args.format),
        ("locks" | "lock", None) => crate::commands::locks::list(admin, args.format),
        ("trusted_clusters" | "trusted_cluster", name) => {
            crate::commands::clusters::list_trusted(admin, name, args.format)
        }
        ("remote_clusters" | "remote_cluster", name) => {
            crate::commands::clusters::list_remote(admin, name, args.format)
        }
        ("roles" | "role", name) => {
            let mut roles = roles(admin)?;
            if let Some(n) = name {
                roles.retain(|r| r.name() == n);
                if roles.is_empty() {
                    anyhow::bail!("role {n:?} not found");
                }
            }
            print_roles(&roles, args.format)
        }
        _ => anyhow::bail!(
            "unknown resource {:?}: use roles, users, tokens, locks, trusted_clusters, remote_clusters or role/NAME",
            args.what
        ),
    }
}

/// Every role, user (roles and logins, no secrets) and lock, as resource
/// documents: YAML (`---` between them) or a JSON array.
fn print_all(admin: &AdminClient, format: Format) -> anyhow::Result<()> {
    use jaunt_types::resources::{LockResource, UserResource};
    let mut docs: Vec<serde_json::Value> = Vec::new();
    for role in roles(admin)? {
        docs.push(serde_json::to_value(role)?);
    }
    match admin.call(&AdminRequest::UserList)? {
        AdminResponse::Users { users } => {
            for u in &users {
                docs.push(serde_json::to_value(UserResource::of(u))?);
            }
        }
        other => return Err(unexpected(other)),
    }
    match admin.call(&AdminRequest::LockList)? {
        AdminResponse::Locks { locks } => {
            for l in &locks {
                docs.push(serde_json::to_value(LockResource::of(l))?);
            }
        }
        other => return Err(unexpected(other)),
    }
    match format {
        Format::Json => jaunt_cli::print_structured(&docs, format),
        _ => {
            let mut out = std::io::stdout();
            for (i, doc) in docs.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                out.write_all(serde_yaml_ng::to_string(doc)?.as_bytes())?;
            }
            Ok(())
        }
    }
}

fn print_roles(roles: &[Role], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => jaunt_cli::print_structured(&roles, format),
        Format::Yaml => {
            let mut out = std::io::stdout();
            for (i, role) in roles.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                out.write_all(serde_yaml_ng::to_string(role)?.as_bytes())?;
            }
            Ok(())
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = roles
                .iter()
                .map(|r| {
                    let labels: Vec<String> = r
                        .spec
                        .allow
                        .node_labels
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.values().join("|")))
                        .collect();
                    vec![
                        r.name().to_string(),
                        r.spec.allow.logins.join(","),
                        labels.join(","),
                        r.metadata.description.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            jaunt_cli::print_text(&table::render(
                &["Role", "Allowed Logins", "Node Labels", "Description"],
                &rows,
            ))?;
            Ok(())
        }
    }
}

#[derive(Args)]
pub struct RmArgs {
    /// role/NAME, user/NAME, token/TOKEN, lock/ID, trusted_cluster/NAME or
    /// remote_cluster/NAME
    what: String,
}

pub fn rm(admin: &AdminClient, args: RmArgs) -> anyhow::Result<()> {
    let Some((kind, name)) = args.what.split_once('/') else {
        anyhow::bail!(
            "say what to remove as KIND/NAME: role/NAME, user/NAME, token/TOKEN, lock/ID, trusted_cluster/NAME or remote_cluster/NAME"
        );
    };
    let req = match kind {
        "role" | "roles" => AdminRequest::RoleRemove {
            name: name.to_string(),
        },
        "user" | "users" => AdminRequest::UserRemove {
            name: name.to_string(),
        },
        "token" | "tokens" => AdminRequest::TokenRemove {
            token: Secret::new(name.to_string()),
        },
        "lock" | "locks" => AdminRequest::LockRemove {
            id: name.to_string(),
        },
        "trusted_cluster" | "trusted_clusters" => AdminRequest::TrustedClusterRemove {
            name: name.to_string(),
        },
        "remote_cluster" | "remote_clusters" => AdminRequest::RemoteClusterRemove {
            name: name.to_string(),
        },
        other => anyhow::bail!(
            "unknown resource kind {other:?}: use role, user, token, lock, trusted_cluster or remote_cluster"
        ),
    };
    print_outcome(admin.call(&req)?)
}
