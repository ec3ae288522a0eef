//! Trust between clusters. A root cluster issues a `trusted_cluster`
//! token; the leaf's administrator creates a `trusted_cluster` resource
//! with it, and the leaf's auth registers with the root's proxy: the root
//! stores a remote cluster (the leaf's host CA, the token's labels) and
//! answers with its CAs and a TLS certificate for the leaf's tunnel. From
//! then on the leaf's nodes accept the root's user certificates, with the
//! roles they carry mapped through the trust's role map. Trust is one way:
//! the root never accepts the leaf's users.
//!
//! Root side: [`AuthServer::add_trusted_cluster_token`],
//! [`AuthServer::register_leaf`], remote clusters. Leaf side:
//! [`AuthServer::upsert_trusted_cluster`], [`AuthServer::remote_checker`].

use crate::{AuthError, AuthServer, now};
use jaunt_ca::IdentityKind;
use jaunt_rbac::{AccessChecker, Traits, role_map};
use jaunt_store::StoreError;
use jaunt_types::api::NODE_CERT_TTL_SECS;
use jaunt_types::resources::{Labels, Role, TokenInfo, TokenKind, validate_name};
use jaunt_types::trust::{
    PATH_TRUST_REGISTER, RemoteClusterInfo, RemoteIdentity, RoleMapping, TrustHeartbeatRequest,
    TrustHeartbeatResponse, TrustRegisterRequest, TrustRegisterResponse, TrustedCluster,
    TrustedClusterInfo, TrustedUserCa,
};
use jaunt_types::{Secret, Ttl};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

pub const REMOTE_CLUSTERS: &str = "/remote_clusters/";
pub const TRUSTED_CLUSTERS: &str = "/trusted_clusters/";

fn remote_key(name: &str) -> String {
    format!("{REMOTE_CLUSTERS}{name}")
}

pub(crate) fn trusted_key(name: &str) -> String {
    format!("{TRUSTED_CLUSTERS}{name}")
}

/// How long a trusted-cluster token lives unless told.
pub const DEFAULT_TRUST_TOKEN_TTL: Ttl = Ttl::from_secs(30 * 60);

/// A leaf, as its root stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteClusterRecord {
    pub name: String,
    /// The leaf's SSH host CA keys: what its nodes' certificates chain to.
    pub host_ca_keys: Vec<String>,
    /// From the token it joined with.
    pub labels: Labels,
    pub created: i64,
    pub last_heartbeat: i64,
}

/// A root, as a leaf that trusts it stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustedClusterRecord {
    /// The root's own cluster name.
    pub name: String,
    pub enabled: bool,
    pub proxy_addr: String,
    pub ca_pin: String,
    pub role_map: Vec<RoleMapping>,
    pub user_ca_keys: Vec<String>,
    pub host_ca_keys: Vec<String>,
    pub tls_ca_pem: String,
    /// The leaf's tunnel certificate from the root, and its key.
    pub tls_cert_pem: String,
    pub tls_key_pem: Secret<String>,
    pub created: i64,
}

/// The trust links standing at this instance: a leaf's tunnel to this
/// root proxy (by leaf), and this leaf's tunnels to its roots (by root).
#[derive(Default)]
pub struct Links {
    leaves: Mutex<HashMap<String, usize>>,
    roots: Mutex<HashMap<String, usize>>,
    /// The trusted user CAs as heartbeats last read them: every node
    /// heartbeat carries them, and they change only with a trust.
    user_cas: Mutex<Option<(std::time::Instant, Vec<TrustedUserCa>)>>,
}

/// How long heartbeats reuse the trusted user CAs they read. Auth itself
/// checks the trust on every login, so a trust removed holds at once; a
/// node drops the CA at its first heartbeat after this.
const USER_CAS_FOR: std::time::Duration = std::time::Duration::from_secs(2);

fn count(map: &Mutex<HashMap<String, usize>>, name: &str, up: bool) {
    if let Ok(mut m) = map.lock() {
        let n = m.entry(name.to_string()).or_default();
        match up {
            true => *n += 1,
            false => *n = n.saturating_sub(1),
        }
        if *n == 0 {
            m.remove(name);
        }
    }
}

fn linked(map: &Mutex<HashMap<String, usize>>, name: &str) -> bool {
    map.lock().is_ok_and(|m| m.contains_key(name))
}

