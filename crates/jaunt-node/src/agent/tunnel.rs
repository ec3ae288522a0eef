//! Reverse tunnels, for nodes the proxy cannot dial: one control connection
//! to each proxy instance (ALPN `jaunt-tunnel/1`, the node's certificate),
//! and for each session a fresh data connection back, raw (ticketed plain
//! TCP) or in TLS.
//!
//! Heartbeat answers list the live instances (ID and address). A pool keeps
//! one control connection to each: it dials an instance's address until
//! that instance answers (each greets with its ID first). Behind a load
//! balancer all instances share one address, so the pool dials it again
//! whenever the instance that answered already has this node's tunnel,
//! until every instance has one, which is how the reference product's
//! agents find every proxy too. Until the first heartbeat (or with an auth
//! that lists no instances) it keeps one tunnel to the configured proxy.

use super::serve::serve_one;
use super::{NodeError, SharedConfig};
use crate::server::NodeContext;
use jaunt_transport::ApiClient;
use jaunt_transport::tunnel::{self, Control};
use jaunt_types::api::{ProxyInstance, TunnelDial};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The longest pause between attempts at one address.
const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// The instances this node has a control connection to, by ID (`""` for a
/// proxy that gave none).
#[derive(Default)]
struct Pool {
    connected: Mutex<HashSet<String>>,
    /// A connection came or went: the supervisor looks again.
    changed: Notify,
    /// Failed attempts in a row, by address (for the backoff).
    failures: Mutex<HashMap<String, u32>>,
}

