//! Administration. The admin socket: `jctl` on the auth host sends one
//! JSON request per connection and reads one JSON response. The socket file
//! is mode 0600 in a 0700 data directory, and each peer's uid is checked as
//! well: only the user the daemon runs as (or root) may administer the
//! cluster. Remotely (`jctl --proxy`, through the proxy's API with a
//! user's certificate) each request is carried out only when the user's
//! current roles' rules allow it ([`AuthServer::admin_as`]), and the events
//! it causes name that user in `by`.

use crate::{AuthError, AuthServer};
use jaunt_types::admin::{AdminRequest, AdminResponse, CaKind, ClusterStatus};
use jaunt_types::resources::TokenKind;
use std::future::Future;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// The largest request accepted (a role file is a few KiB).
const MAX_REQUEST: u64 = 1 << 20;

tokio::task_local! {
    /// The user a remote admin request acts for; [`AuthServer::event`]
    /// names them in each event the request causes.
    pub(crate) static ACTING_ADMIN: String;
}

impl AuthServer {
    /// Carries out an administrative request for `user` (`jctl --proxy`)
    /// if their current roles allow every permission it takes; refused
    /// otherwise, naming the first missing rule.
    pub async fn admin_as(
        &self,
        user: &str,
        req: AdminRequest,
    ) -> Result<AdminResponse, AuthError> {
        let record = self
            .user_record(user)
            .await?
            .ok_or_else(|| AuthError::AccessDenied(format!("user {user:?} no longer exists")))?;
        let checker = self.access_checker(&record).await?;
        if let Some((resource, verb)) = req
            .permissions()
            .into_iter()
            .find(|(resource, verb)| !checker.can(resource, verb))
        {
            tracing::warn!(%user, resource, verb, "refused a remote admin request");
            return Err(AuthError::AccessDenied(format!(
                "access denied: user {user:?} may not {verb} {resource} (no role of theirs has a rule allowing it)"
            )));
        }
        Ok(ACTING_ADMIN.scope(user.to_string(), self.admin(req)).await)
    }

    /// Carries out one administrative request.
    pub async fn admin(&self, req: AdminRequest) -> AdminResponse {
        match self.admin_inner(req).await {
            Ok(r) => r,
            Err(e) => AdminResponse::Error {
                message: e.to_string(),
            },
        }
    }

    async fn admin_inner(&self, req: AdminRequest) -> Result<AdminResponse, AuthError> {
        let done = |message: String| Ok(AdminResponse::Done { message });
        match req {
            AdminRequest::Status => {
                let id = &self.identity;
                let cas = self.authorities();
                Ok(AdminResponse::Status(ClusterStatus {
                    cluster_name: id.cluster_name.clone(),
                    public_addr: self.config.public_addr.clone(),
                    second_factor: self.config.second_factor,
                    user_ca_fingerprint: cas.user.signer().fingerprint(),
                    host_ca_fingerprint: cas.host.signer().fingerprint(),
                    rotations: [&cas.user, &cas.host, &cas.openssh]
                        .into_iter()
                        .filter_map(|set| {
                            Some(jaunt_types::admin::RotationStatus {
                                ca: set.ca,
                                rotation: set.rotation.clone()?,
                                trusted: set.trusted().map(|k| k.fingerprint()).collect(),
                            })
                        })
                        .chain(match &cas.tls.rotation {
                            Some(r) => Some(jaunt_types::admin::RotationStatus {
                                ca: jaunt_types::rotation::CaType::Tls,
                                rotation: r.clone(),
                                trusted: cas
                                    .tls
                                    .trusted()
                                    .map(|c| c.pin())
                                    .collect::<Result<_, _>>()?,
                            }),
                            None => None,
                        })
                        .collect(),
                    ca_pin: cas.tls.pin()?,
                    users: self.list_users().await?.len(),
                    roles: self.list_roles().await?.len(),
                }))
            }
            AdminRequest::UserAdd {
                name,
                roles,
                logins,
                ttl,
            } => {
                let invite = self.add_user(&name, roles, logins, ttl).await?;
                Ok(signup(invite))
            }
            AdminRequest::UserReset { name, ttl } => Ok(signup(self.reset_user(&name, ttl).await?)),
            AdminRequest::UserList => Ok(AdminResponse::Users {
                users: self.list_users().await?,
            }),
            AdminRequest::UserRemove { name } => done(self.remove_user(&name).await?),
            AdminRequest::UserUpdate {
                name,
                roles,
                logins,
            } => done(self.update_user(&name, roles, logins).await?),
            AdminRequest::UserUnlock { name } => done(self.unlock_user(&name).await?),
            AdminRequest::RoleUpsert { role, force } => done(self.upsert_role(role, force).await?),
            AdminRequest::RoleList => Ok(AdminResponse::Roles {
                roles: self.list_roles().await?,
            }),
            AdminRequest::RoleRemove { name } => done(self.remove_role(&name).await?),
            AdminRequest::TokenAdd {
                kind,
                ttl,
                uses,
                labels,
            } => match kind {
                TokenKind::Node => {
                    let (token, command) = self.add_node_token(ttl, uses, labels).await?;
                    Ok(AdminResponse::TokenAdded { token, command })
                }
                TokenKind::TrustedCluster => {
                    let (token, command) =
                        self.add_trusted_cluster_token(ttl, uses, labels).await?;
                    Ok(AdminResponse::TokenAdded { token, command })
                }
                TokenKind::Signup => Err(AuthError::BadRequest(
                    "signup tokens come from 'jctl users add' and 'jctl users reset'".into(),
                )),
            },
            AdminRequest::TokenList => Ok(AdminResponse::Tokens {
                tokens: self.list_tokens().await?,
            }),
            AdminRequest::TokenRemove { token } => done(self.remove_token(token.expose()).await?),
            AdminRequest::NodeList => Ok(AdminResponse::Nodes {
                nodes: self.admin_nodes().await?,
            }),
            AdminRequest::NodeRemove { node } => done(self.remove_node(&node).await?),
            AdminRequest::AuditSearch { query } => Ok(AdminResponse::Events {
                events: self.search_events(&query).await?,
            }),
            AdminRequest::NodeAddOpenssh { name, addr, labels } => {
                let node = self.add_openssh_node(&name, &addr, labels).await?;
                done(format!(
                    "OpenSSH node {} ({}) has been added at {}; set its sshd up with 'jctl auth export --type=openssh-user-ca' and 'jctl auth sign --host={},{}'",
                    node.name,
                    node.uuid,
                    node.addr.as_deref().unwrap_or_default(),
                    node.name,
                    node.addr
                        .as_deref()
                        .and_then(|a| jaunt_types::addr::split_host_port(a, 22).ok())
                        .map(|(h, _)| h)
                        .unwrap_or_default()
                ))
            }
            AdminRequest::LockAdd {
                target,
                message,
                expires,
            } => {
                let lock = self.add_lock(target, message, expires).await?;
                done(format!(
                    "lock {} has been created: {} (ends live sessions within 2 seconds)",
                    lock.id, lock.target
                ))
            }
            AdminRequest::LockList => Ok(AdminResponse::Locks {
                locks: self.list_locks().await?,
            }),
            AdminRequest::LockRemove { id } => done(self.remove_lock(&id).await?),
            AdminRequest::CaExport { kind } => Ok(AdminResponse::Text {
                text: self.export_ca(kind)?,
            }),
            AdminRequest::TrustedClusterUpsert { cluster } => {
                done(self.upsert_trusted_cluster(cluster).await?)
            }
            AdminRequest::TrustedClusterList => Ok(AdminResponse::TrustedClusters {
                clusters: self.list_trusted_clusters().await?,
            }),
            AdminRequest::TrustedClusterRemove { name } => {
                done(self.remove_trusted_cluster(&name).await?)
            }
            AdminRequest::Rotate { request } => done(self.rotate_ca(request).await?),
            AdminRequest::RemoteClusterList => Ok(AdminResponse::RemoteClusters {
                clusters: self.list_remote_clusters().await?,
            }),
            AdminRequest::RemoteClusterRemove { name } => {
                done(self.remove_remote_cluster(&name).await?)
            }
            AdminRequest::HostSign {
                principals,
                public_key,
                ttl,
            } => {
                let ttl = ttl.map_or(HOST_SIGN_TTL, |t| t.as_secs());
                Ok(AdminResponse::Text {
                    text: self
                        .sign_openssh_host(&principals, &public_key, ttl)
                        .await?,
                })
            }
        }
    }
}

