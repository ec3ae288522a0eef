//! `jctl status`.

use crate::admin::{AdminClient, unexpected};
use clap::Args;
use jaunt_cli::{Format, say};
use jaunt_types::admin::{AdminRequest, AdminResponse};

#[derive(Args)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(admin: &AdminClient, args: StatusArgs) -> anyhow::Result<()> {
    let s = match admin.call(&AdminRequest::Status)? {
        AdminResponse::Status(s) => s,
        other => return Err(unexpected(other)),
    };
    if args.format != Format::Text {
        return jaunt_cli::print_structured(&s, args.format);
    }
    say!("Cluster:         {}", s.cluster_name)?;
    say!("Proxy:           {}", s.public_addr)?;
    say!("Second factor:   {}", s.second_factor)?;
    say!("User CA:         {}", s.user_ca_fingerprint)?;
    say!("Host CA:         {}", s.host_ca_fingerprint)?;
    say!("CA pin:          {}", s.ca_pin)?;
    say!("Users / roles:   {} / {}", s.users, s.roles)?;
    Ok(())
}
