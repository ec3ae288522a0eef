//! The root cluster and its leaves, as the proxy lists them (`jsh
//! clusters`), and the leaves' host CAs kept in `known_hosts` beside the
//! root's: a leaf's nodes present host certificates from their own
//! cluster's CA, and `jsh ssh`, OpenSSH (`jsh config`) and PuTTY (`jsh
//! puttyconfig --leaf`) check them against it.

use crate::home::Home;
use crate::profile::Profile;
use crate::{ClientError, Result};
use jaunt_ca::ssh_key::public::KeyData;
use jaunt_transport::ApiClient;
use jaunt_types::trust::{ClusterInfo, ClustersResponse, PATH_CLUSTERS};

/// The clusters this login reaches, root first.
pub async fn fetch(client: &ApiClient) -> Result<Vec<ClusterInfo>> {
    let resp: ClustersResponse = client.get(PATH_CLUSTERS).await?;
    Ok(resp.clusters)
}

/// Saves each leaf's host CA keys in `known_hosts` (the root's came with
/// the login).
pub fn remember(home: &Home, profile: &Profile, clusters: &[ClusterInfo]) -> Result<()> {
    for leaf in clusters.iter().filter(|c| c.name != profile.cluster) {
        home.set_host_cas(&profile.name(), &leaf.name, &leaf.host_ca_keys)?;
    }
    Ok(())
}

/// The host CA keys for `cluster`'s nodes: from `known_hosts`, or for a
/// leaf not seen yet, asked of the proxy (and saved).
pub async fn host_cas_for(
    home: &Home,
    profile: &Profile,
    client: &ApiClient,
    cluster: &str,
) -> Result<Vec<KeyData>> {
    match crate::ssh::host_cas(home, cluster) {
        Ok(keys) => Ok(keys),
        Err(_) if cluster != profile.cluster => {
            let all = fetch(client).await?;
            if !all.iter().any(|c| c.name == cluster) {
                return Err(ClientError::Invalid(format!(
                    "cluster {cluster:?} is not known to {} (see 'jsh clusters')",
                    profile.web_proxy_addr
                )));
            }
            remember(home, profile, &all)?;
            crate::ssh::host_cas(home, cluster)
        }
        Err(e) => Err(e),
    }
}
