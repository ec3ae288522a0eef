//! The root's side of trusted clusters: a leaf's proxy keeps a reverse
//! tunnel here (its certificate names it as a remote cluster), and this
//! proxy asks it, through that tunnel, for one data connection per request
//! (`ClusterRequest`): reach a node of the leaf for a user of ours, or list
//! the leaf's nodes that user may see. The leaf answers with one JSON line
//! on the data connection; for a dial the SSH bytes follow, end to end
//! between the client and the leaf's node, so this proxy only relays them
//! (raw splice when relays are raw), as for a node of its own.

use crate::relay::{Refusal, Routes};
use crate::tunnel::Tunnels;
use crate::upstream::Upstream;
use jaunt_auth::AuthServer;
use jaunt_types::api::DialResponse;
use jaunt_types::trust::{ClusterInfo, ClusterRequest, LeafNodes};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::time::Duration;

/// How long a leaf has to answer on its data connection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// The tunnel registry's key for leaf `name` (never a node's UUID).
pub fn leaf_key(name: &str) -> String {
    format!("cluster/{name}")
}

/// Asks leaf `leaf` for a connection serving `request`, and reads its
/// answer line.
async fn ask_leaf<T: DeserializeOwned>(
    auth: &AuthServer,
    tunnels: &Tunnels,
    leaf: &str,
    request: ClusterRequest,
) -> Result<(T, Upstream), Refusal> {
    if auth.remote_cluster(leaf).await?.is_none() {
        return Err(Refusal::UnknownCluster {
            asked: leaf.to_string(),
            serves: auth.identity().cluster_name.clone(),
        });
    }
    let key = leaf_key(leaf);
    if !tunnels.is_connected(&key) {
        return Err(Refusal::LeafOffline(leaf.to_string()));
    }
    let mut upstream = tunnels.dial(&key, leaf, Some(request)).await?;
    let answer = tokio::time::timeout(ANSWER_TIMEOUT, upstream.read_answer::<T>())
        .await
        .map_err(|_| Refusal::Leaf(format!("cluster {leaf} did not answer in time")))?
        .map_err(|e| Refusal::Leaf(format!("cluster {leaf} answered badly: {e}")))?;
    Ok((answer, upstream))
}

/// Reaches `target` in leaf `leaf` for `user` (this cluster's): the leaf
/// routes it among the nodes the user's roles map to there. Returns the
/// connection, SSH next, and the node's UUID.
pub(crate) async fn dial_leaf(
    routes: &Routes<'_>,
    leaf: &str,
    target: &str,
    user: &str,
    peer: SocketAddr,
) -> Result<(Upstream, String), Refusal> {
    let request = ClusterRequest::Dial {
        target: target.to_string(),
        user: user.to_string(),
        remote: routes.auth.remote_identity(user).await?,
        client: peer.to_string(),
    };
    let (answer, upstream): (DialResponse, _) =
        ask_leaf(routes.auth, routes.tunnels, leaf, request).await?;
    match (answer.error, answer.node) {
        (Some(error), _) => Err(Refusal::Leaf(error)),
        (None, Some(node)) => Ok((upstream, node)),
        (None, None) => Err(Refusal::Leaf(format!("cluster {leaf} named no node"))),
    }
}

/// The leaf's nodes `user` may see there.
pub(crate) async fn leaf_nodes(
    auth: &AuthServer,
    tunnels: &Tunnels,
    leaf: &str,
    user: &str,
) -> Result<Vec<jaunt_types::api::NodeInfo>, Refusal> {
    let request = ClusterRequest::ListNodes {
        user: user.to_string(),
        remote: auth.remote_identity(user).await?,
    };
    let (answer, _): (LeafNodes, _) = ask_leaf(auth, tunnels, leaf, request).await?;
    match answer.error {
        Some(error) => Err(Refusal::Leaf(error)),
        None => Ok(answer.nodes),
    }
}

/// This cluster and its leaves, as `jsh clusters` lists them: a leaf is
/// online while its tunnel to this instance stands.
pub(crate) async fn clusters(
    auth: &AuthServer,
    tunnels: &Tunnels,
) -> Result<Vec<ClusterInfo>, jaunt_auth::AuthError> {
    let mut all = vec![ClusterInfo {
        name: auth.identity().cluster_name.clone(),
        status: "online".into(),
        kind: "root".into(),
        labels: Default::default(),
        host_ca_keys: auth.authorities().host.public_keys()?,
    }];
    for leaf in auth.remote_clusters().await? {
        all.push(ClusterInfo {
            status: match tunnels.is_connected(&leaf_key(&leaf.name)) {
                true => "online".into(),
                false => "offline".into(),
            },
            name: leaf.name,
            kind: "leaf".into(),
            labels: leaf.labels,
            host_ca_keys: leaf.host_ca_keys,
        });
    }
    Ok(all)
}
