//! Nodes: joining with a token, heartbeats into the inventory, host and TLS
//! certificate renewal, which nodes a user may see, and whether a user may
//! log in as a login on a node (asked by the node at each login).

use crate::heartbeats;
use crate::records::{NODES, NodeRecord, TokenRecord, node_key, token_key};
use crate::{AuthError, AuthServer, now};
use jaunt_ca::{HostCertRequest, IdentityKind, UserCertRequest, parse_public_key};
use jaunt_store::StoreError;
use jaunt_types::api::*;
use jaunt_types::resources::{Labels, TokenKind, validate_name};

use jaunt_types::api::NODE_CERT_TTL_SECS as NODE_CERT_TTL;
/// The longest a proxy's certificate for an agentless login lives; the
/// proxy asks for one per connection, so it needs only minutes.
const OPENSSH_LOGIN_TTL: u64 = 3600;

/// What a proxy's certificate for an agentless login permits: what the
/// user's roles and certificate permit, no more.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpensshPermits {
    pub pty: bool,
    pub port_forwarding: bool,
    pub agent_forwarding: bool,
}

/// An agentless host's certificate: nothing renews it by itself (running
/// `jaunt join openssh` again does), so it lasts a year.
const AGENTLESS_HOST_CERT_TTL: u64 = 365 * 86400;

/// A node silent this long is forgotten entirely.
const NODE_FORGET_AFTER: i64 = 7 * 86400;

/// Label keys and values a node may have.
pub(crate) fn validate_labels(labels: &Labels) -> Result<(), AuthError> {
    for (k, v) in labels {
        let ok = |s: &str, max: usize| {
            !s.is_empty()
                && s.len() <= max
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:*".contains(c))
        };
        if !ok(k, 63) || !ok(v, 255) || k == "*" {
            return Err(AuthError::BadRequest(format!(
                "label {k:?}={v:?}: use letters, digits and -_./: (keys up to 63, values up to 255 characters)"
            )));
        }
    }
    Ok(())
}

fn validate_node(name: &str, labels: &Labels, addr: Option<&str>) -> Result<(), AuthError> {
    validate_name(name).map_err(|e| AuthError::BadRequest(format!("node name: {e}")))?;
    validate_labels(labels)?;
    if let Some(addr) = addr {
        jaunt_types::addr::split_host_port(addr, 0)
            .map_err(|e| AuthError::BadRequest(format!("node address {addr:?}: {e}")))?;
    }
    Ok(())
}

impl AuthServer {
    fn host_principals(&self, uuid: &str, name: &str, addr: Option<&str>) -> Vec<String> {
        let cluster = &self.identity.cluster_name;
        let mut p = vec![
            name.to_string(),
            format!("{name}.{cluster}"),
            uuid.to_string(),
            format!("{uuid}.{cluster}"),
        ];
        if let Some(host) = addr
            .and_then(|a| jaunt_types::addr::split_host_port(a, 1).ok())
            .map(|(h, _)| h)
            && !p.contains(&host)
        {
            p.push(host);
        }
        p
    }

    /// A host certificate from the key that signs them now (a CA
    /// rotation's `update_servers` changes it).
    fn host_cert(
        &self,
        public_key: jaunt_ca::ssh_key::PublicKey,
        host_id: String,
        principals: Vec<String>,
        ttl_secs: u64,
    ) -> Result<jaunt_ca::ssh_key::Certificate, AuthError> {
        Ok(self
            .authorities()
            .host
            .signer()
            .sign_host_cert(&HostCertRequest {
                public_key,
                host_id,
                principals,
                now: now() as u64,
                ttl_secs,
            })?)
    }

    fn sign_host(
        &self,
        uuid: &str,
        name: &str,
        addr: Option<&str>,
        host_key: &str,
    ) -> Result<String, AuthError> {
        let public_key =
            parse_public_key(host_key).map_err(|e| AuthError::BadRequest(e.to_string()))?;
        self.host_cert(
            public_key,
            uuid.to_string(),
            self.host_principals(uuid, name, addr),
            NODE_CERT_TTL,
        )?
        .to_openssh()
        .map_err(|e| AuthError::Internal(e.to_string()))
    }

