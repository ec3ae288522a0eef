//! The SSH server the user's client meets for an agentless node. It
//! decides as a Jaunt node would: only a certificate from this cluster's
//! user CA, for a login the user's current roles allow on the node's
//! labels; each new channel authorized again; the connection ended with
//! the certificate. Then it logs in to sshd (`upstream.rs`) and carries
//! channels there (`channel.rs`).

use crate::WINDOW;
use crate::channel::{self, Budget, ChannelCtx};
use crate::upstream::{self, Login, Sshd, UserSide};
use jaunt_auth::AuthServer;
use jaunt_auth::nodes::OpensshPermits;
use jaunt_auth::records::NodeRecord;
use jaunt_ca::ssh_key::Certificate;
use jaunt_ca::{CertIdentity, UserCertCheck, check_user_cert};
use jaunt_rbac::locks::{AccessEnd, LockSubject, access_end};
use jaunt_types::api::{AuthorizeRequest, AuthorizeResponse};
use jaunt_types::audit::AuditEvent;
use russh::server::{Auth, Handler, Msg, Session};
use russh::{Channel, MethodKind, MethodSet};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long an authorization answers for new channels (as on a node).
const AUTHZ_FRESH: Duration = Duration::from_secs(1);

struct Identity {
    cert: CertIdentity,
    login: String,
    authz: AuthorizeResponse,
    authorized_at: Instant,
}

pub struct Connection {
    auth: Arc<AuthServer>,
    node: NodeRecord,
    client: SocketAddr,
    /// The user the relay was opened for (its TLS certificate).
    relay_user: String,
    /// The connection to sshd, until the login uses it.
    sshd: Option<TcpStream>,
    /// The login at sshd, or why there is none (told on each channel).
    upstream: Option<Result<russh::client::Handle<Sshd>, String>>,
    identity: Option<Identity>,
    user_side: UserSide,
    expiry: Option<tokio::task::JoinHandle<()>>,
    authenticated: Arc<std::sync::atomic::AtomicBool>,
    /// What each session channel holds of the user's data (for the window).
    budgets: HashMap<russh::ChannelId, Budget>,
}

impl Connection {
    pub fn new(
        auth: Arc<AuthServer>,
        node: NodeRecord,
        client: SocketAddr,
        relay_user: String,
        sshd: TcpStream,
    ) -> Self {
        Connection {
            auth,
            node,
            client,
            relay_user,
            sshd: Some(sshd),
            upstream: None,
            identity: None,
            user_side: UserSide::default(),
            expiry: None,
            authenticated: Arc::default(),
            budgets: HashMap::new(),
        }
    }

    /// A flag that turns true when the client authenticates.
    pub fn authenticated(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.authenticated.clone()
    }

    /// An event about this connection, from an agentless node.
    fn event(&self, name: &str, success: bool) -> AuditEvent {
        let mut e = self
            .auth
            .event(name, success)
            .with("server_sub_kind", "openssh");
        e.node = Some(self.node.name.clone());
        e.node_uuid = Some(self.node.uuid.clone());
        e.addr = Some(self.client.to_string());
        if let Some(id) = &self.identity {
            e.user = Some(id.cert.user.clone());
            e.login = Some(id.login.clone());
        }
        e
    }