fn status(online: bool) -> String {
    match online {
        true => "online".into(),
        false => "offline".into(),
    }
}

fn store_err(e: StoreError, exists: impl FnOnce() -> AuthError) -> AuthError {
    match e {
        StoreError::AlreadyExists(_) => exists(),
        other => other.into(),
    }
}

// ---- The root's side --------------------------------------------------

impl AuthServer {
    /// A token a leaf cluster joins with (one use unless told).
    pub async fn add_trusted_cluster_token(
        &self,
        ttl: Option<Ttl>,
        uses: Option<u32>,
        labels: Option<Labels>,
    ) -> Result<(TokenInfo, String), AuthError> {
        let ttl = ttl.unwrap_or(DEFAULT_TRUST_TOKEN_TTL);
        let uses = uses.or(Some(1));
        let record = self
            .add_join_token(TokenKind::TrustedCluster, ttl, uses, labels)
            .await?;
        self.emit(
            self.event("trusted_cluster_token.create", true)
                .with("expires", record.expires)
                .with("uses", uses),
        )
        .await?;
        let command = format!(
            "at the leaf: 'jctl create -f trusted_cluster.yaml' with spec: {{token: {}, proxy_addr: {}, ca_pin: {}, role_map: [...]}}",
            record.token.expose(),
            self.config.public_addr,
            self.authorities().tls.pin()?
        );
        Ok((record.info(), command))
    }

    /// A leaf asks to trust this cluster: the token is spent, the leaf
    /// stored, and this cluster's CAs and the leaf's tunnel certificate
    /// returned.
    pub async fn register_leaf(
        &self,
        req: TrustRegisterRequest,
        addr: &str,
    ) -> Result<TrustRegisterResponse, AuthError> {
        let name = req.cluster_name.clone();
        validate_name(&name).map_err(|e| AuthError::BadRequest(format!("cluster name: {e}")))?;
        check_ca_keys(&req.host_ca_keys, "host")?;
        let refuse = |why: String| {
            tracing::warn!(leaf = %name, %addr, %why, "trusted cluster refused");
            AuthError::AccessDenied(why)
        };
        if name == self.identity.cluster_name {
            return Err(refuse(format!(
                "a leaf cluster cannot have this cluster's own name {name:?}"
            )));
        }
        if self.remote_cluster(&name).await?.is_some() {
            return Err(refuse(format!(
                "a remote cluster named {name:?} exists already; remove it first ('jctl rm remote_cluster/{name}')"
            )));
        }
        let token = self
            .consume_token(req.token.expose(), TokenKind::TrustedCluster)
            .await?;
        let record = RemoteClusterRecord {
            name: name.clone(),
            host_ca_keys: req.host_ca_keys,
            labels: token.labels.unwrap_or_default(),
            created: now(),
            last_heartbeat: now(),
        };
        self.store
            .create(&remote_key(&name), &record, None)
            .await
            .map_err(|e| {
                store_err(e, || {
                    refuse(format!("a remote cluster named {name:?} exists already"))
                })
            })?;
        let tls_cert_pem = self.sign_leaf_tls(&name, &req.tls_csr_pem)?;
        self.emit(
            self.event("trusted_cluster.create", true)
                .with("remote_cluster", name.as_str())
                .with("addr", addr),
        )
        .await?;
        tracing::info!(leaf = %name, %addr, "a leaf cluster trusts this cluster now");
        Ok(TrustRegisterResponse {
            cluster_name: self.identity.cluster_name.clone(),
            user_ca_keys: self.user_ca_keys()?,
            host_ca_keys: self.authorities().host.public_keys()?,
            tls_ca_pem: self.authorities().tls.bundle(),
            tls_cert_pem,
        })
    }

    fn sign_leaf_tls(&self, leaf: &str, csr: &str) -> Result<String, AuthError> {
        jaunt_metrics::Metrics::inc(
            &jaunt_metrics::metrics().auth_certificates,
            &[("kind", "leaf_tls")],
        );
        self.authorities()
            .tls
            .client_signer()
            .sign_client_csr(
                csr,
                IdentityKind::RemoteCluster,
                leaf,
                &self.identity.cluster_name,
                now() as u64,
                NODE_CERT_TTL_SECS,
            )
            .map_err(|e| AuthError::BadRequest(e.to_string()))
    }

