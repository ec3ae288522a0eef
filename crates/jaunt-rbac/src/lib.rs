//! Role-based access control: given a user's roles and traits, decide which
//! logins they hold, which nodes they may reach, how long their certificates
//! may live and which administrative verbs they have. Pure functions over
//! values; no I/O.
//!
//! Semantics, stated once:
//! - A login on a node is allowed when one role allows both the login and the
//!   node's labels, and no role denies it. Deny always wins.
//! - A deny `node_labels` selector that matches a node denies every login on
//!   it; a deny `logins` entry denies that login everywhere (`*`: all).
//! - A label selector matches when every key matches; a key's values are
//!   globs (`*` matches any run of characters); key `*` with value `*`
//!   matches every node, including one with no labels. An empty selector
//!   matches nothing.
//! - `max_session_ttl` is the smallest any role sets (12h by default);
//!   `port_forwarding` is on unless a role turns it off; `forward_agent` is
//!   off unless a role turns it on; `max_sessions` (channels per
//!   connection) and `max_connections` (connections per node) are the
//!   smallest any role sets, none by default.

pub mod locks;
pub mod role_map;

use jaunt_types::Ttl;
use jaunt_types::resources::{Conditions, LOGINS_TRAIT, Labels, Role};
use std::collections::BTreeSet;

/// The certificate lifetime a role grants when it does not say.
pub const DEFAULT_MAX_SESSION_TTL: Ttl = Ttl::from_secs(12 * 3600);

/// Why access was refused; the text is what the user is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("login {login:?} is not allowed by the roles of user {user:?}")]
    Login { user: String, login: String },
    #[error(
        "user {user:?} may not reach this node: its labels are not allowed by the user's roles"
    )]
    Node { user: String },
    #[error("login {login:?} on this node is denied by role {role:?}")]
    DeniedByRole { login: String, role: String },
}

/// The traits a user carries into role templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traits {
    pub logins: Vec<String>,
}

/// A user's roles, resolved, with their traits: the thing every decision asks.
#[derive(Debug, Clone)]
pub struct AccessChecker {
    user: String,
    roles: Vec<Role>,
    traits: Traits,
}

impl AccessChecker {
    pub fn new(user: impl Into<String>, roles: Vec<Role>, traits: Traits) -> Self {
        AccessChecker {
            user: user.into(),
            roles,
            traits,
        }
    }

    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.name().to_string()).collect()
    }

    fn expand(&self, logins: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for login in logins {
            if login == LOGINS_TRAIT {
                out.extend(self.traits.logins.iter().cloned());
            } else {
                out.insert(login.clone());
            }
        }
        out
    }

    fn denied_logins(&self) -> BTreeSet<String> {
        self.roles
            .iter()
            .flat_map(|r| self.expand(&r.spec.deny.logins))
            .collect()
    }

    /// Every login some role allows and none denies: the certificate's
    /// principals. Sorted, without duplicates.
    pub fn logins(&self) -> Vec<String> {
        let denied = self.denied_logins();
        if denied.contains("*") {
            return Vec::new();
        }
        let allowed: BTreeSet<String> = self
            .roles
            .iter()
            .flat_map(|r| self.expand(&r.spec.allow.logins))
            .collect();
        allowed
            .into_iter()
            .filter(|l| l != "*" && !denied.contains(l))
            .collect()
    }

    /// May the user see (list, dial) a node with these labels at all?
    pub fn node_visible(&self, labels: &Labels) -> bool {
        let denied = self
            .roles
            .iter()
            .any(|r| selector_matches(&r.spec.deny, labels));
        !denied
            && self
                .roles
                .iter()
                .any(|r| selector_matches(&r.spec.allow, labels))
    }

    /// May the user log in as `login` on a node with these labels?
    pub fn check_login(&self, login: &str, labels: &Labels) -> Result<(), Denied> {
        for role in &self.roles {
            let deny = &role.spec.deny;
            let login_denied = self
                .expand(&deny.logins)
                .iter()
                .any(|l| l == "*" || l == login);
            if login_denied || selector_matches(deny, labels) {
                return Err(Denied::DeniedByRole {
                    login: login.to_string(),
                    role: role.name().to_string(),
                });
            }
        }
        let login_roles: Vec<&Role> = self
            .roles
            .iter()
            .filter(|r| self.expand(&r.spec.allow.logins).contains(login))
            .collect();
        if login_roles.is_empty() {
            return Err(Denied::Login {
                user: self.user.clone(),
                login: login.to_string(),
            });
        }
        if login_roles
            .iter()
            .any(|r| selector_matches(&r.spec.allow, labels))
        {
            Ok(())
        } else {
            Err(Denied::Node {
                user: self.user.clone(),
            })
        }
    }

    pub fn max_session_ttl(&self) -> Ttl {
        self.roles
            .iter()
            .map(|r| {
                r.spec
                    .options
                    .max_session_ttl
                    .unwrap_or(DEFAULT_MAX_SESSION_TTL)
            })
            .min()
            .unwrap_or(DEFAULT_MAX_SESSION_TTL)
    }

    /// The lifetime to grant for a requested one: capped by the roles.
    pub fn grant_ttl(&self, requested: Option<Ttl>) -> Ttl {
        let cap = self.max_session_ttl();
        requested.map_or(cap, |r| r.min(cap))
    }

    pub fn port_forwarding(&self) -> bool {
        !self.roles.is_empty()
            && self
                .roles
                .iter()
                .all(|r| r.spec.options.port_forwarding != Some(false))
    }

    pub fn forward_agent(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r.spec.options.forward_agent == Some(true))
    }

    /// Certificates pinned to the login's address: if any role says so.
    pub fn pin_source_ip(&self) -> bool {
        self.roles
            .iter()
            .any(|r| r.spec.options.pin_source_ip == Some(true))
    }

    /// Session channels per connection: the smallest any role sets.
    pub fn max_sessions(&self) -> Option<u32> {
        self.roles
            .iter()
            .filter_map(|r| r.spec.options.max_sessions)
            .min()
    }

    /// Connections per node: the smallest any role sets.
    pub fn max_connections(&self) -> Option<u32> {
        self.roles
            .iter()
            .filter_map(|r| r.spec.options.max_connections)
            .min()
    }

    /// May the user perform `verb` on `resource` (e.g. `read` on `session`)?
    pub fn can(&self, resource: &str, verb: &str) -> bool {
        let hit = |c: &Conditions| {
            c.rules.iter().any(|rule| {
                rule.resources.iter().any(|r| r == "*" || r == resource)
                    && rule.verbs.iter().any(|v| v == "*" || v == verb)
            })
        };
        !self.roles.iter().any(|r| hit(&r.spec.deny))
            && self.roles.iter().any(|r| hit(&r.spec.allow))
    }
}