    async fn refuse(&self, login: &str, user: Option<&str>, reason: &str) -> Auth {
        tracing::warn!(client = %self.client, node = %self.node.name, %login, %reason, "authentication refused");
        let mut e = self.event("auth", false).with("reason", reason);
        e.login = Some(login.to_string());
        e.user = user.map(str::to_string);
        let _ = self.auth.emit(e).await;
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        }
    }

    async fn authorize(&self, user: &str, login: &str) -> Result<AuthorizeResponse, String> {
        let req = AuthorizeRequest {
            user: user.to_string(),
            login: login.to_string(),
            remote: None,
        };
        self.auth
            .authorize_login(&self.node.uuid, &req)
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether the user may still open a channel (see the node's
    /// counterpart): a refusal is audited.
    async fn still_allowed(&mut self) -> bool {
        let Some(id) = self.identity.as_ref() else {
            return false;
        };
        if id.authorized_at.elapsed() < AUTHZ_FRESH {
            return true;
        }
        let (user, login) = (id.cert.user.clone(), id.login.clone());
        match self.authorize(&user, &login).await {
            Ok(authz) if authz.allowed => {
                if let Some(id) = self.identity.as_mut() {
                    id.authz = authz;
                    id.authorized_at = Instant::now();
                }
                true
            }
            Ok(authz) => {
                let reason = format!("access revoked: {}", authz.reason);
                tracing::warn!(%user, %login, node = %self.node.name, %reason, "channel refused");
                let _ = self
                    .auth
                    .emit(self.event("auth", false).with("reason", reason))
                    .await;
                false
            }
            Err(e) => {
                tracing::warn!(%user, error = %e, "cannot re-check access; the login's authorization stands");
                true
            }
        }
    }

    fn sshd(&self) -> Result<&russh::client::Handle<Sshd>, String> {
        match &self.upstream {
            Some(Ok(h)) => Ok(h),
            Some(Err(why)) => Err(why.clone()),
            None => Err("not logged in".into()),
        }
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        tracing::debug!(client = %self.client, %user, "no credentials offered");
        Ok(Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        })
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(self
            .refuse(
                user,
                None,
                "passwords are not accepted; use a certificate from 'jsh login'",
            )
            .await)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self
            .refuse(
                user,
                None,
                "plain public keys are not accepted; use a certificate from 'jsh login'",
            )
            .await)
    }

    async fn auth_openssh_certificate(
        &mut self,
        login: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let check = UserCertCheck {
            user_cas: &self.auth.user_ca_key_data(),
            // Agentless nodes serve this cluster's own users only.
            trusted: &[],
            login,
            now: jaunt_sys::clock::now().max(0) as u64,
            client_ip: Some(self.client.ip()),
        };
        let identity = match check_user_cert(cert, &check) {
            Ok(id) => id,
            Err(refusal) => return Ok(self.refuse(login, None, &refusal.to_string()).await),
        };
        let user = identity.user.clone();
        if user != self.relay_user {
            let why = format!(
                "the certificate is {user:?}'s but the relay was opened by {:?}",
                self.relay_user
            );
            return Ok(self.refuse(login, Some(&user), &why).await);
        }
        let authz = match self.authorize(&user, login).await {
            Ok(a) if a.allowed => a,
            Ok(a) => {
                let why = format!("user {user:?}: {}", a.reason);
                return Ok(self.refuse(login, Some(&user), &why).await);
            }
            Err(e) => return Ok(self.refuse(login, Some(&user), &e).await),
        };
        let permits = OpensshPermits {
            pty: identity.permit_pty,
            port_forwarding: identity.permit_port_forwarding && authz.port_forwarding,
            agent_forwarding: identity.permit_agent_forwarding && authz.forward_agent,
        };
        let Some(sshd) = self.sshd.take() else {
            return Ok(self.refuse(login, Some(&user), "already logged in").await);
        };
        let upstream = upstream::connect(
            &self.auth,
            sshd,
            Login {
                node: &self.node,
                user: &user,
                login,
                valid_before: identity.valid_before,
                permits,
                agent: permits.agent_forwarding.then(|| self.user_side.clone()),
            },
        )
        .await;
        // sshd's refusal is told on the session channel (the user sees
        // why), so the client is let in to hear it.
        if let Err(why) = &upstream {
            tracing::warn!(node = %self.node.name, %login, %user, reason = %why, "sshd login failed");
            let e = self.event("auth", false).with("reason", why.as_str());
            let _ = self.auth.emit(e).await;
        }
        tracing::info!(%user, %login, node = %self.node.name, client = %self.client, "user authenticated (agentless)");
        self.upstream = Some(upstream);
        self.identity = Some(Identity {
            cert: identity,
            login: login.to_string(),
            authz,
            authorized_at: Instant::now(),
        });
        Ok(Auth::Accept)
    }

    /// The connection ends when the user's access does: the certificate
    /// expires, or a lock that stops it comes into force.
    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let Some(id) = &self.identity else {
            return Ok(());
        };
        self.authenticated
            .store(true, std::sync::atomic::Ordering::Release);
        let _ = self.user_side.set(session.handle());
        let left = id
            .cert
            .valid_before
            .saturating_sub(jaunt_sys::clock::now().max(0) as u64);
        let subject = LockSubject {
            user: id.cert.user.clone(),
            roles: id.authz.roles.clone(),
            login: Some(id.login.clone()),
            node: Some(self.node.uuid.clone()),
        };
        let feed = self.auth.lock_feed();
        let handle = session.handle();
        let event = self.event("client.disconnect", true);
        let auth = self.auth.clone();
        self.expiry = Some(tokio::spawn(async move {
            let expiry = tokio::time::sleep(Duration::from_secs(left));
            let end = access_end(feed, &subject, jaunt_sys::clock::now, expiry).await;
            let told = handle
                .disconnect(russh::Disconnect::ByApplication, end.told(), String::new())
                .await;
            if told.is_ok() {
                let mut e = event.with("reason", end.reason());
                if let AccessEnd::Locked(lock) = &end {
                    e = e.with("lock", lock.id.as_str());
                }
                let _ = auth.emit(e).await;
            }
        }));
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !self.still_allowed().await {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        self.budgets.retain(|_, b| b.is_live());
        let max = self.identity.as_ref().and_then(|i| i.authz.max_sessions);
        if let Some(max) = max.filter(|m| self.budgets.len() >= *m as usize) {
            tracing::warn!(client = %self.client, max, "session channel refused: max_sessions reached");
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        let sshd = match self.sshd() {
            Ok(h) => h.channel_open_session().await.map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        let Some(id) = &self.identity else {
            return Ok(());
        };
        let sshd = match sshd {
            Ok(c) => c,
            Err(why) => {
                // Accepted only to say why nothing runs there.
                reply.accept().await;
                let handle = session.handle();
                let id = channel.id();
                tokio::spawn(async move {
                    let text = format!("ERROR: {why}\r\n");
                    let _ = handle.extended_data(id, 1, text.into_bytes()).await;
                    let _ = handle.exit_status_request(id, 255).await;
                    let _ = handle.eof(id).await;
                    let _ = handle.close(id).await;
                });
                return Ok(());
            }
        };
        let ctx = ChannelCtx {
            auth: self.auth.clone(),
            node_uuid: self.node.uuid.clone(),
            node_name: self.node.name.clone(),
            template: self.event("session", true),
            permit_pty: id.cert.permit_pty,
            permit_agent: id.cert.permit_agent_forwarding && id.authz.forward_agent,
            recording: self.auth.config().recording,
            handle: session.handle(),
        };
        let budget = Budget::new(channel::HELD_FROM_USER);
        self.budgets.retain(|_, b| b.is_live());
        self.budgets.insert(channel.id(), budget.clone());
        reply.accept().await;
        tokio::spawn(channel::pump(ctx, channel, sshd, budget));
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        originator: &str,
        originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let allowed = self.still_allowed().await
            && self
                .identity
                .as_ref()
                .is_some_and(|i| i.authz.port_forwarding && i.cert.permit_port_forwarding);
        let port_event = |ok: bool| {
            self.event("port", ok)
                .with("destination", format!("{host}:{port}"))
        };
        if !allowed {
            tracing::warn!(client = %self.client, %host, port, "port forwarding refused: not allowed by the user's roles");
            let e = port_event(false).with(
                "reason",
                "port forwarding is not allowed by the user's roles",
            );
            let _ = self.auth.emit(e).await;
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let opened = match self.sshd() {
            Ok(h) => h
                .channel_open_direct_tcpip(host, port, originator, originator_port)
                .await
                .map_err(|e| e.to_string()),
            Err(why) => Err(why),
        };
        let theirs = match opened {
            Ok(c) => c,
            Err(why) => {
                let _ = self.auth.emit(port_event(false).with("reason", why)).await;
                reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        // Recorded before any byte flows.
        if let Err(e) = self.auth.emit(port_event(true)).await {
            tracing::error!(error = %e, "cannot write the port event; forward refused");
            reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        }
        reply.accept().await;
        tokio::spawn(async move {
            let mut ours = channel.into_stream();
            let mut theirs = theirs.into_stream();
            let _ = tokio::io::copy_bidirectional(&mut ours, &mut theirs).await;
        });
        Ok(())
    }

    /// The window russh grants next: smaller while the channel holds data
    /// sshd has not taken (see `channel::window_for`).
    fn adjust_window(&mut self, channel: russh::ChannelId, _current: u32) -> u32 {
        let held = self.budgets.get(&channel).map_or(0, Budget::held);
        channel::window_for(WINDOW, held)
    }

    /// Answered here (russh replies with what this returns); the channel's
    /// pump passes the request on to sshd when it is allowed.
    async fn agent_request(
        &mut self,
        _channel: russh::ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let allowed = self
            .identity
            .as_ref()
            .is_some_and(|i| i.authz.forward_agent && i.cert.permit_agent_forwarding);
        if !allowed {
            tracing::warn!(client = %self.client, "agent forwarding refused: not allowed by the user's roles");
        }
        Ok(allowed)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(expiry) = self.expiry.take() {
            expiry.abort();
        }
        if self.identity.is_some() {
            let e = self
                .event("client.disconnect", true)
                .with("reason", "connection closed");
            let auth = self.auth.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = auth.emit(e).await;
                });
            }
        }
    }
}
