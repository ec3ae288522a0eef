//! A trust's role map: which of this (leaf) cluster's roles a root
//! cluster's user holds here. A mapping's `remote` is a role name, a glob
//! (`*` matches any run of characters), or a regex written `^...$` whose
//! groups `$1`, `$2`... may appear in `local`. Each remote role is tried
//! against every mapping; the user holds every local role any of them
//! gives. No match, no role: a user whose roles map to nothing here gets
//! nothing.

use jaunt_types::resources::validate_name;
use jaunt_types::trust::RoleMapping;
use regex::Regex;
use std::collections::BTreeSet;

/// The longest pattern accepted: patterns come from administrators, but a
/// bound keeps compiled sizes small.
const MAX_PATTERN: usize = 256;

fn pattern(remote: &str) -> Result<Regex, String> {
    if remote.is_empty() || remote.len() > MAX_PATTERN {
        return Err(format!(
            "remote role pattern must be 1 to {MAX_PATTERN} characters"
        ));
    }
    let source = if remote.starts_with('^') && remote.ends_with('$') {
        remote.to_string()
    } else {
        let parts: Vec<String> = remote.split('*').map(regex::escape).collect();
        format!("^{}$", parts.join("(.*)"))
    };
    regex::RegexBuilder::new(&source)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("remote role pattern {remote:?}: {e}"))
}

/// Checks every pattern compiles and every local role is named: the
/// local roles' existence is the caller's to check (`local_roles`).
pub fn validate(map: &[RoleMapping]) -> Result<(), String> {
    if map.is_empty() {
        return Err("the role map is empty: map at least one remote role".into());
    }
    for m in map {
        pattern(&m.remote)?;
        if m.local.is_empty() {
            return Err(format!("remote role {:?} maps to no local role", m.remote));
        }
        for local in &m.local {
            if local.is_empty() {
                return Err(format!("remote role {:?} maps to an empty name", m.remote));
            }
        }
    }
    Ok(())
}

/// The local roles a map names literally (those without `$n`): each must
/// exist in this cluster.
pub fn literal_local_roles(map: &[RoleMapping]) -> BTreeSet<String> {
    map.iter()
        .flat_map(|m| m.local.iter())
        .filter(|l| !l.contains('$'))
        .cloned()
        .collect()
}

/// The local roles a user holding `remote_roles` at the root holds here,
/// sorted, without duplicates. A capture that expands to something that is
/// not a role name gives nothing.
pub fn map_roles(map: &[RoleMapping], remote_roles: &[String]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for m in map {
        let Ok(re) = pattern(&m.remote) else {
            continue;
        };
        for role in remote_roles {
            let Some(caps) = re.captures(role) else {
                continue;
            };
            for local in &m.local {
                let mut name = String::new();
                caps.expand(local, &mut name);
                if validate_name(&name).is_ok() {
                    out.insert(name);
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &[&str])]) -> Vec<RoleMapping> {
        entries
            .iter()
            .map(|(r, l)| RoleMapping {
                remote: r.to_string(),
                local: l.iter().map(|s| s.to_string()).collect(),
            })
            .collect()
    }

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_globs_and_regexes() {
        let m = map(&[
            ("access", &["leaf-access"]),
            ("^admin-(.*)$", &["$1"]),
            ("dev-*", &["developer"]),
        ]);
        assert_eq!(map_roles(&m, &roles(&["access"])), roles(&["leaf-access"]));
        assert_eq!(map_roles(&m, &roles(&["admin-db"])), roles(&["db"]));
        assert_eq!(
            map_roles(&m, &roles(&["dev-eu", "dev-us"])),
            roles(&["developer"])
        );
        assert_eq!(
            map_roles(&m, &roles(&["access", "admin-ops"])),
            roles(&["leaf-access", "ops"])
        );
    }

    #[test]
    fn unmapped_roles_give_nothing() {
        let m = map(&[("access", &["leaf-access"])]);
        assert!(map_roles(&m, &roles(&["editor"])).is_empty());
        assert!(map_roles(&m, &roles(&[])).is_empty());
        // A name is matched whole, never as a prefix.
        assert!(map_roles(&m, &roles(&["access2", "xaccess"])).is_empty());
        // A glob's other characters are literal.
        let dots = map(&[("a.c", &["x"])]);
        assert!(map_roles(&dots, &roles(&["abc"])).is_empty());
    }

    #[test]
    fn a_capture_that_is_not_a_role_name_gives_nothing() {
        let m = map(&[("^admin-(.*)$", &["$1"])]);
        assert!(map_roles(&m, &roles(&["admin-"])).is_empty());
        assert!(map_roles(&m, &roles(&["admin--x"])).is_empty());
    }

    #[test]
    fn validation() {
        assert!(validate(&[]).is_err());
        assert!(validate(&map(&[("^admin-(.*$", &["$1"])])).is_err());
        assert!(validate(&map(&[("access", &[])])).is_err());
        assert!(validate(&map(&[("", &["x"])])).is_err());
        assert!(validate(&map(&[("access", &["leaf-access"]), ("*", &["guest"])])).is_ok());
        let literal = literal_local_roles(&map(&[("a", &["x", "$1"]), ("b", &["y"])]));
        assert_eq!(literal.into_iter().collect::<Vec<_>>(), roles(&["x", "y"]));
    }
}
