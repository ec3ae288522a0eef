//! The SSH relay (ALPN `jaunt-ssh/1`): a logged-in user names a target; the
//! proxy checks the user may see that node, connects to it (dialling its
//! address or through its reverse tunnel) and then only copies bytes, on
//! this connection or (a raw relay, `raw.rs`) on the plain TCP connection
//! that redeems the ticket it answers with. The SSH session is end to end
//! between the client and the node.

use crate::lines::{read_json_line, write_json_line};
use crate::raw::{MAX_PENDING_PER_USER, Tickets};
use crate::tunnel::{TunnelError, Tunnels};
use crate::upstream::{Agentless, Upstream, relay};
use jaunt_auth::records::NodeRecord;
use jaunt_auth::{AuthError, AuthServer};
use jaunt_ca::IdentityKind;
use jaunt_types::addr::DialPolicy;
use jaunt_types::api::{AuthorizeRequest, DialRequest, DialResponse};
use jaunt_types::route::{RouteError, parse_target, resolve};
use jaunt_types::timefmt::format_unix;
use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a dial request was refused. Its `Display` is what the client is
/// told, so the variants that wrap internal failures say nothing of them;
/// [`Refusal::answer`] logs those in full (the relay's counterpart of the
/// API's `ApiError`).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the proxy needs your certificate: run 'jsh login'")]
    NoCertificate,
    #[error("this certificate cannot open SSH sessions")]
    WrongCertificate,
    #[error("{0}")]
    BadCertificate(String),
    #[error("malformed dial request: {0}")]
    Malformed(String),
    #[error("cluster {asked:?} is not known to this proxy (it serves {serves:?})")]
    UnknownCluster { asked: String, serves: String },
    #[error("cluster {0} is offline")]
    LeafOffline(String),
    /// A leaf cluster refused; its words.
    #[error("{0}")]
    Leaf(String),
    #[error("agentless (OpenSSH) nodes of a leaf cluster cannot be reached from its root")]
    LeafAgentless,
    #[error("{0}")]
    BadTarget(String),
    #[error("access denied to {login} connecting to {node}")]
    LoginDenied { login: String, node: String },
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(
        "node {name} is offline: its last heartbeat was at {last_seen}; check that it is running ('jsh ls' lists online nodes)"
    )]
    Offline { name: String, last_seen: String },
    #[error("node {name} at {addr} did not answer in time")]
    DialTimeout { name: String, addr: String },
    #[error("cannot reach node {name} at {addr}: {reason}")]
    Unreachable {
        name: String,
        addr: String,
        reason: String,
    },
    #[error(
        "node {name} registered the address {addr}, which this proxy does not dial (node_address_allow)"
    )]
    AddressNotAllowed { name: String, addr: String },
    #[error(
        "too many relays waiting for their connection ({MAX_PENDING_PER_USER}); redeem or let them expire first"
    )]
    TooManyPending,
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
    /// Auth refused in words meant for the user (access, not found).
    #[error("{0}")]
    Auth(String),
    /// Auth failed inside (store, CA): the details stay in the log.
    #[error("internal error; the cluster's log has the details")]
    Internal(#[source] AuthError),
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(_) | AuthError::Ca(_) | AuthError::Internal(_) => Refusal::Internal(e),
            other => Refusal::Auth(other.to_string()),
        }
    }
}

impl Refusal {
    /// The line the client gets; internal causes go to the log.
    fn answer(&self, peer: SocketAddr) -> DialResponse {
        match self {
            Refusal::Internal(cause) => {
                tracing::error!(%peer, error = %cause, "relay failed inside auth")
            }
            other => tracing::info!(%peer, reason = %other, "relay refused"),
        }
        DialResponse::refused(self.to_string())
    }
}

/// What the relay reaches nodes with.
pub struct Routes<'a> {
    pub auth: &'a AuthServer,
    pub tunnels: &'a Tunnels,
    /// `None` when raw relays are turned off.
    pub tickets: Option<&'a Arc<Tickets>>,
    pub dial_policy: &'a DialPolicy,
    /// Ends the SSH connections of agentless nodes.
    pub forwarder: &'a Arc<jaunt_forward::Forwarder>,
}