    /// An agentless host's certificate: a node's principals and the
    /// extra names asked for.
    fn sign_agentless_host(
        &self,
        node: &NodeRecord,
        host_key: &str,
        extra: &[String],
    ) -> Result<String, AuthError> {
        for p in extra {
            if p.is_empty() || p.len() > 253 || p.contains(|c: char| c.is_whitespace() || c == ',')
            {
                return Err(AuthError::BadRequest(format!(
                    "additional principal {p:?}: a host name or address, no spaces or commas"
                )));
            }
        }
        let public_key =
            parse_public_key(host_key).map_err(|e| AuthError::BadRequest(e.to_string()))?;
        let mut principals = self.host_principals(&node.uuid, &node.name, node.addr.as_deref());
        principals.extend(
            extra
                .iter()
                .filter(|p| !principals.contains(p))
                .cloned()
                .collect::<Vec<_>>(),
        );
        self.host_cert(
            public_key,
            node.uuid.clone(),
            principals,
            AGENTLESS_HOST_CERT_TTL,
        )?
        .to_openssh()
        .map_err(|e| AuthError::Internal(e.to_string()))
    }

    fn sign_node_tls(&self, uuid: &str, csr: &str) -> Result<String, AuthError> {
        self.authorities()
            .tls
            .client_signer()
            .sign_client_csr(
                csr,
                IdentityKind::Node,
                uuid,
                &self.identity.cluster_name,
                now() as u64,
                NODE_CERT_TTL,
            )
            .map_err(|e| AuthError::BadRequest(e.to_string()))
    }

    pub fn user_ca_keys(&self) -> Result<Vec<String>, AuthError> {
        self.authorities().user.public_keys()
    }