/// Keeps a reverse tunnel to every live proxy instance.
pub(super) async fn serve_tunnels(
    ctx: Arc<NodeContext>,
    config: SharedConfig,
    mut proxies: watch::Receiver<Vec<ProxyInstance>>,
) {
    let pool = Arc::new(Pool::default());
    let mut dialing: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        let wanted = proxies.borrow_and_update().clone();
        let targets = {
            let have = pool.connected.lock().map(|c| c.clone()).unwrap_or_default();
            targets(&wanted, &have, &ctx.proxy_addr)
        };
        dialing.retain(|_, task| !task.is_finished());
        for addr in targets {
            if let std::collections::hash_map::Entry::Vacant(slot) = dialing.entry(addr) {
                let addr = slot.key().clone();
                slot.insert(tokio::spawn(dial_once(
                    ctx.clone(),
                    config.clone(),
                    pool.clone(),
                    addr,
                )));
            }
        }
        tokio::select! {
            _ = proxies.changed() => {}
            _ = pool.changed.notified() => {}
            // A dial that ended (refused, a duplicate) is tried again.
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The addresses to dial now: those of wanted instances this node has no
/// tunnel to; with no list, the configured proxy until one tunnel stands.
fn targets(wanted: &[ProxyInstance], have: &HashSet<String>, configured: &str) -> BTreeSet<String> {
    if wanted.is_empty() {
        return match have.is_empty() {
            true => BTreeSet::from([configured.to_string()]),
            false => BTreeSet::new(),
        };
    }
    wanted
        .iter()
        .filter(|p| !have.contains(&p.id))
        .map(|p| p.addr.clone())
        .collect()
}

/// One attempt at `addr`: a control connection, served while it lasts by a
/// task of its own, unless the instance that answered has this node's
/// tunnel already. Waits out the address's backoff first.
async fn dial_once(ctx: Arc<NodeContext>, config: SharedConfig, pool: Arc<Pool>, addr: String) {
    let failures = pool
        .failures
        .lock()
        .map(|f| f.get(&addr).copied().unwrap_or(0))
        .unwrap_or(0);
    if failures > 0 {
        let pause = Duration::from_millis(250)
            .saturating_mul(1 << failures.min(6))
            .min(MAX_BACKOFF);
        tokio::time::sleep(pause).await;
    }
    let fail = |pool: &Pool, e: &dyn std::fmt::Display| {
        tracing::warn!(proxy = %addr, error = %e, "reverse tunnel down");
        if let Ok(mut f) = pool.failures.lock() {
            *f.entry(addr.clone()).or_default() += 1;
        }
    };
    let (id, lines, proxy_addr, api) = match open_control(&ctx, &addr).await {
        Ok(opened) => opened,
        Err(e) => return fail(&pool, &e),
    };
    if let Ok(mut f) = pool.failures.lock() {
        f.remove(&addr);
    }
    let fresh = pool
        .connected
        .lock()
        .map(|mut c| c.insert(id.clone()))
        .unwrap_or(false);
    if !fresh {
        // Through a load balancer, an instance this node reached already.
        tracing::debug!(proxy = %addr, instance = %id, "a second tunnel to one instance: closed");
        return;
    }
    tracing::info!(proxy = %addr, instance = %id, "reverse tunnel to the proxy is up");
    // Served on its own, so the address is free for the next attempt (the
    // next instance behind the same load balancer).
    tokio::spawn(async move {
        if let Err(e) = serve_control(&ctx, &config, api, lines, proxy_addr).await {
            tracing::warn!(proxy = %addr, instance = %id, error = %e, "reverse tunnel down");
        }
        if let Ok(mut c) = pool.connected.lock() {
            c.remove(&id);
        }
        pool.changed.notify_one();
    });
}

/// A control connection to `addr`, and the ID its instance greeted with.
async fn open_control(
    ctx: &NodeContext,
    addr: &str,
) -> Result<(String, Control, SocketAddr, ApiClient), NodeError> {
    let api = ctx.api.read().map_err(|_| NodeError::Poisoned)?.clone();
    let (id, lines, proxy_addr) = tunnel::open_control(&api, addr).await?;
    Ok((id, lines, proxy_addr, api))
}

/// Serves one control connection: each dial opens a data connection.
async fn serve_control(
    ctx: &Arc<NodeContext>,
    config: &SharedConfig,
    api: ApiClient,
    mut lines: Control,
    proxy_addr: SocketAddr,
) -> Result<(), NodeError> {
    while let Some(line) = lines.next_line().await.map_err(NodeError::Tunnel)? {
        let Ok(dial) = serde_json::from_str::<TunnelDial>(&line) else {
            continue;
        };
        let api = api.clone();
        let ctx = ctx.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let opened = match &dial.ticket {
                Some(ticket) => tunnel::open_raw_data(proxy_addr, dial.dial, ticket)
                    .await
                    .map(|tcp| {
                        let local = tcp.local_addr().unwrap_or(proxy_addr);
                        serve_one(tcp, proxy_addr, local, ctx, &config, |_| {});
                    }),
                None => tunnel::open_tls_data(&api, proxy_addr, dial.dial)
                    .await
                    .map(|data| {
                        let peer = data.get_ref().0.peer_addr().unwrap_or(proxy_addr);
                        let local = data.get_ref().0.local_addr().unwrap_or(peer);
                        serve_one(data, peer, local, ctx, &config, |_| {});
                    }),
            };
            if let Err(e) = opened {
                tracing::warn!(error = %e, "tunnel data connection failed");
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(id: &str, addr: &str) -> ProxyInstance {
        ProxyInstance {
            id: id.into(),
            addr: addr.into(),
            peer_addr: String::new(),
        }
    }

    fn set(items: &[&str]) -> HashSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_a_list_one_tunnel_to_the_configured_proxy() {
        let t = targets(&[], &set(&[]), "proxy:3080");
        assert_eq!(t, BTreeSet::from(["proxy:3080".to_string()]));
        // An earlier proxy's tunnel (no ID) counts as the one.
        assert!(targets(&[], &set(&[""]), "proxy:3080").is_empty());
    }

    #[test]
    fn every_instance_missing_is_dialled_once_per_address() {
        let own = [proxy("a", "10.0.0.1:3080"), proxy("b", "10.0.0.2:3080")];
        let t = targets(&own, &set(&["a"]), "lb:3080");
        assert_eq!(t, BTreeSet::from(["10.0.0.2:3080".to_string()]));
        assert!(targets(&own, &set(&["a", "b"]), "lb:3080").is_empty());
        // Behind a load balancer: one address, dialled while any instance
        // behind it has no tunnel.
        let shared = [
            proxy("a", "lb:3080"),
            proxy("b", "lb:3080"),
            proxy("c", "lb:3080"),
        ];
        assert_eq!(
            targets(&shared, &set(&["b"]), "lb:3080"),
            BTreeSet::from(["lb:3080".to_string()])
        );
        assert!(targets(&shared, &set(&["a", "b", "c"]), "lb:3080").is_empty());
    }
}
