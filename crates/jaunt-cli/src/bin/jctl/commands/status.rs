//! `jctl status`.

use crate::admin::{AdminClient, unexpected};
use clap::Args;
use jaunt_cli::{Format, say};
use jaunt_types::admin::{AdminRequest, AdminResponse};
use jaunt_types::rotation::{CaType, Mode};
use jaunt_types::timefmt::format_unix;

fn capitalized(ca: CaType) -> &'static str {
    match ca {
        CaType::User => "User",
        CaType::Host => "Host",
        CaType::Tls => "TLS",
        CaType::Openssh => "OpenSSH",
    }
}

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
    for ca in CaType::ALL {
        let line = match s.rotations.iter().find(|r| r.ca == ca) {
            None => "standby".to_string(),
            Some(r) => format!(
                "{} ({}, started {}, grace period {}; trusted: {})",
                r.rotation.phase,
                match r.rotation.mode {
                    Mode::Auto => "automatic",
                    Mode::Manual => "manual",
                },
                format_unix(r.rotation.started),
                jaunt_types::Ttl::from_secs(r.rotation.grace_period_secs),
                r.trusted.join(", ")
            ),
        };
        let label = format!("{} CA phase:", capitalized(ca));
        say!("{label:<16} {line}")?;
    }
    say!("CA pin:          {}", s.ca_pin)?;
    say!("Users / roles:   {} / {}", s.users, s.roles)?;
    Ok(())
}
