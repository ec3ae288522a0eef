//! Certificate-authority rotation, the reference product's phases, pure:
//! which phase may follow which, which key signs in each, and when an
//! automatic rotation moves on.
//!
//! `standby` (no rotation) → `init` (a new key is made and trusted
//! everywhere, but signs nothing) → `update_clients` (the user CA's new
//! key signs users' certificates; clients pick up the new host CA at
//! login) → `update_servers` (the host CA's new key signs nodes' host
//! certificates, which nodes renew by themselves) → `standby` (the old key
//! is no longer trusted). From `init`, `update_clients` or
//! `update_servers`, `rollback` goes back to the old key for signing while
//! both stay trusted; `standby` then drops the new one.

use serde::{Deserialize, Serialize};

/// The authorities that rotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaType {
    /// Signs users' SSH certificates; nodes trust it.
    User,
    /// Signs nodes' host certificates; clients trust it.
    Host,
    /// Signs the proxy's TLS certificate (clients and nodes trust it) and
    /// the TLS client certificates of users, nodes and leaf clusters (the
    /// proxy trusts it).
    Tls,
    /// Signs the proxy's per-connection certificates for agentless nodes;
    /// their sshd trusts it (`TrustedUserCAKeys`). Rotates as the user CA
    /// does, with the proxy as its one client.
    Openssh,
}

impl CaType {
    /// Every CA that rotates, in the order listings show them.
    pub const ALL: [CaType; 4] = [CaType::User, CaType::Host, CaType::Tls, CaType::Openssh];
}

impl std::fmt::Display for CaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaType::User => "user",
            CaType::Host => "host",
            CaType::Tls => "tls",
            CaType::Openssh => "openssh",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Standby,
    Init,
    UpdateClients,
    UpdateServers,
    Rollback,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Standby => "standby",
            Phase::Init => "init",
            Phase::UpdateClients => "update_clients",
            Phase::UpdateServers => "update_servers",
            Phase::Rollback => "rollback",
        })
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "standby" => Phase::Standby,
            "init" => Phase::Init,
            "update_clients" => Phase::UpdateClients,
            "update_servers" => Phase::UpdateServers,
            "rollback" => Phase::Rollback,
            other => {
                return Err(format!(
                    "unknown phase {other:?}: init, update_clients, update_servers, standby or rollback"
                ));
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Auth moves through the phases by itself over the grace period.
    Auto,
    /// An administrator moves each phase (`--manual --phase=...`).
    Manual,
}

/// A rotation in progress (none: `standby`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub phase: Phase,
    pub mode: Mode,
    /// Unix seconds.
    pub started: i64,
    /// When the current phase began (Unix seconds).
    pub phase_started: i64,
    pub grace_period_secs: u64,
}

/// The grace period when none is given: longer than the longest user
/// certificate a preset role allows.
pub const DEFAULT_GRACE_SECS: u64 = 30 * 3600;

/// What `jctl auth rotate` asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRequest {
    pub ca: CaType,
    pub grace_period_secs: Option<u64>,
    /// `None`: an automatic rotation from `standby`.
    pub manual_phase: Option<Phase>,
}

impl Rotation {
    /// Does the new key sign `ca`'s certificates in this phase? The user
    /// CA's new key signs from `update_clients` (nodes trust it since
    /// `init`); the host CA's only from `update_servers` (clients learn it
    /// at their logins in between).
    pub fn new_key_signs(&self, ca: CaType) -> bool {
        match ca {
            CaType::User | CaType::Tls | CaType::Openssh => self.new_key_signs_clients(),
            CaType::Host => self.new_key_signs_servers(),
        }
    }

    /// Does the new key sign clients' certificates (users', and for TLS
    /// nodes' and leaf clusters' client certificates)? From
    /// `update_clients`: the servers trust it since `init`.
    pub fn new_key_signs_clients(&self) -> bool {
        matches!(self.phase, Phase::UpdateClients | Phase::UpdateServers)
    }

    /// Does the new key sign servers' certificates (nodes' host
    /// certificates, the proxy's TLS certificate)? Only from
    /// `update_servers`: clients learn it at their logins before.
    pub fn new_key_signs_servers(&self) -> bool {
        self.phase == Phase::UpdateServers
    }

    /// The phase an automatic rotation is due to be in at `now`: each of
    /// `init`, `update_clients` and `update_servers` lasts a third of the
    /// grace period, then `standby`. `None` when it stays where it is
    /// (and always for a manual rotation).
    pub fn auto_due(&self, now: i64) -> Option<Phase> {
        if self.mode != Mode::Auto {
            return None;
        }
        let third = (self.grace_period_secs / 3) as i64;
        let next = match self.phase {
            Phase::Init => Phase::UpdateClients,
            Phase::UpdateClients => Phase::UpdateServers,
            Phase::UpdateServers | Phase::Rollback => Phase::Standby,
            Phase::Standby => return None,
        };
        (now >= self.phase_started.saturating_add(third)).then_some(next)
    }
}

