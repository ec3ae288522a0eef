//! Resource files for `jctl create`: one or more YAML documents separated
//! by `---`; each must be a known kind.

use crate::{ConfigError, yaml_error};
use jaunt_types::resources::Role;
use serde::Deserialize;

/// Parses every document in `text` as a role. `file` names the source in errors.
pub fn parse_resources(text: &str, file: &str) -> Result<Vec<Role>, ConfigError> {
    let mut roles = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        // serde_yaml_ng repeats a syntax error forever on the next
        // document, so the first error ends the parse.
        let value = serde_yaml_ng::Value::deserialize(doc).map_err(|e| yaml_error(file, e))?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != Role::KIND {
            let n = roles.len() + 1;
            return Err(ConfigError::invalid(
                file,
                "kind",
                format!("document {n}: unsupported kind {kind:?}; jctl create knows: role"),
            ));
        }
    }
    // Second pass, now typed, so errors point at the line of the bad key.
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let role = match Option::<Role>::deserialize(doc) {
            Ok(Some(role)) => role,
            Ok(None) => continue,
            Err(e) => return Err(yaml_error(file, e)),
        };
        role.validate().map_err(|m| ConfigError::Invalid {
            source_name: file.to_string(),
            key: format!("role {:?}", role.metadata.name),
            message: m,
        })?;
        roles.push(role);
    }
    if roles.is_empty() {
        return Err(ConfigError::invalid(file, "kind", "no resources found"));
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_several_roles() {
        let text = "kind: role\nmetadata: {name: a}\nspec:\n  allow:\n    logins: [x]\n---\nkind: role\nmetadata: {name: b}\n";
        let roles = parse_resources(text, "r.yaml").expect("parse");
        assert_eq!(roles.len(), 2);
        assert_eq!(roles[0].spec.allow.logins, ["x"]);
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
                "kind: user\nmetadata: {name: a}\n",
                "unsupported kind \"user\"",
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
