//! The leaf's side of trusted clusters: while this cluster trusts a root,
//! its proxy keeps a reverse tunnel to the root's proxy (the leaf may sit
//! behind NAT; the tunnel certificate came from the root when the trust
//! was made), reconnecting with backoff, and heartbeats over the root's
//! API (renewing that certificate). For each request the root sends down
//! the tunnel this proxy does what it does for its own users, with the
//! root user's roles mapped by the trust's role map: routes the target
//! among the nodes those roles may see and connects to the node (direct,
//! or through the node's own tunnel here), or lists those nodes; then it
//! opens the data connection back to the root, writes its one answer line
//! and (a dial) relays the SSH bytes, end to end between the client and
//! the node.

use crate::lines::write_json_line;
use crate::relay::{Refusal, Routes, reach};
use crate::tunnel::Tunnels;
use crate::upstream::{BoxedStream, Upstream, relay};
use jaunt_auth::AuthServer;
use jaunt_auth::trust::TrustedClusterRecord;
use jaunt_transport::tunnel::{self, Control};
use jaunt_transport::{ApiClient, ClientCert, Trust};
use jaunt_types::addr::DialPolicy;
use jaunt_types::api::{DialResponse, TunnelDial};
use jaunt_types::route::parse_target;
use jaunt_types::trust::{
    ClusterRequest, LeafNodes, PATH_TRUST_HEARTBEAT, RemoteIdentity, TrustHeartbeatRequest,
    TrustHeartbeatResponse,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often the list of trusted roots is read again.
const RECHECK: Duration = Duration::from_secs(1);
/// How often a leaf heartbeats to each root while its tunnel stands.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// The longest pause between attempts at a root.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What serving a root's requests needs.
#[derive(Clone)]
struct Leaf {
    auth: Arc<AuthServer>,
    tunnels: Arc<Tunnels>,
    dial_policy: Arc<DialPolicy>,
    forwarder: Arc<jaunt_forward::Forwarder>,
}

/// Keeps one link (tunnel and heartbeats) to every enabled trusted root,
/// and ends the links of roots no longer trusted or disabled.
pub(crate) async fn serve_roots(
    auth: Arc<AuthServer>,
    tunnels: Arc<Tunnels>,
    dial_policy: Arc<DialPolicy>,
    forwarder: Arc<jaunt_forward::Forwarder>,
) {
    let leaf = Leaf {
        auth,
        tunnels,
        dial_policy,
        forwarder,
    };
    // Root name -> (where and how it is reached, its link's task). The
    // tasks end with this one (the proxy's shutdown aborts it).
    let mut links: HashMap<String, (String, AbortOnDrop)> = HashMap::new();
    loop {
        match leaf.auth.trusted_clusters().await {
            Ok(roots) => {
                let wanted: HashMap<String, String> = roots
                    .into_iter()
                    .filter(|r| r.enabled)
                    .map(|r| (r.name.clone(), format!("{} {}", r.proxy_addr, r.ca_pin)))
                    .collect();
                links.retain(|name, (how, task)| {
                    wanted.get(name) == Some(how) && !task.0.is_finished()
                });
                for (name, how) in wanted {
                    links.entry(name.clone()).or_insert_with(|| {
                        (
                            how,
                            AbortOnDrop(tokio::spawn(keep_link(leaf.clone(), name))),
                        )
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the trusted clusters"),
        }
        tokio::time::sleep(RECHECK).await;
    }
}

/// A task that ends when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Marks a root's link up for as long as it lives (also when its task is
/// aborted).
struct LinkUp {
    auth: Arc<AuthServer>,
    root: String,
}

impl LinkUp {
    fn new(auth: &Arc<AuthServer>, root: &str) -> Self {
        auth.root_link(root, true);
        LinkUp {
            auth: auth.clone(),
            root: root.to_string(),
        }
    }
}

impl Drop for LinkUp {
    fn drop(&mut self) {
        self.auth.root_link(&self.root, false);
    }
}

/// The API client for a root, with the certificate it issued this leaf
/// and trusting it by its CA (saved at registration) and pin only.
fn client_for(record: &TrustedClusterRecord) -> Result<ApiClient, String> {
    let trust = Trust {
        ca_pin: Some(record.ca_pin.clone()),
        cluster_ca_pem: Some(record.tls_ca_pem.clone()),
        insecure: false,
    };
    let cert = ClientCert {
        cert_pem: record.tls_cert_pem.clone(),
        key_pem: record.tls_key_pem.expose().clone(),
    };
    ApiClient::new(&record.proxy_addr, &trust, Some(&cert)).map_err(|e| e.to_string())
}

/// One root's link, reconnecting with backoff until aborted.
async fn keep_link(leaf: Leaf, root: String) {
    let mut failures: u32 = 0;
    loop {
        if failures > 0 {
            let pause = Duration::from_millis(250)
                .saturating_mul(1 << failures.min(6))
                .min(MAX_BACKOFF);
            tokio::time::sleep(pause).await;
        }
        match link_once(&leaf, &root).await {
            Ok(()) => failures = 1,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%root, error = %e, "tunnel to the trusted (root) cluster is down");
            }
        }
    }
}

/// Opens the tunnel to `root` and serves it, heartbeating beside it, until
/// either ends (or the tunnel certificate was renewed: the next link uses
/// the new one; sessions already carried go on, on their own connections).
async fn link_once(leaf: &Leaf, root: &str) -> Result<(), String> {
    // A heartbeat first: it renews the certificate when due, and a root
    // that removed this leaf says so in words.
    let record = trusted(leaf, root).await?;
    if heartbeat(leaf, &record).await? == Beat::Renewed {
        return Ok(());
    }
    let api = client_for(&record)?;
    let (_, lines, proxy_addr) = tunnel::open_control(&api, &record.proxy_addr)
        .await
        .map_err(|e| e.to_string())?;
    let _up = LinkUp::new(&leaf.auth, root);
    tracing::info!(%root, proxy = %record.proxy_addr, "tunnel to the trusted (root) cluster is up");
    let beats = async {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            let record = trusted(leaf, root).await?;
            if heartbeat(leaf, &record).await? == Beat::Renewed {
                return Ok::<(), String>(());
            }
        }
    };
    tokio::select! {
        ended = serve_control(leaf, &api, lines, proxy_addr) => ended,
        ended = beats => ended,
    }
}

/// The trust in `root` as stored now.
async fn trusted(leaf: &Leaf, root: &str) -> Result<TrustedClusterRecord, String> {
    leaf.auth
        .trusted_clusters()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|r| r.name == root)
        .ok_or_else(|| "no longer trusted".to_string())
}

#[derive(Debug, PartialEq, Eq)]
enum Beat {
    Done,
    /// A new tunnel certificate, or the root's TLS CAs changed: the next
    /// link uses what is stored now.
    Renewed,
}

/// One heartbeat with the stored certificate; a CSR goes with it once
/// that is past half its life, or when the root asks (a TLS CA rotation
/// there), and the renewed certificate is stored.
async fn heartbeat(leaf: &Leaf, record: &TrustedClusterRecord) -> Result<Beat, String> {
    let now = jaunt_sys::clock::now();
    let mut due = jaunt_ca::client_identity_pem(&record.tls_cert_pem)
        .map(|id| id.not_after - now < (jaunt_types::api::NODE_CERT_TTL_SECS / 2) as i64)
        .unwrap_or(true);
    loop {
        let renewal = match due {
            true => Some(
                jaunt_ca::generate_client_csr(&leaf.auth.identity().cluster_name)
                    .map_err(|e| e.to_string())?,
            ),
            false => None,
        };
        let req = TrustHeartbeatRequest {
            tls_csr_pem: renewal.as_ref().map(|(csr, _)| csr.clone()),
            host_ca_keys: leaf
                .auth
                .authorities()
                .host
                .public_keys()
                .map_err(|e| e.to_string())?,
        };
        let answer: TrustHeartbeatResponse = client_for(record)?
            .post_once(PATH_TRUST_HEARTBEAT, &req)
            .await
            .map_err(|e| format!("heartbeat: {e}"))?;
        // The root's CAs as they are now (its rotations change them).
        let mut relink = false;
        if !answer.user_ca_keys.is_empty() && !answer.host_ca_keys.is_empty() {
            relink = leaf
                .auth
                .update_root_cas(
                    &record.name,
                    answer.user_ca_keys,
                    answer.host_ca_keys,
                    answer.tls_ca_pem,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        match (answer.tls_cert_pem, renewal) {
            (Some(cert), Some((_, key))) => {
                leaf.auth
                    .renew_trust_cert(&record.name, cert, key)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(root = %record.name, "tunnel certificate renewed");
                return Ok(Beat::Renewed);
            }
            _ if answer.tls_renew && !due => due = true,
            _ if relink => return Ok(Beat::Renewed),
            _ => return Ok(Beat::Done),
        }
    }
}

/// Serves the root's requests until the control connection ends.
async fn serve_control(
    leaf: &Leaf,
    api: &ApiClient,
    mut lines: Control,
    proxy_addr: SocketAddr,
) -> Result<(), String> {
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        let Ok(dial) = serde_json::from_str::<TunnelDial>(&line) else {
            continue;
        };
        let Some(request) = dial.request.clone() else {
            continue;
        };
        let (leaf, api) = (leaf.clone(), api.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(&leaf, &api, proxy_addr, &dial, request).await {
                tracing::warn!(error = %e, "a request from the root cluster failed");
            }
        });
    }
    Ok(())
}

/// A data connection back to the root: raw (ticketed plain TCP, which
/// the kernel can splice to a node's) or in TLS.
enum Data {
    Raw(tokio::net::TcpStream),
    Tls(BoxedStream),
}

impl Data {
    async fn answer<T: serde::Serialize>(&mut self, line: &T) -> Result<(), String> {
        match self {
            Data::Raw(s) => write_json_line(s, line).await,
            Data::Tls(s) => write_json_line(s, line).await,
        }
        .map_err(|e| e.to_string())
    }
}

/// The data connection back to the root for `dial`.
async fn open_data(api: &ApiClient, proxy: SocketAddr, dial: &TunnelDial) -> Result<Data, String> {
    Ok(match &dial.ticket {
        Some(ticket) => Data::Raw(
            tunnel::open_raw_data(proxy, dial.dial, ticket)
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => Data::Tls(Box::new(
            tunnel::open_tls_data(api, proxy, dial.dial)
                .await
                .map_err(|e| e.to_string())?,
        )),
    })
}

/// Carries a session between the root's data connection and the node.
async fn carry(data: Data, node: Upstream, client: SocketAddr) {
    match data {
        Data::Raw(root) => crate::upstream::relay_tcp(root, node, client).await,
        Data::Tls(root) => relay(root, node, client).await,
    }
}

async fn answer(
    leaf: &Leaf,
    api: &ApiClient,
    proxy: SocketAddr,
    dial: &TunnelDial,
    request: ClusterRequest,
) -> Result<(), String> {
    match request {
        ClusterRequest::ListNodes { user, remote } => {
            let answer = match leaf.auth.nodes_for_remote(&user, &remote, true).await {
                Ok(nodes) => LeafNodes {
                    error: None,
                    nodes: nodes.iter().map(|n| n.info()).collect(),
                },
                Err(e) => LeafNodes {
                    error: Some(Refusal::from(e).to_string()),
                    nodes: Vec::new(),
                },
            };
            open_data(api, proxy, dial).await?.answer(&answer).await
        }
        ClusterRequest::Dial {
            target,
            user,
            remote,
            client,
        } => {
            // The root's word for the client's address, as a proxy's word
            // is for a node; the node checks `source-address` against it.
            let client: SocketAddr = client.parse().unwrap_or(proxy);
            let routed = route(leaf, &target, &user, &remote, client).await;
            let mut data = open_data(api, proxy, dial).await?;
            match routed {
                Ok((upstream, node)) => {
                    let ok = DialResponse {
                        node: Some(node),
                        ..Default::default()
                    };
                    data.answer(&ok).await?;
                    carry(data, upstream, client).await;
                    Ok(())
                }
                Err(refusal) => {
                    tracing::info!(%user, root = %remote.cluster, %target, reason = %refusal, "a root cluster's user was refused");
                    data.answer(&DialResponse::refused(refusal.to_string()))
                        .await
                }
            }
        }
    }
}

/// Routes a root user's target here, as for a user of this cluster but
/// among the nodes their mapped roles may see.
async fn route(
    leaf: &Leaf,
    target: &str,
    user: &str,
    remote: &RemoteIdentity,
    client: SocketAddr,
) -> Result<(Upstream, String), Refusal> {
    let target = parse_target(target).map_err(Refusal::BadTarget)?;
    let nodes = leaf.auth.nodes_for_remote(user, remote, false).await?;
    let routes = Routes {
        auth: &leaf.auth,
        tunnels: &leaf.tunnels,
        tickets: None,
        dial_policy: &leaf.dial_policy,
        forwarder: &leaf.forwarder,
    };
    reach(&routes, &nodes, &target, user, client, true).await
}