/// Checks that an administrator may move a CA from `from` (`None`:
/// standby) to `to`.
pub fn check_step(ca: CaType, from: Option<Phase>, to: Phase) -> Result<(), String> {
    let from_phase = from.unwrap_or(Phase::Standby);
    let ok = matches!(
        (from_phase, to),
        (Phase::Standby, Phase::Init)
            | (Phase::Init, Phase::UpdateClients)
            | (Phase::UpdateClients, Phase::UpdateServers)
            | (Phase::UpdateServers, Phase::Standby)
            | (
                Phase::Init | Phase::UpdateClients | Phase::UpdateServers,
                Phase::Rollback
            )
            | (Phase::Rollback, Phase::Standby)
    );
    if ok {
        return Ok(());
    }
    let next = match from_phase {
        Phase::Standby => "init",
        Phase::Init => "update_clients (or rollback)",
        Phase::UpdateClients => "update_servers (or rollback)",
        Phase::UpdateServers => "standby (or rollback)",
        Phase::Rollback => "standby",
    };
    Err(format!(
        "the {ca} CA is in phase {from_phase}; the next phase is {next}, not {to}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(phase: Phase, mode: Mode) -> Rotation {
        Rotation {
            phase,
            mode,
            started: 1000,
            phase_started: 1000,
            grace_period_secs: 300,
        }
    }

    #[test]
    fn which_key_signs() {
        use Phase::*;
        for (phase, user, host) in [
            (Init, false, false),
            (UpdateClients, true, false),
            (UpdateServers, true, true),
            (Rollback, false, false),
        ] {
            let r = rotation(phase, Mode::Manual);
            assert_eq!(r.new_key_signs(CaType::User), user, "{phase}");
            assert_eq!(r.new_key_signs(CaType::Host), host, "{phase}");
            // TLS: clients' certificates as the user CA's, the proxy's as
            // the host CA's.
            assert_eq!(r.new_key_signs(CaType::Tls), user, "{phase}");
            assert_eq!(r.new_key_signs_servers(), host, "{phase}");
            // OpenSSH: the proxy's certificates, as users' are.
            assert_eq!(r.new_key_signs(CaType::Openssh), user, "{phase}");
        }
    }

    #[test]
    fn steps() {
        use Phase::*;
        let ok = [
            (None, Init),
            (Some(Init), UpdateClients),
            (Some(UpdateClients), UpdateServers),
            (Some(UpdateServers), Standby),
            (Some(Init), Rollback),
            (Some(UpdateClients), Rollback),
            (Some(UpdateServers), Rollback),
            (Some(Rollback), Standby),
        ];
        for (from, to) in ok {
            assert_eq!(check_step(CaType::User, from, to), Ok(()), "{from:?} {to}");
        }
        for (from, to) in [
            (None, UpdateClients),
            (None, Standby),
            (None, Rollback),
            (Some(Init), UpdateServers),
            (Some(Init), Init),
            (Some(UpdateClients), Standby),
            (Some(Rollback), Init),
            (Some(Rollback), UpdateClients),
        ] {
            let err = check_step(CaType::Host, from, to).expect_err("refused");
            assert!(err.contains("the next phase is"), "{err}");
        }
        assert_eq!(
            check_step(CaType::Host, Some(Init), UpdateServers),
            Err("the host CA is in phase init; the next phase is update_clients (or rollback), not update_servers".into())
        );
    }

    #[test]
    fn automatic_rotations_move_a_third_of_the_grace_period_apart() {
        use Phase::*;
        let r = rotation(Init, Mode::Auto);
        assert_eq!(r.auto_due(1099), None);
        assert_eq!(r.auto_due(1100), Some(UpdateClients));
        assert_eq!(
            rotation(UpdateClients, Mode::Auto).auto_due(1100),
            Some(UpdateServers)
        );
        assert_eq!(
            rotation(UpdateServers, Mode::Auto).auto_due(1100),
            Some(Standby)
        );
        assert_eq!(rotation(Rollback, Mode::Auto).auto_due(1100), Some(Standby));
        assert_eq!(rotation(Init, Mode::Manual).auto_due(99_999), None);
        for text in [
            "init",
            "update_clients",
            "update_servers",
            "standby",
            "rollback",
        ] {
            assert_eq!(text.parse::<Phase>().expect(text).to_string(), text);
        }
        assert!("done".parse::<Phase>().is_err());
    }
}