pub async fn serve<S>(
    mut client: S,
    peer: SocketAddr,
    cert: Option<CertificateDer<'static>>,
    routes: Routes<'_>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tickets = routes.tickets;
    let Routed {
        upstream,
        raw,
        user,
        node_uuid,
    } = match connect(&mut client, cert, &routes, peer).await {
        Ok(connected) => connected,
        Err(refusal) => {
            let _ = write_json_line(&mut client, &refusal.answer(peer)).await;
            return;
        }
    };
    let mut answer = DialResponse {
        node: Some(node_uuid),
        ..Default::default()
    };
    if let Some(tickets) = tickets.filter(|_| raw) {
        answer.ticket = Some(tickets.issue(peer.ip(), &user, upstream));
        let _ = write_json_line(&mut client, &answer).await;
        return;
    }
    if write_json_line(&mut client, &answer).await.is_err() {
        return;
    }
    relay(client, upstream, peer).await
}

/// Connects to a direct-mode node at `addr`: its name is resolved here,
/// and only addresses the policy permits are dialled (the check and the
/// connection use the same resolved address, so a name that resolves
/// differently a moment later changes nothing).
async fn dial(name: &str, addr: &str, policy: &DialPolicy) -> Result<TcpStream, Refusal> {
    let unreachable = |reason: String| Refusal::Unreachable {
        name: name.to_string(),
        addr: addr.to_string(),
        reason,
    };
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let permitted: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|a| policy.permits(a.ip()))
        .collect();
    if permitted.is_empty() {
        tracing::warn!(node = %name, %addr, ?resolved, "node address refused by node_address_allow");
        return Err(Refusal::AddressNotAllowed {
            name: name.to_string(),
            addr: addr.to_string(),
        });
    }
    let mut last = String::new();
    for target in permitted {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => {
                return Err(Refusal::DialTimeout {
                    name: name.to_string(),
                    addr: addr.to_string(),
                });
            }
        }
    }
    Err(unreachable(last))
}

/// A dial request routed and its node connected.
struct Routed {
    upstream: Upstream,
    /// The client asked for a raw relay.
    raw: bool,
    user: String,
    node_uuid: String,
}

/// Checks the caller and the request, then connects to the node.
async fn connect<S: AsyncRead + Unpin>(
    client: &mut S,
    cert: Option<CertificateDer<'static>>,
    routes: &Routes<'_>,
    peer: SocketAddr,
) -> Result<Routed, Refusal> {
    let auth = routes.auth;
    let der = cert.ok_or(Refusal::NoCertificate)?;
    let id = jaunt_ca::client_identity(&der).map_err(|e| Refusal::BadCertificate(e.to_string()))?;
    let cluster = &auth.identity().cluster_name;
    if id.kind != IdentityKind::User || id.cluster != *cluster {
        return Err(Refusal::WrongCertificate);
    }
    let req: DialRequest = read_json_line(client)
        .await
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
    // Checked before a node is dialled: each ticket holds a connection.
    if let Some(tickets) = routes.tickets.filter(|_| req.raw)
        && tickets.pending_for(&id.user) >= MAX_PENDING_PER_USER
    {
        return Err(Refusal::TooManyPending);
    }
    if let Some(leaf) = req
        .cluster
        .as_deref()
        .filter(|c| !c.is_empty() && *c != cluster)
    {
        auth.refuse_locked(&id.user, None, None).await?;
        let (upstream, node_uuid) =
            crate::remote::dial_leaf(routes, leaf, &req.target, &id.user, peer).await?;
        return Ok(Routed {
            upstream,
            raw: req.raw,
            user: id.user,
            node_uuid,
        });
    }
    let target = parse_target(&req.target).map_err(Refusal::BadTarget)?;
    let nodes = auth.nodes_for(&id.user, false).await?;
    let (upstream, node_uuid) = reach(routes, &nodes, &target, &id.user, peer, false).await?;
    Ok(Routed {
        upstream,
        raw: req.raw,
        user: id.user,
        node_uuid,
    })
}

