//! Resource files for `jctl create`: one or more YAML documents separated
//! by `---`; each must be a known kind.

use crate::{ConfigError, yaml_error};
use jaunt_types::resources::{LockResource, Role, UserResource};
use jaunt_types::trust::TrustedCluster;
use serde::Deserialize;

/// A document `jctl create -f` accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Role(Role),
    TrustedCluster(TrustedCluster),
    User(UserResource),
    Lock(LockResource),
}

const KINDS: [&str; 4] = [
    Role::KIND,
    TrustedCluster::KIND,
    UserResource::KIND,
    LockResource::KIND,
];

/// One document as `T`, checked by `validate`; errors name the file, and
/// the kind and name of the resource or the line of the bad key.
fn typed<'de, T: Deserialize<'de>>(
    doc: serde_yaml_ng::Deserializer<'de>,
    file: &str,
    kind: &str,
    validate: fn(&T) -> Result<(), String>,
    name: fn(&T) -> &String,
) -> Result<T, ConfigError> {
    let value = T::deserialize(doc).map_err(|e| yaml_error(file, e))?;
    validate(&value).map_err(|message| ConfigError::Invalid {
        source_name: file.to_string(),
        key: format!("{kind} {:?}", name(&value)),
        message,
    })?;
    Ok(value)
}

/// Parses every document in `text` as a role, trusted cluster, user or
/// lock. `file` names the source in errors.
pub fn parse_resources(text: &str, file: &str) -> Result<Vec<Resource>, ConfigError> {
    let mut kinds = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        // serde_yaml_ng repeats a syntax error forever on the next
        // document, so the first error ends the parse.
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| yaml_error(file, e))?;
        if value.is_null() {
            kinds.push(None);
            continue;
        }
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if !KINDS.contains(&kind) {
            let n = kinds.iter().flatten().count() + 1;
            return Err(ConfigError::invalid(
                file,
                "kind",
                format!(
                    "document {n}: unsupported kind {kind:?}; jctl create knows: role, trusted_cluster, user, lock"
                ),
            ));
        }
        kinds.push(Some(kind.to_string()));
    }
    // Second pass, now typed, so errors point at the line of the bad key.
    let mut out = Vec::new();
    let docs = serde_yaml_ng::Deserializer::from_str(text);
    let mut kinds = kinds.into_iter();
    for doc in docs {
        let Some(kind) = kinds.next().flatten() else {
            continue;
        };
        let k = kind.as_str();
        let resource = match k {
            Role::KIND => {
                Resource::Role(typed(doc, file, k, Role::validate, |r| &r.metadata.name)?)
            }
            UserResource::KIND => {
                Resource::User(typed(doc, file, k, UserResource::validate, |u| {
                    &u.metadata.name
                })?)
            }
            LockResource::KIND => {
                Resource::Lock(typed(doc, file, k, LockResource::validate, |l| {
                    &l.metadata.name
                })?)
            }
            _ => Resource::TrustedCluster(typed(doc, file, k, TrustedCluster::validate, |t| {
                &t.metadata.name
            })?),
        };
        out.push(resource);
    }
    if out.is_empty() {
        return Err(ConfigError::invalid(file, "kind", "no resources found"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_several_roles() {
        let text = "kind: role\nmetadata: {name: a}\nspec:\n  allow:\n    logins: [x]\n---\nkind: role\nmetadata: {name: b}\n";
        let roles = parse_resources(text, "r.yaml").expect("parse");
        assert_eq!(roles.len(), 2);
        let Resource::Role(first) = &roles[0] else {
            panic!("a role: {:?}", roles[0]);
        };
        assert_eq!(first.spec.allow.logins, ["x"]);
    }

    #[test]
    fn parses_a_trusted_cluster() {
        let text = "kind: trusted_cluster\nmetadata: {name: root}\nspec:\n  token: abc\n  proxy_addr: root.example.com:3080\n  ca_pin: sha256:00\n  role_map:\n    - {remote: access, local: [leaf-access]}\n    - {remote: '^admin-(.*)$', local: ['$1']}\n";
        let parsed = parse_resources(text, "t.yaml").expect("parse");
        let Resource::TrustedCluster(tc) = &parsed[0] else {
            panic!("a trusted cluster: {:?}", parsed[0]);
        };
        assert!(tc.spec.enabled, "enabled unless told");
        assert_eq!(tc.spec.token.expose(), "abc");
        assert_eq!(tc.spec.role_map[1].local, ["$1"]);
        let no_pin = text.replace("  ca_pin: sha256:00\n", "");
        let err = parse_resources(&no_pin, "t.yaml")
            .expect_err("no pin")
            .to_string();
        assert!(err.contains("ca_pin"), "{err}");
        let typo = text.replace("role_map", "rolemap");
        let err = parse_resources(&typo, "t.yaml")
            .expect_err("typo")
            .to_string();
        assert!(err.contains("rolemap"), "{err}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let table = [
            (
                "kind: role\nmetadata: {name: a}\nspec:\n  allow:\n    lgins: [x]\n",
                "spec.allow: unknown field `lgins`",
            ),
            (
                "kind: role\nmetadata: {name: a}\nspec:\n  options:\n    max_session_ttl: forever\n",
                "line 5",
            ),
            (
                "kind: group\nmetadata: {name: a}\n",
                "unsupported kind \"group\"",
            ),
            ("kind: role\nmetadata: {name: 'a b'}\n", "metadata.name"),
            ("kind: role\nmetadata: [\n", "r.yaml"),
            ("", "no resources"),
        ];
        for (text, want) in table {
            let err = parse_resources(text, "r.yaml").expect_err(text).to_string();
            assert!(err.starts_with("r.yaml"), "{err}");
            assert!(err.contains(want), "{text:?}: {err} should contain {want}");
        }
    }
}
