//! The process's metrics, served in Prometheus's text format on the
//! diagnostics port (`/metrics`). One set per process: a daemon runs auth,
//! the proxy and a node in one, and each counts what it owns through
//! [`metrics()`]. Counters only grow; gauges are set by their owner as
//! things change (or just before a scrape, for what is cheaper to read
//! then). Every metric is listed in docs/operations.md.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

/// A metric's labels: names fixed in the code, values from a small set.
pub type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    /// Connections the proxy accepted, by protocol (http, ssh, tunnel, raw).
    pub proxy_connections: Family<Labels, Counter>,
    /// Connections the proxy relays now (SSH relays and raw relays).
    pub proxy_relayed: Gauge,
    /// Bytes relayed, by direction (to_node, to_client).
    pub proxy_relay_bytes: Family<Labels, Counter>,
    /// Logins at auth by result (success, failure) and reason.
    pub auth_logins: Family<Labels, Counter>,
    /// Certificates issued, by kind (user_ssh, user_tls, host_ssh, node_tls,
    /// openssh_login, leaf_tls).
    pub auth_certificates: Family<Labels, Counter>,
    /// Heartbeats received, by sender (node, leaf).
    pub auth_heartbeats: Family<Labels, Counter>,
    /// Nodes with a live heartbeat at this instance.
    pub auth_nodes_online: Gauge,
    /// Store operations' latency, by operation.
    pub store_seconds: Family<Labels, Histogram>,
    /// A node's authenticated connections and running sessions.
    pub node_connections: Gauge,
    pub node_sessions: Gauge,
    /// A node's audit events waiting for auth, and the age in seconds of
    /// the oldest (the delivery lag).
    pub node_audit_queue: Gauge,
    pub node_audit_lag_seconds: Gauge,
    /// Bytes of recordings a node holds for upload.
    pub node_recording_backlog_bytes: Gauge,
}

fn histogram() -> Histogram {
    // 0.25 ms to about 4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("jaunt");
        let m = Metrics {
            proxy_connections: Family::default(),
            proxy_relayed: Gauge::default(),
            proxy_relay_bytes: Family::default(),
            auth_logins: Family::default(),
            auth_certificates: Family::default(),
            auth_heartbeats: Family::default(),
            auth_nodes_online: Gauge::default(),
            store_seconds: Family::new_with_constructor(histogram),
            node_connections: Gauge::default(),
            node_sessions: Gauge::default(),
            node_audit_queue: Gauge::default(),
            node_audit_lag_seconds: Gauge::default(),
            node_recording_backlog_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "proxy_connections",
            "Connections the proxy accepted, by protocol",
            m.proxy_connections.clone(),
        );
        r.register(
            "proxy_relayed_connections",
            "Connections the proxy relays now",
            m.proxy_relayed.clone(),
        );
        r.register(
            "proxy_relay_bytes",
            "Bytes the proxy relayed, by direction",
            m.proxy_relay_bytes.clone(),
        );
        r.register(
            "auth_logins",
            "Logins by result and reason",
            m.auth_logins.clone(),
        );
        r.register(
            "auth_certificates_issued",
            "Certificates issued, by kind",
            m.auth_certificates.clone(),
        );
        r.register(
            "auth_heartbeats",
            "Heartbeats received, by sender",
            m.auth_heartbeats.clone(),
        );
        r.register(
            "auth_nodes_online",
            "Nodes with a live heartbeat at this instance",
            m.auth_nodes_online.clone(),
        );
        r.register(
            "store_operation_seconds",
            "Latency of cluster store operations, by operation",
            m.store_seconds.clone(),
        );
        r.register(
            "node_connections",
            "A node's authenticated SSH connections",
            m.node_connections.clone(),
        );
        r.register(
            "node_sessions",
            "A node's running sessions",
            m.node_sessions.clone(),
        );
        r.register(
            "node_audit_queue_events",
            "A node's audit events waiting for auth",
            m.node_audit_queue.clone(),
        );
        r.register(
            "node_audit_delivery_lag_seconds",
            "Age of a node's oldest undelivered audit event",
            m.node_audit_lag_seconds.clone(),
        );
        r.register(
            "node_recording_backlog_bytes",
            "Bytes of recordings a node holds for upload",
            m.node_recording_backlog_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts one more of `family` with `labels`.
    pub fn inc(family: &Family<Labels, Counter>, labels: &[(&'static str, &'static str)]) {
        family.get_or_create(&labels.to_vec()).inc();
    }

    /// The text format of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Times a store operation.
pub fn observe_store(op: &'static str, seconds: f64) {
    metrics()
        .store_seconds
        .get_or_create(&vec![("op", op)])
        .observe(seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_every_metric() {
        let m = metrics();
        Metrics::inc(&m.auth_logins, &[("result", "success"), ("reason", "")]);
        m.auth_nodes_online.set(3);
        observe_store("get", 0.001);
        m.proxy_relay_bytes
            .get_or_create(&vec![("direction", "to_node")])
            .inc_by(42);
        let text = m.render();
        for want in [
            "jaunt_auth_logins_total{result=\"success\",reason=\"\"}",
            "jaunt_auth_nodes_online 3",
            "jaunt_store_operation_seconds_bucket{le=\"0.001\",op=\"get\"}",
            "jaunt_proxy_relay_bytes_total{direction=\"to_node\"} 42",
            "# TYPE jaunt_node_audit_delivery_lag_seconds gauge",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
