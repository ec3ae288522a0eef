//! The `Validity` expression of a trusted host CA, as Jaunt writes it:
//! host names or wildcards joined by ` || `. Anything else (`&&`, brackets,
//! `port:`) was written by hand; it is reported, never silently rewritten.

/// A Validity string that Jaunt cannot merge into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "validity string for {entry} is {text:?}: {problem}. Fix it in PuTTY (Connection > SSH > Host keys > Configure host CAs: load {entry}, then correct \"Valid hosts this key is trusted to certify\" to the form host1 || host2 || ...) or delete that entry and run jsh puttyconfig again"
)]
pub struct ValidityError {
    pub entry: String,
    pub text: String,
    pub problem: String,
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._*".contains(c))
}

/// Parses `host1 || host2 || ...`; an empty string is no hosts.
pub fn parse(entry: &str, text: &str) -> Result<Vec<String>, ValidityError> {
    let err = |problem: &str| ValidityError {
        entry: entry.to_string(),
        text: text.to_string(),
        problem: problem.to_string(),
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    if text.contains("&&") || text.contains('(') || text.contains(')') || text.contains("port:") {
        return Err(err(
            "it uses '&&', brackets or 'port:', which jsh does not edit",
        ));
    }
    let mut hosts = Vec::new();
    for part in text.split("||") {
        let h = part.trim();
        if !valid_host(h) {
            return Err(err(&format!("{h:?} is not a host name")));
        }
        if !hosts.iter().any(|x| x == h) {
            hosts.push(h.to_string());
        }
    }
    Ok(hosts)
}

/// Adds `new` hosts after the existing ones, without duplicates, keeping
/// the existing order so re-runs change nothing.
pub fn merge(existing: &[String], new: &[String]) -> Vec<String> {
    let mut out: Vec<String> = existing.to_vec();
    for h in new {
        if !out.contains(h) {
            out.push(h.clone());
        }
    }
    out
}

/// The hosts of a legacy `MatchHosts` value (early PuTTY 0.78 betas kept a
/// list instead of a Validity expression), to migrate into Validity.
pub fn legacy_match_hosts(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn format(hosts: &[String]) -> String {
    hosts.join(" || ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_merge_format() {
        let hosts = parse("JauntHostCA-example", "node1 || node2||*.example").expect("parse");
        assert_eq!(hosts, ["node1", "node2", "*.example"]);
        let merged = merge(&hosts, &["node2".into(), "node3".into()]);
        assert_eq!(format(&merged), "node1 || node2 || *.example || node3");
        assert_eq!(parse("x", "").expect("empty"), Vec::<String>::new());
        assert_eq!(parse("x", "a || a").expect("dup"), ["a"]);
        assert_eq!(legacy_match_hosts("a, b,,c"), ["a", "b", "c"]);
    }

    #[test]
    fn hand_broken_strings_are_reported() {
        for bad in [
            "node1 && node2",
            "(node1)",
            "node1 || ",
            "node1 || port:22",
            "node one",
        ] {
            let e = parse("JauntHostCA-example", bad).expect_err(bad);
            let msg = e.to_string();
            assert!(
                msg.starts_with("validity string for JauntHostCA-example"),
                "{msg}"
            );
            assert!(msg.contains("host1 || host2"), "{msg}");
        }
    }
}
