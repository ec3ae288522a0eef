//! The systemd unit `jaunt install systemd` writes: pure text from the
//! binary's path, the config file's path and whether the process runs a
//! node (which decides how far the service can be hardened).

/// A unit running `exe start --config=config`. Auth and proxy get the
/// full hardening; a node gets none of what would reach its users'
/// sessions, which run inside the service (its mount namespace, its
/// privileges), and the unit says so.
pub fn unit(exe: &str, config: &str, runs_node: bool) -> String {
    let hardening = if runs_node {
        "\
# This process runs a node: users' sessions run inside this service, so it
# keeps what they need. Not set, on purpose: NoNewPrivileges (it would stop
# sudo and other setuid programs in sessions), ProtectSystem, ProtectHome
# and PrivateTmp (sessions would see a read-only /usr, no home directories
# and a private /tmp), and a reduced CapabilityBoundingSet (sessions start
# as other users). Run auth and proxy in a unit of their own to harden them.
"
        .to_string()
    } else {
        "\
# Auth and proxy: no sessions run here, so the service is confined.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=/var/lib/jaunt
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
AmbientCapabilities=CAP_NET_BIND_SERVICE
"
        .to_string()
    };
    format!(
        "\
[Unit]
Description=Jaunt: certificate-based SSH access
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart={exe} start --config={config}
# SIGHUP reloads what can change while running (the log level).
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM drains: sessions get shutdown_timeout (30s by default) to end;
# systemd waits a little longer before it kills.
TimeoutStopSec=45
Restart=on-failure
RestartSec=5
LimitNOFILE=524288
StateDirectory=jaunt
StateDirectoryMode=0700
{hardening}
[Install]
WantedBy=multi-user.target
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_and_proxy_are_confined_and_a_node_is_not() {
        let confined = unit("/usr/bin/jaunt", "/etc/jaunt/jaunt.yaml", false);
        assert!(
            confined.contains("\nExecStart=/usr/bin/jaunt start --config=/etc/jaunt/jaunt.yaml\n")
        );
        for key in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
        ] {
            assert!(confined.contains(&format!("\n{key}\n")), "{key}");
        }
        let node = unit("/usr/bin/jaunt", "/etc/jaunt/jaunt.yaml", true);
        for key in [
            "NoNewPrivileges=",
            "ProtectSystem=",
            "PrivateTmp=",
            "CapabilityBoundingSet=",
        ] {
            assert!(
                !node.lines().any(|l| l.starts_with(key)),
                "{key} would reach users' sessions"
            );
        }
        assert!(node.contains("sudo"), "the unit says why");
    }
}
