//! What `jaunt join openssh` writes into a stock sshd's configuration, as
//! text: the drop-in file with the cluster's settings, and the config with
//! an `Include` of it added at the top (sshd takes the first value it
//! reads of most keywords, so the drop-in must come first). Pure; the
//! command does the writing, checking and restarting.

use std::path::Path;

/// Where the host key, certificate and CA key of an agentless node live.
pub struct DropIn<'a> {
    pub trusted_user_ca_keys: &'a Path,
    pub host_key: &'a Path,
    pub host_certificate: &'a Path,
}

/// The drop-in file's text.
pub fn drop_in(d: &DropIn<'_>) -> String {
    format!(
        "# Written by 'jaunt join openssh': this host is reached through the Jaunt proxy.\n\
         # Users log in with certificates the cluster's OpenSSH CA gives the proxy.\n\
         # To undo: remove the Include of this file from sshd_config, then restart sshd.\n\
         TrustedUserCAKeys {}\n\
         HostKey {}\n\
         HostCertificate {}\n",
        d.trusted_user_ca_keys.display(),
        d.host_key.display(),
        d.host_certificate.display()
    )
}

/// The `Include` line for `path`.
pub fn include_line(path: &Path) -> String {
    format!("Include {}", path.display())
}

/// `config` with the `Include` of `path` at the top; `None` when it has it
/// already (anywhere: a second run changes nothing).
pub fn with_include(config: &str, path: &Path) -> Option<String> {
    let line = include_line(path);
    let present = config.lines().any(|l| {
        let mut words = l.split_whitespace();
        words
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("include"))
            && words.any(|w| Path::new(w) == path)
    });
    if present {
        return None;
    }
    Some(format!(
        "# Added by 'jaunt join openssh' (first, so its settings win):\n{line}\n{config}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_include_goes_first_and_only_once() {
        let path = Path::new("/var/lib/jaunt/openssh/sshd_config.jaunt");
        let original = "Port 22\nPasswordAuthentication no\n";
        let once = with_include(original, path).expect("added");
        assert!(once.starts_with("# Added by"), "{once}");
        assert_eq!(
            once.lines().nth(1),
            Some("Include /var/lib/jaunt/openssh/sshd_config.jaunt")
        );
        assert!(once.ends_with(original));
        assert_eq!(with_include(&once, path), None);
        // Written by hand, in another case, among other files.
        let by_hand = "include /etc/ssh/x.conf /var/lib/jaunt/openssh/sshd_config.jaunt\n";
        assert_eq!(with_include(by_hand, path), None);
        // Another file's Include is not ours.
        assert!(with_include("Include /etc/ssh/sshd_config.d/*.conf\n", path).is_some());
    }

    #[test]
    fn the_drop_in_names_the_three_files() {
        let text = drop_in(&DropIn {
            trusted_user_ca_keys: Path::new("/d/ca.pub"),
            host_key: Path::new("/d/key"),
            host_certificate: Path::new("/d/key-cert.pub"),
        });
        let settings: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            settings,
            [
                "TrustedUserCAKeys /d/ca.pub",
                "HostKey /d/key",
                "HostCertificate /d/key-cert.pub"
            ]
        );
    }
}