/// Does this side's label selector match a node with these labels?
pub fn selector_matches(cond: &Conditions, labels: &Labels) -> bool {
    if cond.node_labels.is_empty() {
        return false;
    }
    cond.node_labels.iter().all(|(key, values)| {
        let values = values.values();
        if key == "*" {
            return values.iter().any(|v| v == "*");
        }
        match labels.get(key) {
            Some(actual) => values.iter().any(|pattern| glob_match(pattern, actual)),
            None => false,
        }
    })
}

/// Matches `text` against `pattern`, where `*` stands for any run of
/// characters and everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Classic two-pointer wildcard match with backtracking to the last star.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The roles every new cluster starts with: `access` (log in everywhere with
/// one's own logins), `editor` (administration) and `auditor` (read-only view
/// of sessions, events and recordings).
pub fn preset_roles() -> Vec<Role> {
    use jaunt_types::resources::{LabelValues, Metadata, RoleOptions, RoleSpec, Rule};
    let rule = |resources: &[&str], verbs: &[&str]| Rule {
        resources: resources.iter().map(|s| s.to_string()).collect(),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
    };
    let role = |name: &str, description: &str, allow: Conditions, options: RoleOptions| Role {
        kind: Role::KIND.to_string(),
        version: "v1".to_string(),
        metadata: Metadata {
            name: name.to_string(),
            description: Some(description.to_string()),
        },
        spec: RoleSpec {
            allow,
            deny: Conditions::default(),
            options,
        },
    };
    vec![
        role(
            "access",
            "Log in to every node with the user's own logins.",
            Conditions {
                logins: vec![LOGINS_TRAIT.to_string()],
                node_labels: [("*".to_string(), LabelValues::One("*".to_string()))].into(),
                // Everyone sees their own sessions and recordings; the
                // rules for `session` and `recording` mean everyone's.
                rules: Vec::new(),
            },
            RoleOptions {
                max_session_ttl: Some(DEFAULT_MAX_SESSION_TTL),
                port_forwarding: Some(true),
                forward_agent: Some(true),
                ..Default::default()
            },
        ),
        role(
            "editor",
            "Administer the cluster's users, roles and tokens.",
            Conditions {
                rules: vec![rule(&["*"], &["*"])],
                ..Default::default()
            },
            RoleOptions::default(),
        ),
        role(
            "auditor",
            "Read the audit log and every session and recording.",
            Conditions {
                rules: vec![rule(&["session", "event", "recording"], &["list", "read"])],
                ..Default::default()
            },
            RoleOptions::default(),
        ),
    ]
}

#[cfg(test)]
mod tests;
