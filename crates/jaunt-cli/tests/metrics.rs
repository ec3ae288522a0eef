//! `/metrics` on the diagnostics port, after the things it counts have
//! happened: logins (one refused), a session through the proxy, node
//! heartbeats, store operations. Its own test binary: metrics are per
//! process. Runs as root (it creates an OS user for the login).

mod support;

use std::time::Duration;
use support::*;

/// The value of the first sample line starting with `name`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn metrics_count_logins_sessions_heartbeats_and_store_operations() {
    let (c, os, home) = Cluster::with_alice(
        Options {
            diag: true,
            node_offline_after: "2s",
            ..Default::default()
        },
        "mt",
    );
    let _node = c.add_node("node1", "env=dev", true);
    c.login(&home, "alice", &[], "wrong password\n")
        .fails_with("invalid credentials");
    eventually(
        "a session through the proxy",
        Duration::from_secs(20),
        || {
            let out = c.jsh(
                &home,
                &["ssh", &format!("{}@node1", os.name), "echo hi"],
                "",
            );
            (out.code == Some(0)).then_some(())
        },
    );

    let (code, text) = http_get(&c.diag(), "/metrics");
    assert_eq!(code, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(sample(&text, "jaunt_auth_logins_total{result=\"success\"") >= 1.0);
    assert!(
        sample(
            &text,
            "jaunt_auth_logins_total{result=\"failure\",reason=\"invalid_credentials\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &text,
            "jaunt_auth_certificates_issued_total{kind=\"user_ssh\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &text,
            "jaunt_auth_certificates_issued_total{kind=\"host_ssh\"}"
        ) >= 1.0
    );
    assert!(sample(&text, "jaunt_auth_heartbeats_total{sender=\"node\"}") >= 1.0);
    assert!(sample(&text, "jaunt_auth_nodes_online") >= 1.0);
    assert!(sample(&text, "jaunt_proxy_connections_total{protocol=\"ssh\"}") >= 1.0);
    assert!(sample(&text, "jaunt_proxy_connections_total{protocol=\"http\"}") >= 1.0);
    assert!(sample(&text, "jaunt_store_operation_seconds_count{op=\"get\"}") >= 1.0);
    // The session's bytes are counted once its relay has ended.
    eventually("relay bytes counted", Duration::from_secs(10), || {
        let (_, text) = http_get(&c.diag(), "/metrics");
        (text.contains("jaunt_proxy_relay_bytes_total{direction=\"to_node\"}")
            && sample(
                &text,
                "jaunt_proxy_relay_bytes_total{direction=\"to_node\"}",
            ) > 0.0)
            .then_some(())
    });
    // The node's own gauges (it runs in this process).
    for gauge in [
        "jaunt_node_connections",
        "jaunt_node_sessions",
        "jaunt_node_audit_queue_events",
        "jaunt_node_audit_delivery_lag_seconds",
    ] {
        assert!(sample(&text, gauge) >= 0.0, "{gauge}");
    }
}