    pub async fn remote_cluster(
        &self,
        name: &str,
    ) -> Result<Option<RemoteClusterRecord>, AuthError> {
        Ok(self
            .store
            .get::<RemoteClusterRecord>(&remote_key(name))
            .await?
            .map(|v| v.value))
    }

    pub async fn remote_clusters(&self) -> Result<Vec<RemoteClusterRecord>, AuthError> {
        self.records(REMOTE_CLUSTERS, |r: &RemoteClusterRecord| r.name.clone())
            .await
    }

    /// Every record under `prefix`, sorted by `name`.
    async fn records<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        name: impl Fn(&T) -> String,
    ) -> Result<Vec<T>, AuthError> {
        let mut all: Vec<T> = self
            .store
            .list::<T>(prefix)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect();
        all.sort_by_key(|r| name(r));
        Ok(all)
    }

    pub async fn list_remote_clusters(&self) -> Result<Vec<RemoteClusterInfo>, AuthError> {
        Ok(self
            .remote_clusters()
            .await?
            .into_iter()
            .map(|r| RemoteClusterInfo {
                status: status(self.leaf_online(&r.name)),
                name: r.name,
                last_heartbeat: r.last_heartbeat,
                labels: r.labels,
            })
            .collect())
    }

    /// Cuts a leaf off: its tunnel is closed by the proxy and its dials
    /// and heartbeats are refused from now on.
    pub async fn remove_remote_cluster(&self, name: &str) -> Result<String, AuthError> {
        self.end_trust(&remote_key(name), "remote_cluster", name)
            .await?;
        Ok(format!("remote cluster {name:?} has been removed"))
    }

    /// Deletes one side's record of a trust and audits it (`what` names
    /// the side: remote_cluster at a root, trusted_cluster at a leaf).
    async fn end_trust(&self, key: &str, what: &str, name: &str) -> Result<(), AuthError> {
        match self.store.delete(key).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                let kind = what.replace('_', " ");
                return Err(AuthError::NotFound(format!("{kind} {name:?} not found")));
            }
            Err(e) => return Err(e.into()),
        }
        self.emit(self.event("trusted_cluster.delete", true).with(what, name))
            .await
    }

    /// A leaf's heartbeat: proves it still holds its certificate, renews
    /// it when asked.
    /// A leaf's heartbeat: its tunnel certificate renewed when it sends a
    /// CSR, its host CA keys taken when it sends them (they change with
    /// its CA rotations); answered with this cluster's trusted CA keys
    /// (which change with ours).
    pub async fn leaf_heartbeat(
        &self,
        leaf: &str,
        req: &TrustHeartbeatRequest,
        tls_issuer: Option<&str>,
    ) -> Result<TrustHeartbeatResponse, AuthError> {
        if !req.host_ca_keys.is_empty() {
            check_ca_keys(&req.host_ca_keys, "host")?;
        }
        let key = remote_key(leaf);
        let Some(v) = self.store.get::<RemoteClusterRecord>(&key).await? else {
            return Err(AuthError::AccessDenied(format!(
                "remote cluster {leaf:?} has been removed from this cluster"
            )));
        };
        jaunt_metrics::Metrics::inc(
            &jaunt_metrics::metrics().auth_heartbeats,
            &[("sender", "leaf")],
        );
        let mut record = v.value;
        record.last_heartbeat = now();
        if !req.host_ca_keys.is_empty() && req.host_ca_keys != record.host_ca_keys {
            tracing::info!(%leaf, "the leaf's host CA keys changed");
            record.host_ca_keys = req.host_ca_keys.clone();
        }
        // A lost race with another write only loses this heartbeat (the
        // next one brings the same).
        match self.store.update_if(&key, v.revision, &record, None).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let cas = self.authorities();
        let tls_cert_pem = req
            .tls_csr_pem
            .as_deref()
            .map(|csr| self.sign_leaf_tls(leaf, csr))
            .transpose()?;
        let tls_renew = tls_cert_pem.is_none()
            && match tls_issuer {
                Some(issuer) => issuer != cas.tls.client_signer().subject()?,
                None => false,
            };
        Ok(TrustHeartbeatResponse {
            tls_cert_pem,
            user_ca_keys: self.user_ca_keys()?,
            host_ca_keys: cas.host.public_keys()?,
            tls_ca_pem: Some(cas.tls.bundle()),
            tls_renew,
        })
    }

    /// Who `user` is, as this (root) cluster vouches to a leaf: its name,
    /// and the user's roles and logins trait now.
    pub async fn remote_identity(&self, user: &str) -> Result<RemoteIdentity, AuthError> {
        let record = self
            .user_record(user)
            .await?
            .ok_or_else(|| AuthError::AccessDenied(format!("user {user:?} no longer exists")))?;
        let checker = self.access_checker(&record).await?;
        Ok(RemoteIdentity {
            cluster: self.identity.cluster_name.clone(),
            roles: checker.role_names(),
            logins: record.logins,
        })
    }

    /// The proxy says a leaf's tunnel came up (or went down) here.
    pub fn leaf_link(&self, leaf: &str, up: bool) {
        count(&self.links.leaves, leaf, up);
    }

    pub fn leaf_online(&self, leaf: &str) -> bool {
        linked(&self.links.leaves, leaf)
    }
}