    /// Spends one use of a token of `kind`, atomically; returns it as it
    /// was.
    pub(crate) async fn consume_token(
        &self,
        token: &str,
        kind: TokenKind,
    ) -> Result<TokenRecord, AuthError> {
        loop {
            let (record, revision) = self.find_token(token, kind).await?;
            let result = match record.uses_left {
                None => return Ok(record),
                Some(1) => self.store.delete(&token_key(token)).await,
                Some(n) => {
                    let next = TokenRecord {
                        uses_left: Some(n - 1),
                        ..record.clone()
                    };
                    self.store
                        .update_if(&token_key(token), revision, &next, Some(record.expires))
                        .await
                        .map(|_| ())
                }
            };
            match result {
                Ok(()) => return Ok(record),
                Err(StoreError::Conflict(_)) | Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub async fn join_node(&self, req: NodeJoinRequest) -> Result<NodeJoinResponse, AuthError> {
        validate_node(&req.name, &req.labels, req.addr.as_deref())?;
        parse_public_key(&req.host_public_key).map_err(|e| AuthError::BadRequest(e.to_string()))?;
        if req.sub_kind.is_some() && req.addr.is_none() {
            return Err(AuthError::BadRequest(
                "an OpenSSH node needs the address the proxy dials (--address)".into(),
            ));
        }
        let token = self
            .consume_token(req.token.expose(), TokenKind::Node)
            .await?;
        let agentless = req.sub_kind.is_some();
        // An agentless host joined again (`jaunt join openssh` re-run, the
        // same name and host key) keeps its record: only its certificate
        // is renewed.
        let again = match agentless {
            true => self.openssh_node(&req.name, &req.host_public_key).await?,
            false => None,
        };
        let record = match again {
            Some(existing) => existing,
            None => {
                let record = NodeRecord {
                    uuid: uuid::Uuid::new_v4().to_string(),
                    name: req.name.clone(),
                    labels_pinned: token.labels.is_some(),
                    labels: token.labels.unwrap_or(req.labels),
                    addr: req.addr,
                    host_public_key: req.host_public_key.clone(),
                    last_seen: now(),
                    heartbeat_secs: 0,
                    sub_kind: req.sub_kind,
                };
                self.register(&record).await?;
                record
            }
        };
        let uuid = record.uuid.clone();
        let host_cert = match agentless {
            true => {
                self.sign_agentless_host(&record, &req.host_public_key, &req.additional_principals)?
            }
            false => self.sign_host(
                &uuid,
                &record.name,
                record.addr.as_deref(),
                &req.host_public_key,
            )?,
        };
        // An agentless node never calls the API: it gets no TLS identity.
        let tls_cert_pem = match agentless {
            true => String::new(),
            false => self.sign_node_tls(&uuid, &req.tls_csr_pem)?,
        };
        let m = jaunt_metrics::metrics();
        jaunt_metrics::Metrics::inc(&m.auth_certificates, &[("kind", "host_ssh")]);
        if !agentless {
            jaunt_metrics::Metrics::inc(&m.auth_certificates, &[("kind", "node_tls")]);
        }
        Ok(NodeJoinResponse {
            uuid,
            cluster_name: self.identity.cluster_name.clone(),
            host_cert,
            tls_cert_pem,
            tls_ca_pem: self.authorities().tls.bundle(),
            user_ca_keys: match agentless {
                true => Vec::new(),
                false => self.user_ca_keys()?,
            },
            openssh_ca_keys: match agentless {
                true => self.authorities().openssh.public_keys()?,
                false => Vec::new(),
            },
        })
    }

    /// Stores a new node and audits its joining. An agentless node has no
    /// heartbeat to keep it listed: it stays until removed.
    async fn register(&self, record: &NodeRecord) -> Result<(), AuthError> {
        let expires = match record.sub_kind {
            Some(_) => None,
            None => Some(now() + NODE_FORGET_AFTER),
        };
        self.store
            .create(&node_key(&record.uuid), record, expires)
            .await?;
        tracing::info!(node = %record.name, uuid = %record.uuid, sub_kind = ?record.sub_kind, "node joined");
        let mut e = self.event("node.join", true);
        e.node = Some(record.name.clone());
        e.node_uuid = Some(record.uuid.clone());
        if let Some(kind) = record.sub_kind {
            e = e.with("server_sub_kind", kind.as_str());
        }
        self.emit(e).await
    }

    /// The agentless node named `name` with this host key, if it joined.
    async fn openssh_node(
        &self,
        name: &str,
        host_public_key: &str,
    ) -> Result<Option<NodeRecord>, AuthError> {
        Ok(self.all_nodes().await?.into_iter().find(|n| {
            n.sub_kind.is_some() && n.name == name && n.host_public_key == host_public_key
        }))
    }

    /// `jctl nodes add --openssh`: an agentless host registered by an
    /// administrator, whose sshd is set up by other means (`jctl auth
    /// export --type=openssh-user-ca`, `jctl auth sign --host`).
    pub async fn add_openssh_node(
        &self,
        name: &str,
        addr: &str,
        labels: Labels,
    ) -> Result<NodeInfo, AuthError> {
        let addr = jaunt_types::addr::with_default_port(addr, 22)
            .map_err(|e| AuthError::BadRequest(format!("node address {addr:?}: {e}")))?;
        validate_node(name, &labels, Some(&addr))?;
        if self
            .all_nodes()
            .await?
            .iter()
            .any(|n| n.name == name && n.sub_kind.is_some())
        {
            return Err(AuthError::AlreadyExists(format!(
                "an OpenSSH node named {name:?} is in the inventory already"
            )));
        }
        let record = NodeRecord {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: name.to_string(),
            labels,
            labels_pinned: true,
            addr: Some(addr),
            host_public_key: String::new(),
            last_seen: now(),
            heartbeat_secs: 0,
            sub_kind: Some(NodeSubKind::Openssh),
        };
        self.register(&record).await?;
        Ok(record.info())
    }

    /// `jctl auth sign --host`: a host certificate for an agentless host's
    /// key, for `principals` (its names and addresses; the UUID of the
    /// inventory's node of that name is added when there is one).
    pub async fn sign_openssh_host(
        &self,
        principals: &[String],
        host_key: &str,
        ttl_secs: u64,
    ) -> Result<String, AuthError> {
        let public_key =
            parse_public_key(host_key).map_err(|e| AuthError::BadRequest(e.to_string()))?;
        let Some(name) = principals.first() else {
            return Err(AuthError::BadRequest("name at least one host".into()));
        };
        let mut all = principals.to_vec();
        if let Some(node) = self
            .all_nodes()
            .await?
            .into_iter()
            .find(|n| n.name == *name)
        {
            all.push(node.uuid.clone());
            all.push(format!("{}.{}", node.name, self.identity.cluster_name));
        }
        all.dedup();
        self.host_cert(public_key, name.clone(), all, ttl_secs)?
            .to_openssh()
            .map_err(|e| AuthError::Internal(e.to_string()))
    }

    /// The proxy's certificate for one login on agentless node `node`:
    /// signed by the OpenSSH CA, for exactly `login`, ending no later than
    /// the user's own certificate. Only the proxy calls this (in process;
    /// no API route reaches it).
    pub fn sign_openssh_login(
        &self,
        node: &NodeRecord,
        user: &str,
        login: &str,
        public_key: jaunt_ca::ssh_key::PublicKey,
        valid_before: u64,
        permits: OpensshPermits,
    ) -> Result<jaunt_ca::ssh_key::Certificate, AuthError> {
        let now = now().max(0) as u64;
        if node.sub_kind.is_none() || valid_before <= now {
            return Err(AuthError::AccessDenied(
                "no certificate for this node and login".into(),
            ));
        }
        let ttl_secs = valid_before.saturating_sub(now).min(OPENSSH_LOGIN_TTL);
        jaunt_metrics::Metrics::inc(
            &jaunt_metrics::metrics().auth_certificates,
            &[("kind", "openssh_login")],
        );
        Ok(self
            .authorities()
            .openssh
            .signer()
            .sign_user_cert(&UserCertRequest {
                public_key,
                user: format!("{user} via proxy for {}", node.name),
                principals: vec![login.to_string()],
                now,
                ttl_secs,
                permit_pty: permits.pty,
                permit_port_forwarding: permits.port_forwarding,
                permit_agent_forwarding: permits.agent_forwarding,
                source_address: None,
                roles: Vec::new(),
                logins_trait: Vec::new(),
            })?)
    }

    /// A host certificate for the proxy's own key, naming agentless node
    /// `node`: what the proxy presents to a client when it terminates its
    /// SSH connection for that node.
    pub fn sign_forwarding_host(
        &self,
        node: &NodeRecord,
        public_key: jaunt_ca::ssh_key::PublicKey,
    ) -> Result<jaunt_ca::ssh_key::Certificate, AuthError> {
        self.host_cert(
            public_key,
            node.uuid.clone(),
            self.host_principals(&node.uuid, &node.name, node.addr.as_deref()),
            NODE_CERT_TTL,
        )
    }

    /// The host CA keys a node's host certificate must come from.
    pub fn host_ca_keys(&self) -> Vec<jaunt_ca::ssh_key::public::KeyData> {
        self.authorities().host.key_data()
    }

    /// The user CA keys a user's certificate must come from.
    pub fn user_ca_key_data(&self) -> Vec<jaunt_ca::ssh_key::public::KeyData> {
        self.authorities().user.key_data()
    }

    /// Node `uuid` as last heard from (by this instance or, through the
    /// store, another).
    pub async fn node(&self, uuid: &str) -> Result<Option<NodeRecord>, AuthError> {
        let mut node = self.stored_node(uuid).await?;
        self.leases.refresh(node.as_mut());
        Ok(node)
    }

    async fn stored_node(&self, uuid: &str) -> Result<Option<NodeRecord>, AuthError> {
        Ok(self
            .store
            .get::<NodeRecord>(&node_key(uuid))
            .await?
            .map(|v| v.value))
    }

    /// A node's heartbeat; `tls_issuer` names the CA that issued the TLS
    /// certificate it called with (renewed when another signs now).
    pub async fn heartbeat(
        &self,
        uuid: &str,
        req: HeartbeatRequest,
        tls_issuer: Option<&str>,
    ) -> Result<HeartbeatResponse, AuthError> {
        validate_node(&req.name, &req.labels, req.addr.as_deref())?;
        let Some(existing) = self.stored_node(uuid).await? else {
            self.leases.forget(uuid);
            return Err(AuthError::AccessDenied(
                "this node is not in the inventory; join it again with a new token".into(),
            ));
        };
        let now = now();
        let offline_after = self.config.node_offline_after.as_secs();
        let renew_host = req.host_public_key != existing.host_public_key
            || req.name != existing.name
            || req.addr != existing.addr
            || (req.host_cert_valid_before as i64) - now < (NODE_CERT_TTL / 2) as i64
            || req
                .host_cert_ca
                .as_ref()
                .is_some_and(|ca| *ca != self.authorities().host.signer().fingerprint());
        let host_cert = if renew_host {
            Some(self.sign_host(uuid, &req.name, req.addr.as_deref(), &req.host_public_key)?)
        } else {
            None
        };
        let tls_cert_pem = match &req.tls_csr_pem {
            Some(csr) => Some(self.sign_node_tls(uuid, csr)?),
            None => None,
        };
        let cas = self.authorities();
        let tls_renew = tls_cert_pem.is_none()
            && match tls_issuer {
                Some(issuer) => issuer != cas.tls.client_signer().subject()?,
                None => false,
            };
        let record = NodeRecord {
            uuid: uuid.to_string(),
            name: req.name,
            labels: match existing.labels_pinned {
                true => existing.labels.clone(),
                false => req.labels,
            },
            labels_pinned: existing.labels_pinned,
            sub_kind: existing.sub_kind,
            addr: req.addr,
            host_public_key: req.host_public_key,
            last_seen: now,
            heartbeat_secs: heartbeats::interval(offline_after, self.leases.live()),
        };
        if heartbeats::must_write(&existing, &record, offline_after) {
            self.store
                .put(&node_key(uuid), &record, Some(now + NODE_FORGET_AFTER))
                .await?;
        }
        self.leases.beat(uuid, now);
        let m = jaunt_metrics::metrics();
        jaunt_metrics::Metrics::inc(&m.auth_heartbeats, &[("sender", "node")]);
        if host_cert.is_some() {
            jaunt_metrics::Metrics::inc(&m.auth_certificates, &[("kind", "host_ssh")]);
        }
        if tls_cert_pem.is_some() {
            jaunt_metrics::Metrics::inc(&m.auth_certificates, &[("kind", "node_tls")]);
        }
        Ok(HeartbeatResponse {
            host_cert,
            tls_cert_pem,
            tls_ca_pem: Some(cas.tls.bundle()),
            tls_renew,
            user_ca_keys: self.user_ca_keys()?,
            heartbeat_secs: record.heartbeat_secs,
            recording: self.config.recording,
            client_idle_timeout_secs: self.config.client_idle_timeout.map_or(0, |t| t.as_secs()),
            proxies: self.live_proxies().await,
            client_addr_key: Some(hex::encode(self.client_addr_key(uuid).await?)),
            trusted_user_cas: self.trusted_user_cas().await?,
        })
    }

    /// Every node in the inventory, online or not.
    pub async fn all_nodes(&self) -> Result<Vec<NodeRecord>, AuthError> {
        let mut nodes: Vec<NodeRecord> = self
            .store
            .list::<NodeRecord>(NODES)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect();
        self.leases.refresh(nodes.iter_mut());
        Ok(nodes)
    }

    /// Seconds of silence after which `node` counts as offline.
    pub fn offline_window(&self, node: &NodeRecord) -> i64 {
        heartbeats::offline_window(
            self.config.node_offline_after.as_secs(),
            node.heartbeat_secs,
        )
    }

    /// Every node, as `jctl nodes ls` shows them.
    pub async fn admin_nodes(&self) -> Result<Vec<jaunt_types::admin::AdminNode>, AuthError> {
        let mut nodes: Vec<_> = self
            .all_nodes()
            .await?
            .into_iter()
            .map(|n| jaunt_types::admin::AdminNode {
                online: self.is_online(&n),
                labels_pinned: n.labels_pinned,
                info: n.info(),
            })
            .collect();
        nodes.sort_by(|a, b| (&a.info.name, &a.info.uuid).cmp(&(&b.info.name, &b.info.uuid)));
        Ok(nodes)
    }

    /// Removes a node from the inventory (by UUID, or by a name only one
    /// node has): it is no longer listed or reached, its heartbeats and
    /// logins are refused, and it must join again with a new token.
    /// A node by UUID, or by a name only one node has.
    pub async fn find_node(&self, node: &str) -> Result<NodeRecord, AuthError> {
        let mut matches: Vec<NodeRecord> = self
            .all_nodes()
            .await?
            .into_iter()
            .filter(|n| n.uuid == node || n.name == node)
            .collect();
        match matches.len() {
            0 => Err(AuthError::NotFound(format!("node {node:?} not found"))),
            1 => Ok(matches.remove(0)),
            _ => {
                let uuids: Vec<&str> = matches.iter().map(|n| n.uuid.as_str()).collect();
                Err(AuthError::BadRequest(format!(
                    "several nodes are named {node:?}; name one by UUID: {}",
                    uuids.join(", ")
                )))
            }
        }
    }

    pub async fn remove_node(&self, node: &str) -> Result<String, AuthError> {
        let found = self.find_node(node).await?;
        match self.store.delete(&node_key(&found.uuid)).await {
            Ok(()) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.leases.forget(&found.uuid);
        let mut e = self.event("node.delete", true);
        e.node = Some(found.name.clone());
        e.node_uuid = Some(found.uuid.clone());
        self.emit(e).await?;
        Ok(format!(
            "node {} ({}) has been removed",
            found.name, found.uuid
        ))
    }

    /// An agentless node has no heartbeat: it counts as online (the
    /// proxy finds out whether its sshd answers when it dials).
    /// Nodes whose heartbeat this instance holds a live lease of.
    pub fn nodes_online(&self) -> usize {
        self.leases.live()
    }

    pub fn is_online(&self, node: &NodeRecord) -> bool {
        node.sub_kind.is_some() || now() - node.last_seen <= self.offline_window(node)
    }

    /// The nodes `user` may see; `online_only` drops silent ones.
    pub async fn nodes_for(
        &self,
        user: &str,
        online_only: bool,
    ) -> Result<Vec<NodeRecord>, AuthError> {
        let record = self
            .user_record(user)
            .await?
            .ok_or_else(|| AuthError::AccessDenied(format!("user {user:?} no longer exists")))?;
        let checker = self.access_checker(&record).await?;
        self.visible_nodes(&checker, online_only).await
    }

    /// The nodes a user of a trusted (root) cluster may see here, by the
    /// roles theirs map to.
    pub async fn nodes_for_remote(
        &self,
        user: &str,
        remote: &jaunt_types::trust::RemoteIdentity,
        online_only: bool,
    ) -> Result<Vec<NodeRecord>, AuthError> {
        let checker = self.remote_checker(user, remote).await?;
        self.visible_nodes(&checker, online_only).await
    }

    async fn visible_nodes(
        &self,
        checker: &jaunt_rbac::AccessChecker,
        online_only: bool,
    ) -> Result<Vec<NodeRecord>, AuthError> {
        let mut nodes: Vec<NodeRecord> = self
            .all_nodes()
            .await?
            .into_iter()
            .filter(|n| checker.node_visible(&n.labels) && (!online_only || self.is_online(n)))
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name).then(a.uuid.cmp(&b.uuid)));
        Ok(nodes)
    }

    /// Asked by node `uuid` when `user` logs in as `login`.
    pub async fn authorize_login(
        &self,
        uuid: &str,
        req: &AuthorizeRequest,
    ) -> Result<AuthorizeResponse, AuthError> {
        let deny = |reason: String| AuthorizeResponse {
            allowed: false,
            reason,
            port_forwarding: false,
            forward_agent: false,
            roles: Vec::new(),
            max_sessions: None,
            max_connections: None,
        };
        let Some(node) = self.node(uuid).await? else {
            return Ok(deny("this node is not in the inventory".into()));
        };
        let checker = match &req.remote {
            None => {
                let Some(user) = self.user_record(&req.user).await? else {
                    return Ok(deny(format!("user {:?} no longer exists", req.user)));
                };
                self.access_checker(&user).await?
            }
            // A root cluster's user: the trust must stand, their roles map.
            Some(remote) => match self.remote_checker(&req.user, remote).await {
                Ok(checker) => checker,
                Err(AuthError::AccessDenied(why)) => return Ok(deny(why)),
                Err(e) => return Err(e),
            },
        };
        if let Some(lock) = self.lock_for(
            &req.user,
            checker.role_names(),
            Some(&req.login),
            Some(uuid),
        ) {
            return Ok(deny(lock.refusal()));
        }
        Ok(match checker.check_login(&req.login, &node.labels) {
            Ok(()) => AuthorizeResponse {
                allowed: true,
                reason: String::new(),
                port_forwarding: checker.port_forwarding(),
                forward_agent: checker.forward_agent(),
                roles: checker.role_names(),
                max_sessions: checker.max_sessions(),
                max_connections: checker.max_connections(),
            },
            Err(denied) => deny(denied.to_string()),
        })
    }
}
