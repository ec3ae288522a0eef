//! Target parsing and routing: `[login@]host[:port]` as a user types it,
//! against an inventory. Never a panic; a chosen node is one the target
//! names.
#![no_main]

use jaunt_types::api::NodeInfo;
use jaunt_types::route::{parse_target, resolve};
use libfuzzer_sys::fuzz_target;

fn node(uuid: &str, name: &str, addr: Option<&str>) -> NodeInfo {
    NodeInfo {
        uuid: uuid.into(),
        name: name.into(),
        labels: Default::default(),
        addr: addr.map(Into::into),
        last_seen: 0,
        sub_kind: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let nodes = [
        node(
            "8f1c2d3e-0000-4000-8000-000000000001",
            "web",
            Some("10.0.0.5:22"),
        ),
        node("8f1c2d3e-0000-4000-8000-000000000002", "web", None),
        node(
            "8f1c2d3e-0000-4000-8000-000000000003",
            "db",
            Some("[::1]:2222"),
        ),
        node("8f1c2d3e-0000-4000-8000-000000000004", "10.0.0.5", None),
    ];
    let Ok(target) = parse_target(text) else {
        return;
    };
    if let Ok(chosen) = resolve(&nodes, &target.host, target.port, "example") {
        let host = target.host.strip_suffix(".example").unwrap_or(&target.host);
        let addr_host = chosen.addr.as_deref().map(|a| {
            a.rsplit_once(':')
                .map_or(a, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
        });
        assert!(
            chosen.uuid == host || chosen.name == host || addr_host == Some(host),
            "{text:?} routed to {chosen:?}"
        );
    }
});