// ---- The leaf's side ---------------------------------------------------

impl AuthServer {
    /// Creates the trust (registering with the root) or, for a root
    /// trusted already, changes `enabled` and the role map.
    pub async fn upsert_trusted_cluster(&self, tc: TrustedCluster) -> Result<String, AuthError> {
        tc.validate().map_err(AuthError::BadRequest)?;
        self.check_role_map(&tc.spec.role_map).await?;
        if let Some(v) = self
            .store
            .get::<TrustedClusterRecord>(&trusted_key(&tc.metadata.name))
            .await?
        {
            let mut record = v.value;
            record.enabled = tc.spec.enabled;
            record.role_map = tc.spec.role_map;
            self.store
                .update_if(&trusted_key(&record.name), v.revision, &record, None)
                .await?;
            self.forget_user_cas();
            return Ok(format!(
                "trusted cluster {:?} has been updated (enabled: {})",
                record.name, record.enabled
            ));
        }
        if tc.spec.token.expose().is_empty() {
            return Err(AuthError::BadRequest(
                "spec.token: the root's trusted_cluster token is needed to establish trust".into(),
            ));
        }
        let record = self.register_with_root(&tc).await?;
        let name = record.name.clone();
        self.store
            .create(&trusted_key(&name), &record, None)
            .await
            .map_err(|e| {
                store_err(e, || {
                    AuthError::AlreadyExists(format!("cluster {name:?} is trusted already"))
                })
            })?;
        self.forget_user_cas();
        self.emit(
            self.event("trusted_cluster.create", true)
                .with("trusted_cluster", name.as_str())
                .with("proxy_addr", record.proxy_addr.as_str()),
        )
        .await?;
        Ok(format!(
            "trusted cluster {name:?} has been created: its users reach this cluster's nodes through its proxy {}",
            record.proxy_addr
        ))
    }

    /// Every pattern compiles and every role the map names exists here.
    async fn check_role_map(&self, map: &[RoleMapping]) -> Result<(), AuthError> {
        role_map::validate(map)
            .map_err(|e| AuthError::BadRequest(format!("spec.role_map: {e}")))?;
        let mut missing = Vec::new();
        for local in role_map::literal_local_roles(map) {
            if self
                .store
                .get::<Role>(&crate::records::role_key(&local))
                .await?
                .is_none()
            {
                missing.push(local);
            }
        }
        if !missing.is_empty() {
            return Err(AuthError::BadRequest(format!(
                "spec.role_map: no such role in this cluster: {} (create it first)",
                missing.join(", ")
            )));
        }
        Ok(())
    }

