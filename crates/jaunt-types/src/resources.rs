//! The resources an administrator manages: roles (YAML documents), users and
//! join tokens as `jctl` shows them. Server-only fields (password hashes,
//! TOTP secrets) live in the auth crate's own records, never here.

use crate::{Secret, Ttl};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Node labels, kept sorted so every listing is stable.
pub type Labels = BTreeMap<String, String>;

/// The trait a role's `{{internal.logins}}` expands to.
pub const LOGINS_TRAIT: &str = "{{internal.logins}}";

/// `kind: role` — what a user may do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub kind: String,
    #[serde(default = "default_version")]
    pub version: String,
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: RoleSpec,
}

fn default_version() -> String {
    "v1".to_string()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    #[serde(default)]
    pub allow: Conditions,
    #[serde(default)]
    pub deny: Conditions,
    #[serde(default)]
    pub options: RoleOptions,
}

/// One side (allow or deny) of a role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// OS logins; `{{internal.logins}}` expands to the user's own logins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<String>,
    /// Label selector: every key must match; `'*': '*'` matches every node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_labels: BTreeMap<String, LabelValues>,
    /// Administrative rights over cluster resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// A label selector value: one glob or a list of globs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelValues {
    One(String),
    Many(Vec<String>),
}

impl LabelValues {
    pub fn values(&self) -> &[String] {
        match self {
            LabelValues::One(v) => std::slice::from_ref(v),
            LabelValues::Many(v) => v,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleOptions {
    /// The longest certificate this role lets a user hold (default 12h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_session_ttl: Option<Ttl>,
    /// Local port forwarding (`-L`); allowed unless a role says false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_forwarding: Option<bool>,
    /// Agent forwarding (`-A`); allowed only if a role says true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_agent: Option<bool>,
    /// Session channels (shells, commands, SFTP) one SSH connection may
    /// hold open at once; the smallest any role sets (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// SSH connections a user may hold open at once on one node; the
    /// smallest any role sets (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Certificates work only from the address the user logged in from
    /// (their `source-address`); on if any role turns it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_source_ip: Option<bool>,
}

impl Role {
    pub const KIND: &'static str = "role";

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// Checks what serde cannot: the kind and the name's shape.
    pub fn validate(&self) -> Result<(), String> {
        if self.kind != Self::KIND {
            return Err(format!("kind: expected \"role\", got {:?}", self.kind));
        }
        if self.version != "v1" {
            return Err(format!(
                "version: only \"v1\" is known, got {:?}",
                self.version
            ));
        }
        validate_name(&self.metadata.name).map_err(|e| format!("metadata.name: {e}"))
    }
}

/// Names of users and roles: what can safely appear in a path, a certificate
/// key id and a table.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".to_string());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(format!(
            "{name:?} may contain only letters, digits, '-', '_', '.' and '@'"
        ));
    }
    if name.starts_with(['-', '.']) {
        return Err(format!("{name:?} must not start with '-' or '.'"));
    }
    Ok(())
}

/// OS login names (principals): the POSIX portable set.
pub fn validate_login(login: &str) -> Result<(), String> {
    let ok = !login.is_empty()
        && login.len() <= 32
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !login.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid login {login:?}: use 1 to 32 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// A user as `jctl get all` writes it and `jctl create -f` reads it: its
/// roles and logins, never its password or second factor (a restored user
/// signs up again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserResource {
    pub kind: String,
    #[serde(default = "default_version")]
    pub version: String,
    pub metadata: Metadata,
    pub spec: UserSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub logins: Vec<String>,
}

impl UserResource {
    pub const KIND: &'static str = "user";