/// How long a host certificate from `jctl auth sign` lasts by default.
const HOST_SIGN_TTL: u64 = 365 * 86400;

impl AuthServer {
    /// A CA's public half as `jctl auth export` prints it.
    fn export_ca(&self, kind: CaKind) -> Result<String, AuthError> {
        let id = &self.identity;
        Ok(match kind {
            // Every trusted key, one line each (two during a rotation).
            CaKind::User => lines(self.authorities().user.public_keys()?, |k| {
                format!("cert-authority {k}")
            }),
            CaKind::Host => lines(self.authorities().host.public_keys()?, |k| {
                format!("@cert-authority *.{} {k}", id.cluster_name)
            }),
            CaKind::OpensshUserCa => self.authorities().openssh.public_keys()?.join("\n"),
            CaKind::Tls => self.authorities().tls.bundle().trim_end().to_string(),
        })
    }
}

fn lines(keys: Vec<String>, line: impl Fn(&str) -> String) -> String {
    keys.iter().map(|k| line(k)).collect::<Vec<_>>().join("\n")
}

fn signup(invite: crate::users::SignupInvite) -> AdminResponse {
    AdminResponse::Signup {
        user: invite.user,
        token: invite.token,
        expires: invite.expires,
        command: invite.command,
    }
}

/// Serves the admin socket until `shutdown` completes.
pub async fn serve(
    listener: UnixListener,
    auth: Arc<AuthServer>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let auth = auth.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(stream, &auth).await {
                            tracing::warn!(error = %e, "admin connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// The uid this process runs as, from the data directory's point of view.
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

async fn handle(mut stream: UnixStream, auth: &AuthServer) -> std::io::Result<()> {
    let peer = stream.peer_cred()?.uid();
    // Read the request before answering, even one to be refused, so the
    // client sees the answer rather than a reset connection.
    let mut body = Vec::new();
    (&mut stream)
        .take(MAX_REQUEST)
        .read_to_end(&mut body)
        .await?;
    let response = if peer != 0 && peer != own_uid() {
        tracing::warn!(uid = peer, "refused an admin connection from another user");
        AdminResponse::Error {
            message: "only the user the auth service runs as may use the admin socket".into(),
        }
    } else {
        match serde_json::from_slice::<AdminRequest>(&body) {
            Ok(req) => auth.admin(req).await,
            Err(e) => AdminResponse::Error {
                message: format!("malformed admin request: {e}"),
            },
        }
    };
    let bytes = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    stream.write_all(&bytes).await?;
    stream.shutdown().await
}