    /// Calls the root's proxy with the token (trusting it by the pin only).
    async fn register_with_root(
        &self,
        tc: &TrustedCluster,
    ) -> Result<TrustedClusterRecord, AuthError> {
        let root = &tc.spec.proxy_addr;
        let trust = jaunt_transport::Trust {
            ca_pin: Some(tc.spec.ca_pin.clone()),
            cluster_ca_pem: None,
            insecure: false,
        };
        let unreachable =
            |e: String| AuthError::BadRequest(format!("cannot establish trust with {root}: {e}"));
        let client = jaunt_transport::ApiClient::new(root, &trust, None)
            .map_err(|e| unreachable(e.to_string()))?;
        let (csr, key) =
            jaunt_ca::generate_client_csr(&self.identity.cluster_name).map_err(AuthError::Ca)?;
        let req = TrustRegisterRequest {
            token: tc.spec.token.clone(),
            cluster_name: self.identity.cluster_name.clone(),
            host_ca_keys: self.authorities().host.public_keys()?,
            tls_csr_pem: csr,
        };
        let answer: TrustRegisterResponse = client
            .post_once(PATH_TRUST_REGISTER, &req)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if answer.cluster_name == self.identity.cluster_name {
            return Err(AuthError::BadRequest(format!(
                "the cluster at {root} has this cluster's own name {:?}",
                answer.cluster_name
            )));
        }
        for key in &answer.user_ca_keys {
            jaunt_ca::parse_public_key(key)
                .map_err(|e| unreachable(format!("its user CA: {e}")))?;
        }
        Ok(TrustedClusterRecord {
            name: answer.cluster_name,
            enabled: tc.spec.enabled,
            proxy_addr: root.clone(),
            ca_pin: tc.spec.ca_pin.clone(),
            role_map: tc.spec.role_map.clone(),
            user_ca_keys: answer.user_ca_keys,
            host_ca_keys: answer.host_ca_keys,
            tls_ca_pem: answer.tls_ca_pem,
            tls_cert_pem: answer.tls_cert_pem,
            tls_key_pem: key,
            created: now(),
        })
    }

    pub async fn trusted_clusters(&self) -> Result<Vec<TrustedClusterRecord>, AuthError> {
        self.records(TRUSTED_CLUSTERS, |r: &TrustedClusterRecord| r.name.clone())
            .await
    }

    pub async fn list_trusted_clusters(&self) -> Result<Vec<TrustedClusterInfo>, AuthError> {
        Ok(self
            .trusted_clusters()
            .await?
            .into_iter()
            .map(|r| TrustedClusterInfo {
                status: status(self.root_online(&r.name)),
                name: r.name,
                enabled: r.enabled,
                proxy_addr: r.proxy_addr,
                role_map: r.role_map,
            })
            .collect())
    }

    /// Ends the trust: from now on the root's certificates are refused
    /// here (auth refuses at once; nodes drop the CA at their next
    /// heartbeat), and the tunnel closes.
    pub async fn remove_trusted_cluster(&self, name: &str) -> Result<String, AuthError> {
        let ended = self
            .end_trust(&trusted_key(name), "trusted_cluster", name)
            .await;
        self.forget_user_cas();
        ended?;
        Ok(format!(
            "trusted cluster {name:?} has been removed: its users' certificates are refused here from now on"
        ))
    }

    /// Stores a renewed tunnel certificate from the root.
    pub async fn renew_trust_cert(
        &self,
        root: &str,
        cert_pem: String,
        key_pem: Secret<String>,
    ) -> Result<(), AuthError> {
        let key = trusted_key(root);
        let Some(v) = self.store.get::<TrustedClusterRecord>(&key).await? else {
            return Ok(());
        };
        let mut record = v.value;
        record.tls_cert_pem = cert_pem;
        record.tls_key_pem = key_pem;
        self.store
            .update_if(&key, v.revision, &record, None)
            .await?;
        Ok(())
    }

    /// A root's CA keys as its heartbeat answer gave them (they change with
    /// its CA rotations): this cluster's nodes then trust its users'
    /// certificates from the new user CA key.
    /// Returns whether the root's TLS CAs changed (the link to it is then
    /// made again, trusting them).
    pub async fn update_root_cas(
        &self,
        root: &str,
        user_ca_keys: Vec<String>,
        host_ca_keys: Vec<String>,
        tls_ca_pem: Option<String>,
    ) -> Result<bool, AuthError> {
        check_ca_keys(&user_ca_keys, "user")?;
        check_ca_keys(&host_ca_keys, "host")?;
        if let Some(pem) = &tls_ca_pem {
            check_tls_bundle(pem)?;
        }
        let key = trusted_key(root);
        let Some(v) = self.store.get::<TrustedClusterRecord>(&key).await? else {
            return Ok(false);
        };
        let mut record = v.value;
        let tls_ca_pem = tls_ca_pem.unwrap_or_else(|| record.tls_ca_pem.clone());
        let tls_changed = tls_ca_pem != record.tls_ca_pem;
        if record.user_ca_keys == user_ca_keys
            && record.host_ca_keys == host_ca_keys
            && !tls_changed
        {
            return Ok(false);
        }
        record.user_ca_keys = user_ca_keys;
        record.host_ca_keys = host_ca_keys;
        record.tls_ca_pem = tls_ca_pem;
        self.store
            .update_if(&key, v.revision, &record, None)
            .await?;
        if let Ok(mut cached) = self.links.user_cas.lock() {
            *cached = None;
        }
        tracing::info!(%root, "the root cluster's CA keys changed");
        Ok(tls_changed)
    }

