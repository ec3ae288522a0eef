//! The proxy instances of the cluster. Each registers itself in the store
//! (an entry that expires unless renewed), and heartbeat answers carry the
//! live ones, so a tunnel node keeps a tunnel to every instance: then any
//! instance can reach it, and losing one loses none of the nodes.

use crate::{AuthError, AuthServer};
use jaunt_types::api::ProxyInstance;
use std::time::{Duration, Instant};

const PROXIES: &str = "/proxies/";
const PEER_KEY: &str = "/cluster/peer_key";
const CLIENT_ADDR_SECRET: &str = "/cluster/client_addr_secret";
/// A registration lasts this long unless renewed ([`RENEW_EVERY`]): an
/// instance that died leaves the list within this.
pub const PROXY_TTL_SECS: i64 = 30;
/// How often an instance renews its registration.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// Heartbeats read the list at most this often per instance (at 50,000
/// nodes, hundreds of heartbeats a second ask for it).
const LIST_FOR: Duration = Duration::from_secs(2);

/// The last list read, and when.
#[derive(Default)]
pub(crate) struct ProxyList(std::sync::Mutex<Option<(Instant, Vec<ProxyInstance>)>>);

impl AuthServer {
    /// Registers (or renews) a proxy instance.
    pub async fn register_proxy(&self, proxy: &ProxyInstance) -> Result<(), AuthError> {
        let expires = crate::now() + PROXY_TTL_SECS;
        self.store
            .put(&format!("{PROXIES}{}", proxy.id), proxy, Some(expires))
            .await?;
        // Its own instance knows at once.
        if let Ok(mut cached) = self.proxy_list.0.lock() {
            *cached = None;
        }
        Ok(())
    }

    /// The key proxy instances vouch with for the connections they hand
    /// each other (made once, by whichever instance asks first).
    pub async fn peer_key(&self) -> Result<Vec<u8>, AuthError> {
        self.cluster_secret(PEER_KEY).await
    }

    /// A random secret of the cluster's at `key`, made once by whichever
    /// instance asks first (create-if-absent, so racing instances agree).
    async fn cluster_secret(&self, key: &str) -> Result<Vec<u8>, AuthError> {
        let fresh = crate::records::random_token();
        match self.store.create(key, &fresh, None).await {
            Ok(_) => Ok(fresh.into_bytes()),
            Err(jaunt_store::StoreError::AlreadyExists(_)) => self
                .store
                .get::<String>(key)
                .await?
                .map(|v| v.value.into_bytes())
                .ok_or_else(|| AuthError::Internal(format!("the secret at {key} vanished"))),
            Err(e) => Err(e.into()),
        }
    }

    /// The key node `uuid` checks the proxy's client-address lines with:
    /// derived from a cluster secret (made once, by whichever instance
    /// asks first; read once per instance), so every instance vouches
    /// alike and each node knows only its own.
    pub async fn client_addr_key(&self, uuid: &str) -> Result<Vec<u8>, AuthError> {
        let secret = self
            .client_addr_secret
            .get_or_try_init(|| self.cluster_secret(CLIENT_ADDR_SECRET))
            .await?;
        Ok(jaunt_ca::client_addr::node_key(secret, uuid))
    }

    /// Takes an instance off the list (as it stops).
    pub async fn unregister_proxy(&self, id: &str) {
        let _ = self.store.delete(&format!("{PROXIES}{id}")).await;
    }

    /// The instances registered and not expired; empty if the store cannot
    /// say (a node then keeps the tunnels it has).
    pub async fn live_proxies(&self) -> Vec<ProxyInstance> {
        if let Ok(cached) = self.proxy_list.0.lock()
            && let Some((at, list)) = cached.as_ref()
            && at.elapsed() < LIST_FOR
        {
            return list.clone();
        }
        match self.store.list::<ProxyInstance>(PROXIES).await {
            Ok(items) => {
                let list: Vec<ProxyInstance> = items.into_iter().map(|v| v.value).collect();
                if let Ok(mut cached) = self.proxy_list.0.lock() {
                    *cached = Some((Instant::now(), list.clone()));
                }
                list
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the proxy list");
                Vec::new()
            }
        }
    }
}
