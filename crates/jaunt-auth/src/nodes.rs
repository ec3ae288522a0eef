//! Nodes: joining with a token, heartbeats into the inventory, host and TLS
//! certificate renewal, which nodes a user may see, and whether a user may
//! log in as a login on a node (asked by the node at each login).

use crate::heartbeats;
use crate::records::{NODES, NodeRecord, TokenRecord, node_key, token_key};
use crate::{AuthError, AuthServer, now};
use jaunt_ca::{HostCertRequest, IdentityKind, parse_public_key};
use jaunt_store::StoreError;
use jaunt_types::api::*;
use jaunt_types::resources::{Labels, TokenKind, validate_name};

use jaunt_types::api::NODE_CERT_TTL_SECS as NODE_CERT_TTL;
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

    fn sign_host(
        &self,
        uuid: &str,
        name: &str,
        addr: Option<&str>,
        host_key: &str,
    ) -> Result<String, AuthError> {
        let public_key =
            parse_public_key(host_key).map_err(|e| AuthError::BadRequest(e.to_string()))?;
        let cert = self.identity.host_ca.sign_host_cert(&HostCertRequest {
            public_key,
            host_id: uuid.to_string(),
            principals: self.host_principals(uuid, name, addr),
            now: now() as u64,
            ttl_secs: NODE_CERT_TTL,
        })?;
        cert.to_openssh()
            .map_err(|e| AuthError::Internal(e.to_string()))
    }

    fn sign_node_tls(&self, uuid: &str, csr: &str) -> Result<String, AuthError> {
        self.identity
            .tls_ca
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
        Ok(vec![self.identity.user_ca.public_openssh()?])
    }

    /// Spends one use of a node token, atomically.
    /// Spends one use of a node token; returns it as it was.
    async fn consume_node_token(&self, token: &str) -> Result<TokenRecord, AuthError> {
        loop {
            let (record, revision) = self.find_token(token, TokenKind::Node).await?;
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
        let token = self.consume_node_token(req.token.expose()).await?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let host_cert =
            self.sign_host(&uuid, &req.name, req.addr.as_deref(), &req.host_public_key)?;
        let tls_cert_pem = self.sign_node_tls(&uuid, &req.tls_csr_pem)?;
        let record = NodeRecord {
            uuid: uuid.clone(),
            name: req.name.clone(),
            labels_pinned: token.labels.is_some(),
            labels: token.labels.unwrap_or(req.labels),
            addr: req.addr,
            host_public_key: req.host_public_key,
            last_seen: now(),
            heartbeat_secs: 0,
        };
        self.store
            .create(&node_key(&uuid), &record, Some(now() + NODE_FORGET_AFTER))
            .await?;
        tracing::info!(node = %req.name, %uuid, "node joined");
        let mut e = self.event("node.join", true);
        e.node = Some(req.name.clone());
        e.node_uuid = Some(uuid.clone());
        self.emit(e).await?;
        Ok(NodeJoinResponse {
            uuid,
            cluster_name: self.identity.cluster_name.clone(),
            host_cert,
            tls_cert_pem,
            tls_ca_pem: self.identity.tls_ca.cert_pem().to_string(),
            user_ca_keys: self.user_ca_keys()?,
        })
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

    pub async fn heartbeat(
        &self,
        uuid: &str,
        req: HeartbeatRequest,
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
            || (req.host_cert_valid_before as i64) - now < (NODE_CERT_TTL / 2) as i64;
        let host_cert = if renew_host {
            Some(self.sign_host(uuid, &req.name, req.addr.as_deref(), &req.host_public_key)?)
        } else {
            None
        };
        let tls_cert_pem = match &req.tls_csr_pem {
            Some(csr) => Some(self.sign_node_tls(uuid, csr)?),
            None => None,
        };
        let record = NodeRecord {
            uuid: uuid.to_string(),
            name: req.name,
            labels: match existing.labels_pinned {
                true => existing.labels.clone(),
                false => req.labels,
            },
            labels_pinned: existing.labels_pinned,
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
        Ok(HeartbeatResponse {
            host_cert,
            tls_cert_pem,
            user_ca_keys: self.user_ca_keys()?,
            heartbeat_secs: record.heartbeat_secs,
            recording: self.config.recording,
            client_idle_timeout_secs: self.config.client_idle_timeout.map_or(0, |t| t.as_secs()),
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
    pub async fn remove_node(&self, node: &str) -> Result<String, AuthError> {
        let all = self.all_nodes().await?;
        let matches: Vec<&NodeRecord> = all
            .iter()
            .filter(|n| n.uuid == node || n.name == node)
            .collect();
        let found = match matches.as_slice() {
            [] => return Err(AuthError::NotFound(format!("node {node:?} not found"))),
            [one] => *one,
            many => {
                let uuids: Vec<&str> = many.iter().map(|n| n.uuid.as_str()).collect();
                return Err(AuthError::BadRequest(format!(
                    "several nodes are named {node:?}; remove one by UUID: {}",
                    uuids.join(", ")
                )));
            }
        };
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

    pub fn is_online(&self, node: &NodeRecord) -> bool {
        now() - node.last_seen <= self.offline_window(node)
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
        };
        let Some(node) = self.node(uuid).await? else {
            return Ok(deny("this node is not in the inventory".into()));
        };
        let Some(user) = self.user_record(&req.user).await? else {
            return Ok(deny(format!("user {:?} no longer exists", req.user)));
        };
        let checker = self.access_checker(&user).await?;
        Ok(match checker.check_login(&req.login, &node.labels) {
            Ok(()) => AuthorizeResponse {
                allowed: true,
                reason: String::new(),
                port_forwarding: checker.port_forwarding(),
                forward_agent: checker.forward_agent(),
            },
            Err(denied) => deny(denied.to_string()),
        })
    }
}
