//! What the auth service stores, and under which keys. These records hold
//! secrets (hashes, TOTP seeds) and never leave this crate as they are.

use jaunt_types::Secret;
use jaunt_types::api::{NodeInfo, NodeSubKind};
use jaunt_types::resources::{Labels, TokenInfo, TokenKind, UserInfo};
use jaunt_types::timefmt::format_unix;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const IDENTITY_KEY: &str = "/cluster/identity";
pub const PROXY_TLS_KEY: &str = "/cluster/proxy_tls";
pub const USERS: &str = "/users/";
pub const ROLES: &str = "/roles/";
pub const TOKENS: &str = "/tokens/";

pub fn user_key(name: &str) -> String {
    format!("{USERS}{name}")
}

pub fn role_key(name: &str) -> String {
    format!("{ROLES}{name}")
}

pub fn token_key(token: &str) -> String {
    format!("{TOKENS}{token}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub roles: Vec<String>,
    pub logins: Vec<String>,
    pub created: i64,
    /// Argon2id PHC string; `None` until the user signs up.
    pub password_hash: Option<Secret<String>>,
    /// Base32 TOTP seed, when enrolled.
    pub totp_secret: Option<Secret<String>>,
    /// The last TOTP time step accepted: a code is good once.
    pub totp_last_step: Option<u64>,
    /// Locked for every address (failures from [`LOCK_ALL_ADDRESSES`]
    /// addresses each locked it), or by an administrator's unlock undone.
    pub locked_until: Option<i64>,
    /// Consecutive failed logins, and locks, per client address (IP):
    /// failures from one address lock the account for that address only,
    /// so no one can lock a user out from everywhere by guessing wrong.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub address_failures: BTreeMap<String, AddressFailures>,
}

/// Addresses each locking an account that lock it everywhere.
pub const LOCK_ALL_ADDRESSES: usize = 5;
/// Addresses a user record remembers failures of at most.
pub const MAX_FAILING_ADDRESSES: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressFailures {
    pub failures: u32,
    /// Unix seconds of the last failure.
    pub last: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
}

impl UserRecord {
    /// Until when the account is locked for a login from `addr`, if it is.
    pub fn locked_for(&self, addr: &str, now: i64) -> Option<i64> {
        let from_addr = self.address_failures.get(addr).and_then(|f| f.locked_until);
        [self.locked_until, from_addr]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .max()
    }

    /// Addresses the account is locked for now.
    pub fn locked_addresses(&self, now: i64) -> usize {
        self.address_failures
            .values()
            .filter(|f| f.locked_until.is_some_and(|t| t > now))
            .count()
    }

    /// Clears every failure and lock.
    pub fn unlock(&mut self) {
        self.locked_until = None;
        self.address_failures.clear();
    }
}

impl UserRecord {
    pub fn info(&self, now: i64) -> UserInfo {
        let locked_from: Vec<(&String, i64)> = self
            .address_failures
            .iter()
            .filter_map(|(a, f)| f.locked_until.filter(|t| *t > now).map(|t| (a, t)))
            .collect();
        let status = match self.locked_until {
            Some(t) if t > now => format!("locked until {}", format_unix(t)),
            _ if !locked_from.is_empty() => {
                let addrs: Vec<&str> = locked_from.iter().map(|(a, _)| a.as_str()).collect();
                let until = locked_from.iter().map(|(_, t)| *t).max().unwrap_or(now);
                format!(
                    "locked for {} until {}",
                    addrs.join(", "),
                    format_unix(until)
                )
            }
            _ if self.password_hash.is_none() => "pending signup".to_string(),
            _ => "active".to_string(),
        };
        UserInfo {
            name: self.name.clone(),
            roles: self.roles.clone(),
            logins: self.logins.clone(),
            status,
            created: self.created,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub token: Secret<String>,
    pub kind: TokenKind,
    pub expires: i64,
    pub user: Option<String>,
    pub uses_left: Option<u32>,
    /// For signup tokens when OTP is on: the seed the user enrols.
    pub totp_secret: Option<Secret<String>>,
    /// Node tokens: the labels of every node that joins with it. The
    /// node's own word on its labels is ignored then, so a node cannot
    /// widen who may see and reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

impl TokenRecord {
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            token: self.token.clone(),
            kind: self.kind,
            expires: self.expires,
            user: self.user.clone(),
            uses_left: self.uses_left,
            labels: self.labels.clone(),
        }
    }
}

/// A fresh random token: 128 bits as hex.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub const NODES: &str = "/nodes/";

pub fn node_key(uuid: &str) -> String {
    format!("{NODES}{uuid}")
}

/// A node in the inventory, as its joins and heartbeats leave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub uuid: String,
    pub name: String,
    pub labels: Labels,
    pub addr: Option<String>,
    pub host_public_key: String,
    pub last_seen: i64,
    /// The interval the node was last told to beat at (0 in records
    /// from before it was kept): its offline window follows from it.
    #[serde(default)]
    pub heartbeat_secs: u64,
    /// Its labels came from its join token and stay as they are.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub labels_pinned: bool,
    /// `Some` for an agentless node (it never heartbeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_kind: Option<NodeSubKind>,
}

impl NodeRecord {
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            addr: self.addr.clone(),
            last_seen: self.last_seen,
            sub_kind: self.sub_kind,
        }
    }
}