    /// The enabled trusted clusters' user CAs, for this cluster's nodes.
    pub async fn trusted_user_cas(&self) -> Result<Vec<TrustedUserCa>, AuthError> {
        if let Ok(cached) = self.links.user_cas.lock()
            && let Some((at, cas)) = cached.as_ref()
            && at.elapsed() < USER_CAS_FOR
        {
            return Ok(cas.clone());
        }
        let cas: Vec<TrustedUserCa> = self
            .trusted_clusters()
            .await?
            .into_iter()
            .filter(|r| r.enabled)
            .map(|r| TrustedUserCa {
                cluster: r.name,
                keys: r.user_ca_keys,
            })
            .collect();
        if let Ok(mut cached) = self.links.user_cas.lock() {
            *cached = Some((std::time::Instant::now(), cas.clone()));
        }
        Ok(cas)
    }

    /// A trust changed here: the next heartbeat reads them again.
    fn forget_user_cas(&self) {
        if let Ok(mut cached) = self.links.user_cas.lock() {
            *cached = None;
        }
    }

    /// The access a root cluster's user holds here: the trust must stand
    /// and be enabled, and the user's roles there must map to roles here.
    /// `Err` is the refusal, in words for the user.
    pub async fn remote_checker(
        &self,
        user: &str,
        remote: &RemoteIdentity,
    ) -> Result<AccessChecker, AuthError> {
        let trust = self
            .store
            .get::<TrustedClusterRecord>(&trusted_key(&remote.cluster))
            .await?
            .map(|v| v.value)
            .filter(|r| r.enabled)
            .ok_or_else(|| {
                AuthError::AccessDenied(format!(
                    "this cluster does not trust cluster {:?} (any more)",
                    remote.cluster
                ))
            })?;
        let mapped = role_map::map_roles(&trust.role_map, &remote.roles);
        if mapped.is_empty() {
            return Err(AuthError::AccessDenied(format!(
                "user {user:?}'s roles at {} ({}) map to no role of this cluster",
                remote.cluster,
                remote.roles.join(", ")
            )));
        }
        let mut roles = Vec::new();
        for name in &mapped {
            match self
                .store
                .get::<Role>(&crate::records::role_key(name))
                .await?
            {
                Some(v) => roles.push(v.value),
                None => {
                    tracing::warn!(%user, role = %name, root = %remote.cluster, "the role map names a role that does not exist")
                }
            }
        }
        Ok(AccessChecker::new(
            user,
            roles,
            Traits {
                logins: remote.logins.clone(),
            },
        ))
    }

    /// The leaf's proxy says its tunnel to root `root` came up or went
    /// down.
    pub fn root_link(&self, root: &str, up: bool) {
        count(&self.links.roots, root, up);
    }

    pub fn root_online(&self, root: &str) -> bool {
        linked(&self.links.roots, root)
    }
}

/// CA keys another cluster sent: 1 to 8 OpenSSH public keys.
fn check_ca_keys(keys: &[String], kind: &str) -> Result<(), AuthError> {
    if keys.is_empty() || keys.len() > 8 {
        return Err(AuthError::BadRequest(format!(
            "a cluster sends its {kind} CA keys (1 to 8)"
        )));
    }
    for key in keys {
        jaunt_ca::parse_public_key(key)
            .map_err(|e| AuthError::BadRequest(format!("{kind} CA key: {e}")))?;
    }
    Ok(())
}

/// A TLS CA bundle another cluster sent: 1 to 8 certificates.
fn check_tls_bundle(pem: &str) -> Result<(), AuthError> {
    let count = pem.matches("-----BEGIN CERTIFICATE-----").count();
    if count == 0 || count > 8 {
        return Err(AuthError::BadRequest(
            "a cluster sends its TLS CA certificates (1 to 8)".into(),
        ));
    }
    Ok(())
}