    pub fn of(u: &UserInfo) -> Self {
        UserResource {
            kind: Self::KIND.into(),
            version: default_version(),
            metadata: Metadata {
                name: u.name.clone(),
                description: None,
            },
            spec: UserSpec {
                roles: u.roles.clone(),
                logins: u.logins.clone(),
            },
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.kind != Self::KIND {
            return Err(format!("kind: expected \"user\", got {:?}", self.kind));
        }
        validate_name(&self.metadata.name).map_err(|e| format!("metadata.name: {e}"))?;
        for role in &self.spec.roles {
            validate_name(role).map_err(|e| format!("spec.roles: {e}"))?;
        }
        for login in &self.spec.logins {
            validate_login(login).map_err(|e| format!("spec.logins: {e}"))?;
        }
        Ok(())
    }
}

/// A lock as `jctl get all` writes it (`metadata.name` is its ID; a
/// restored lock gets a new one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockResource {
    pub kind: String,
    #[serde(default = "default_version")]
    pub version: String,
    pub metadata: Metadata,
    pub spec: LockSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockSpec {
    pub target: LockTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unix seconds; none: until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

impl LockResource {
    pub const KIND: &'static str = "lock";

    pub fn of(l: &Lock) -> Self {
        LockResource {
            kind: Self::KIND.into(),
            version: default_version(),
            metadata: Metadata {
                name: l.id.clone(),
                description: None,
            },
            spec: LockSpec {
                target: l.target.clone(),
                message: l.message.clone(),
                expires: l.expires,
            },
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.kind != Self::KIND {
            return Err(format!("kind: expected \"lock\", got {:?}", self.kind));
        }
        let t = &self.spec.target;
        if t.user.is_none() && t.role.is_none() && t.login.is_none() && t.node.is_none() {
            return Err("spec.target: a lock names a user, role, login or node".into());
        }
        Ok(())
    }
}

/// A user as administrators see it (no secrets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub roles: Vec<String>,
    pub logins: Vec<String>,
    /// `active`, `pending signup`, or `locked until <time>`.
    pub status: String,
    pub created: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Lets a node join the cluster.
    Node,
    /// Lets one user set a password (and enrol a second factor).
    Signup,
    /// Lets a leaf cluster trust this one (`jctl create -f` at the leaf).
    #[serde(rename = "trusted_cluster")]
    TrustedCluster,
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenKind::Node => "node",
            TokenKind::Signup => "signup",
            TokenKind::TrustedCluster => "trusted_cluster",
        })
    }
}

/// A join or signup token as `jctl tokens ls` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub token: Secret<String>,
    pub kind: TokenKind,
    /// Unix seconds.
    pub expires: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `None`: any number of uses until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses_left: Option<u32>,
    /// A node token's pinned labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// What a lock matches: every field it sets (at least one). A node is
/// kept by UUID, with the name it had, for people reading the lock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
}

impl LockTarget {
    /// A target of these fields (a node by UUID or name, as given).
    pub fn of(
        user: Option<&str>,
        role: Option<&str>,
        login: Option<&str>,
        node: Option<&str>,
    ) -> Self {
        LockTarget {
            user: user.map(Into::into),
            role: role.map(Into::into),
            login: login.map(Into::into),
            node: node.map(Into::into),
            node_name: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.role.is_none() && self.login.is_none() && self.node.is_none()
    }
}

impl std::fmt::Display for LockTarget {
    /// `user:"alice", login:"root"`, as messages and tables show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let node = self.node.as_ref().map(|uuid| match &self.node_name {
            Some(name) if name != uuid => format!("{name} ({uuid})"),
            _ => uuid.clone(),
        });
        let parts: Vec<String> = [
            ("user", self.user.as_ref()),
            ("role", self.role.as_ref()),
            ("login", self.login.as_ref()),
            ("node", node.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}:{v:?}")))
        .collect();
        f.write_str(&parts.join(", "))
    }
}

/// A lock: access matching its target is refused, and live sessions
/// matching it end, until it is removed or expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub id: String,
    pub target: LockTarget,
    /// Shown to the users it stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unix seconds; `None`: until removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// Unix seconds.
    pub created: i64,
}

impl Lock {
    /// What the users it stops are told.
    pub fn refusal(&self) -> String {
        match self.message.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => format!("lock targeting {} is in force: {m}", self.target),
            None => format!("lock targeting {} is in force", self.target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_logins() {
        for ok in ["alice", "bob.smith", "ci-bot_2", "a@b"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "a\n", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["ubuntu", "ec2-user", "a.b"] {
            assert!(validate_login(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-root", "a b", "a,b", "x@y", &"x".repeat(33)] {
            assert!(validate_login(bad).is_err(), "{bad:?}");
        }
    }
}