/// Routes `target` among `nodes` (those `user` may see), checks locks and
/// that the node is online, and connects to it: this cluster's users, and
/// at a leaf a root cluster's users (`remote`), whose routing this
/// cluster does. Returns the connection and the node's UUID.
pub(crate) async fn reach(
    routes: &Routes<'_>,
    nodes: &[NodeRecord],
    target: &jaunt_types::route::Target,
    user: &str,
    peer: SocketAddr,
    remote: bool,
) -> Result<(Upstream, String), Refusal> {
    let (auth, tunnels) = (routes.auth, routes.tunnels);
    let cluster = &auth.identity().cluster_name;
    let infos: Vec<_> = nodes.iter().map(|n| n.info()).collect();
    let chosen = resolve(&infos, &target.host, target.port, cluster)?;
    let node = nodes
        .iter()
        .find(|n| n.uuid == chosen.uuid)
        .ok_or(RouteError::NotFound)?;
    auth.refuse_locked(user, target.login.as_deref(), Some(&node.uuid))
        .await?;
    if !auth.is_online(node) && !tunnels.is_connected(&node.uuid) {
        return Err(Refusal::Offline {
            name: node.name.clone(),
            last_seen: format_unix(node.last_seen),
        });
    }
    let upstream = if node.sub_kind.is_some() {
        if remote {
            return Err(Refusal::LeafAgentless);
        }
        agentless(node, target.login.as_deref(), user, routes).await?
    } else {
        let mut upstream = match &node.addr {
            Some(addr) => Upstream::Tcp(dial(&node.name, addr, routes.dial_policy).await?),
            None => tunnels.dial(&node.uuid, &node.name, None).await?,
        };
        // The node learns the user's address from the proxy's word, not
        // from the connection (which is the proxy's).
        let key = auth.client_addr_key(&node.uuid).await?;
        let line =
            jaunt_ca::client_addr::client_line(&key, &node.uuid, peer, jaunt_sys::clock::now());
        upstream
            .announce_client(&line)
            .await
            .map_err(|e| Refusal::Unreachable {
                name: node.name.clone(),
                addr: node.addr.clone().unwrap_or_else(|| "its tunnel".into()),
                reason: e.to_string(),
            })?;
        upstream
    };
    Ok((upstream, node.uuid.clone()))
}

/// An agentless node: a login named in the target is checked now, so a
/// client told no hears it as the guide says (the SSH login is checked
/// again when the client authenticates); then its sshd is dialled.
async fn agentless(
    node: &NodeRecord,
    login: Option<&str>,
    user: &str,
    routes: &Routes<'_>,
) -> Result<Upstream, Refusal> {
    if let Some(login) = login {
        let req = AuthorizeRequest {
            user: user.to_string(),
            login: login.to_string(),
            remote: None,
        };
        let authz = routes.auth.authorize_login(&node.uuid, &req).await?;
        if !authz.allowed {
            tracing::info!(%user, %login, node = %node.name, reason = %authz.reason, "agentless login refused");
            return Err(Refusal::LoginDenied {
                login: login.to_string(),
                node: node.name.clone(),
            });
        }
    }
    let addr = node.addr.as_deref().unwrap_or_default();
    let sshd = dial(&node.name, addr, routes.dial_policy).await?;
    Ok(Upstream::Agentless(Box::new(Agentless {
        sshd,
        node: node.clone(),
        user: user.to_string(),
        forwarder: routes.forwarder.clone(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaunt_store::StoreError;

    #[test]
    fn internal_failures_are_not_shown_to_the_client() {
        let store = AuthError::Store(StoreError::Database("disk I/O error at /var/lib/x".into()));
        let refusal = Refusal::from(store);
        assert!(matches!(refusal, Refusal::Internal(_)));
        let told = refusal.answer("127.0.0.1:1".parse().expect("addr"));
        let message = told.error.expect("refused");
        assert_eq!(message, "internal error; the cluster's log has the details");
        assert!(!message.contains("/var/lib"), "{message}");
    }

    #[test]
    fn what_the_client_is_told_per_refusal() {
        let cases = [
            (
                Refusal::from(AuthError::AccessDenied("no role allows it".into())),
                "access denied: no role allows it",
            ),
            (
                Refusal::from(RouteError::NotFound),
                "direct dialing to nodes not found in inventory is not supported",
            ),
            (
                Refusal::UnknownCluster {
                    asked: "leaf".into(),
                    serves: "root".into(),
                },
                "cluster \"leaf\" is not known to this proxy (it serves \"root\")",
            ),
            (
                Refusal::NoCertificate,
                "the proxy needs your certificate: run 'jsh login'",
            ),
            (
                Refusal::AddressNotAllowed {
                    name: "db".into(),
                    addr: "169.254.169.254:22".into(),
                },
                "node db registered the address 169.254.169.254:22, which this proxy does not dial (node_address_allow)",
            ),
        ];
        for (refusal, want) in cases {
            let told = refusal.answer("127.0.0.1:1".parse().expect("addr"));
            assert_eq!(told.error.as_deref(), Some(want));
            assert_eq!(told.ticket, None);
        }
    }
}
