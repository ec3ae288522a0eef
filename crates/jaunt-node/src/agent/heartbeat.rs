//! Heartbeats: they keep the node listed and online, carry the recording
//! mode, the user CA keys auth wants and the live proxy instances (for the
//! tunnels), and renew the host and TLS certificates before they expire
//! (the identity is saved again then).

use super::identity::{StoredIdentity, api_for, save_identity};
use super::{NodeConfig, NodeError, SharedConfig, credentials, ssh_config};
use crate::server::{NodeContext, parse_ca_keys};
use jaunt_ca::ssh_key::{Certificate, PrivateKey};
use jaunt_types::api::{
    HeartbeatRequest, HeartbeatResponse, NODE_CERT_TTL_SECS, PATH_NODE_HEARTBEAT, ProxyInstance,
};
use std::sync::Arc;
use std::time::Duration;

fn cert_valid_before(pem: &str) -> u64 {
    Certificate::from_openssh(pem.trim())
        .map(|c| c.valid_before())
        .unwrap_or(0)
}

/// `SHA256:...` of the CA key that signed a certificate.
fn cert_signer(pem: &str) -> Option<String> {
    let cert = Certificate::from_openssh(pem.trim()).ok()?;
    let key = jaunt_ca::ssh_key::PublicKey::from(cert.signature_key().clone());
    Some(jaunt_ca::fingerprint(&key))
}

pub(super) async fn heartbeat_loop(
    cfg: NodeConfig,
    mut id: StoredIdentity,
    ctx: Arc<NodeContext>,
    config: SharedConfig,
    proxies: tokio::sync::watch::Sender<Vec<ProxyInstance>>,
    first_done: tokio::sync::oneshot::Sender<()>,
) {
    let mut every = Duration::from_secs(5);
    let mut first_done = Some(first_done);
    // Auth asked for a TLS certificate from the CA that signs now (a TLS
    // CA rotation): the next heartbeat, at once, brings a CSR.
    let mut renew_tls = false;
    loop {
        let outcome = heartbeat_once(&cfg, &mut id, &ctx, &config, renew_tls).await;
        if let Some(done) = first_done.take() {
            let _ = done.send(());
        }
        match outcome {
            Ok((secs, live, renew)) => {
                every = Duration::from_secs(secs.max(1));
                renew_tls = renew;
                use std::sync::atomic::Ordering;
                ctx.heartbeat_ok
                    .store(jaunt_sys::clock::now(), Ordering::Relaxed);
                ctx.heartbeat_every.store(secs.max(1), Ordering::Relaxed);
                proxies.send_if_modified(|known| {
                    let changed = *known != live;
                    *known = live;
                    changed
                });
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        if !renew_tls {
            tokio::time::sleep(every).await;
        }
    }
}

async fn heartbeat_once(
    cfg: &NodeConfig,
    id: &mut StoredIdentity,
    ctx: &NodeContext,
    config: &SharedConfig,
    renew_tls: bool,
) -> Result<(u64, Vec<ProxyInstance>, bool), NodeError> {
    let host_key = PrivateKey::from_openssh(id.host_key.expose()).map_err(credentials)?;
    let tls_expiry = jaunt_ca::client_identity_pem(&id.tls_cert)
        .map(|i| i.not_after)
        .unwrap_or(0);
    let now = jaunt_sys::clock::now();
    let tls_half_life = (NODE_CERT_TTL_SECS / 2) as i64;
    let new_tls = if renew_tls || tls_expiry - now < tls_half_life {
        Some(jaunt_ca::generate_client_csr(&cfg.nodename).map_err(credentials)?)
    } else {
        None
    };
    let api = ctx.api.read().map_err(|_| NodeError::Poisoned)?.clone();
    let resp: HeartbeatResponse = api
        .post_once(
            PATH_NODE_HEARTBEAT,
            &HeartbeatRequest {
                name: cfg.nodename.clone(),
                labels: cfg.labels.clone(),
                addr: cfg.advertise_addr.clone(),
                host_public_key: host_key.public_key().to_openssh().map_err(credentials)?,
                host_cert_valid_before: cert_valid_before(&id.host_cert),
                host_cert_ca: cert_signer(&id.host_cert),
                tls_csr_pem: new_tls.as_ref().map(|(csr, _)| csr.clone()),
            },
        )
        .await?;
    let mut changed = false;
    if let Some(cert) = resp.host_cert {
        id.host_cert = cert;
        changed = true;
    }
    if let (Some(cert), Some((_, key))) = (resp.tls_cert_pem, new_tls) {
        id.tls_cert = cert;
        id.tls_key = key;
        changed = true;
    }
    if let Ok(mut mode) = ctx.recording.write() {
        *mode = resp.recording;
    }
    if let Some(key) = resp
        .client_addr_key
        .as_deref()
        .and_then(|k| hex::decode(k).ok())
        && let Ok(mut k) = ctx.client_addr_key.write()
    {
        *k = Some(key);
    }
    // Running sessions are re-reported at the heartbeat's pace, so they
    // stay listed exactly as long as the node stays online.
    ctx.sessions_changed.notify_one();
    let trusted: Vec<_> = resp
        .trusted_user_cas
        .iter()
        .flat_map(|t| {
            parse_ca_keys(&t.keys)
                .into_iter()
                .map(|k| (t.cluster.clone(), k))
        })
        .collect();
    if let Ok(mut cas) = ctx.trusted_cas.write() {
        *cas = trusted;
    }
    if resp.user_ca_keys != id.user_ca_keys {
        id.user_ca_keys = resp.user_ca_keys;
        changed = true;
    }
    // The cluster's TLS CAs (two during a TLS CA rotation): the proxy's
    // certificate is checked against them.
    if let Some(cas) = resp.tls_ca_pem
        && cas != id.tls_ca
    {
        id.tls_ca = cas;
        changed = true;
    }
    if changed {
        save_identity(&cfg.data_dir, id)?;
        if let Ok(mut cas) = ctx.user_cas.write() {
            *cas = parse_ca_keys(&id.user_ca_keys);
        }
        let api = api_for(cfg, id)?;
        if let Ok(mut a) = ctx.api.write() {
            *a = api;
        }
        tracing::info!("node certificates renewed");
    }
    // New connections get the renewed host certificate and the cluster's
    // idle timeout (russh closes a connection idle that long).
    let idle = (resp.client_idle_timeout_secs > 0)
        .then(|| Duration::from_secs(resp.client_idle_timeout_secs));
    let idle_changed = config
        .read()
        .map(|c| c.inactivity_timeout != idle)
        .unwrap_or(true);
    if changed || idle_changed {
        let fresh = ssh_config(id, idle)?;
        if let Ok(mut c) = config.write() {
            *c = fresh;
        }
    }
    // Calls to auth go to another instance while the configured one is
    // unreachable (a cluster without a load balancer in front).
    if let Ok(api) = ctx.api.read() {
        api.set_fallbacks(resp.proxies.iter().map(|p| p.addr.clone()).collect());
    }
    Ok((resp.heartbeat_secs, resp.proxies, resp.tls_renew))
}
