//! `jctl users add|ls|rm|reset|update|unlock`.

use crate::admin::{AdminClient, unexpected};
use clap::Subcommand;
use jaunt_cli::{Format, say, split_list, table};
use jaunt_types::Ttl;
use jaunt_types::admin::{AdminRequest, AdminResponse};
use jaunt_types::timefmt::format_unix;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user and print the signup command for them.
    Add {
        name: String,
        /// Roles, comma-separated (e.g. access,editor).
        #[arg(long, required = true)]
        roles: String,
        /// OS logins the user may use, comma-separated ({{internal.logins}}).
        #[arg(long, default_value = "")]
        logins: String,
        /// How long the signup token is valid [default: 1h]
        #[arg(long)]
        ttl: Option<Ttl>,
    },
    /// List users.
    Ls {
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Delete a user.
    Rm { name: String },
    /// Clear a user's password and second factor and print a new signup command.
    Reset {
        name: String,
        #[arg(long)]
        ttl: Option<Ttl>,
    },
    /// Change a user's roles or logins.
    Update {
        name: String,
        #[arg(long)]
        set_roles: Option<String>,
        #[arg(long)]
        set_logins: Option<String>,
    },
    /// Lift a lockout after too many failed logins.
    Unlock { name: String },
}

pub fn run(admin: &AdminClient, cmd: UsersCommand) -> anyhow::Result<()> {
    let req = match cmd {
        UsersCommand::Add {
            name,
            roles,
            logins,
            ttl,
        } => AdminRequest::UserAdd {
            name,
            roles: split_list(&roles),
            logins: split_list(&logins),
            ttl,
        },
        UsersCommand::Ls { format } => return list(admin, format),
        UsersCommand::Rm { name } => AdminRequest::UserRemove { name },
        UsersCommand::Reset { name, ttl } => AdminRequest::UserReset { name, ttl },
        UsersCommand::Update {
            name,
            set_roles,
            set_logins,
        } => AdminRequest::UserUpdate {
            name,
            roles: set_roles.as_deref().map(split_list),
            logins: set_logins.as_deref().map(split_list),
        },
        UsersCommand::Unlock { name } => AdminRequest::UserUnlock { name },
    };
    print_outcome(admin.call(&req)?)
}

/// Prints a `Done` or `Signup` answer.
pub fn print_outcome(resp: AdminResponse) -> anyhow::Result<()> {
    match resp {
        AdminResponse::Done { message } => {
            say!("{}", capitalize(&message))?;
        }
        AdminResponse::Signup {
            user,
            expires,
            command,
            ..
        } => {
            let left = expires - jaunt_sys::clock::now();
            say!(
                "User {user:?} needs to set a password. Share this command with them; it works once, for {} (until {}):",
                Ttl::from_secs(left.max(0) as u64),
                format_unix(expires)
            )?;
            say!()?;
            say!("  {command}")?;
            say!()?;
        }
        other => return Err(unexpected(other)),
    }
    Ok(())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub fn list(admin: &AdminClient, format: Format) -> anyhow::Result<()> {
    let users = match admin.call(&AdminRequest::UserList)? {
        AdminResponse::Users { users } => users,
        other => return Err(unexpected(other)),
    };
    if format != Format::Text {
        return jaunt_cli::print_structured(&users, format);
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.roles.join(","),
                u.logins.join(","),
                u.status.clone(),
            ]
        })
        .collect();
    jaunt_cli::print_text(&table::render(
        &["User", "Roles", "Logins", "Status"],
        &rows,
    ))?;
    Ok(())
}
