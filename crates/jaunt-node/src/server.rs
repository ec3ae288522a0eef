//! The node's SSH server (russh): it authenticates users only by
//! certificates from this cluster's user CA that their roles allow for the
//! requested login here, then runs session channels as that OS user.

pub use crate::context::{NodeContext, end_interrupted_sessions};
use crate::launch;
use crate::os;
use crate::session::{self, Input, Launch, PtyRequest, SessionInfo, SessionIo};
use jaunt_ca::ssh_key::Certificate;
use jaunt_ca::{CertIdentity, UserCertCheck, check_user_cert};
use jaunt_rbac::locks::{AccessEnd, LockSubject, access_end};
use jaunt_types::api::{AuthorizeRequest, AuthorizeResponse, PATH_NODE_AUTHORIZE, RecordingMode};
use jaunt_types::audit::{AuditEvent, RecordingMeta};
use russh::keys::PublicKey;
use russh::server::{Auth, Handler, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Sig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// An authenticated connection's user.
struct Identity {
    cert: CertIdentity,
    login: String,
    authz: AuthorizeResponse,
    /// When auth last said yes: a channel opened soon after needs no
    /// second question.
    authorized_at: std::time::Instant,
}

/// How long an authorization answers for new channels. A multiplexed
/// connection (OpenSSH's ControlMaster) can live for days: each channel
/// it opens later is authorized against the user's roles as they are then.
const AUTHZ_FRESH: Duration = Duration::from_secs(1);

struct ChannelState {
    writer: russh::ChannelWriteHalf<Msg>,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
    input: Option<mpsc::Sender<Input>>,
    /// The session running on this channel, once started.
    session_id: Option<String>,
}

pub struct Connection {
    ctx: Arc<NodeContext>,
    client: SocketAddr,
    server: SocketAddr,
    identity: Option<Identity>,
    channels: HashMap<ChannelId, ChannelState>,
    /// The forwarded agent, once a channel asked for it.
    agent: Option<crate::agent_forward::AgentForward>,
    /// Closes the connection when its access ends (certificate expired,
    /// or a lock).
    ender: Option<tokio::task::JoinHandle<()>>,
    /// Set once the client has authenticated (see `agent/serve.rs`).
    authenticated: Arc<std::sync::atomic::AtomicBool>,
    /// The user this connection counts against in `ctx.user_connections`.
    counted: Option<String>,
}

impl Connection {
    pub fn new(ctx: Arc<NodeContext>, client: SocketAddr, server: SocketAddr) -> Self {
        Connection {
            ctx,
            client,
            server,
            identity: None,
            channels: HashMap::new(),
            agent: None,
            ender: None,
            authenticated: Arc::default(),
            counted: None,
        }
    }

    /// The connection, setting `flag` when its client authenticates (see
    /// `agent/serve.rs`).
    pub fn with_authenticated(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.authenticated = flag;
        self
    }

    fn refuse(&self, login: &str, reason: &str) -> Auth {
        tracing::warn!(client = %self.client, %login, %reason, "authentication refused");
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        }
    }

    async fn authorize(
        &self,
        cert: &CertIdentity,
        login: &str,
    ) -> Result<AuthorizeResponse, String> {
        let api = self
            .ctx
            .api
            .read()
            .map_err(|_| "lock poisoned".to_string())?
            .clone();
        api.post(
            PATH_NODE_AUTHORIZE,
            &AuthorizeRequest {
                user: cert.user.clone(),
                login: login.to_string(),
                remote: cert.remote.clone(),
            },
        )
        .await
        .map_err(|e| format!("cannot ask the auth service: {e}"))
    }

    /// An audit event about this connection (its user, login, client).
    fn event(&self, name: &str, success: bool) -> AuditEvent {
        let mut e = self.ctx.audit.event(name, success);
        e.node = Some(self.ctx.nodename.clone());
        e.node_uuid = Some(self.ctx.uuid.clone());
        e.addr = Some(self.client.to_string());
        if let Some(id) = &self.identity {
            e.user = Some(id.cert.user.clone());
            e.login = Some(id.login.clone());
            if let Some(remote) = &id.cert.remote {
                // A root cluster's user: whose, and the roles theirs map to.
                e = e
                    .with("user_cluster", remote.cluster.as_str())
                    .with("roles", id.authz.roles.join(","));
            }
        }
        e
    }

    /// Refuses a login and records why (`auth`, with the reason).
    async fn refuse_audited(&self, login: &str, user: Option<&str>, reason: &str) -> Auth {
        let mut e = self.event("auth", false).with("reason", reason);
        e.login = Some(login.to_string());
        e.user = user.map(str::to_string);
        self.record_refusal(e).await;
        self.refuse(login, reason)
    }

    /// Queues a refusal's event on the blocking pool: refusals come before
    /// authentication, as fast as anyone can send them, and their synced
    /// writes must not hold the threads that serve everyone else.
    async fn record_refusal(&self, event: AuditEvent) {
        let ctx = self.ctx.clone();
        let _ = tokio::task::spawn_blocking(move || ctx.audit.record(&event)).await;
    }

    /// Whether the user may still open a channel here: the login's
    /// authorization while fresh, else auth's answer now. A refusal (user
    /// removed, role changed) is audited and returned; when auth cannot be
    /// reached the last answer stands, so sessions go on while it
    /// restarts.
    async fn still_allowed(&mut self) -> Result<(), String> {
        let Some(id) = self.identity.as_ref() else {
            return Err("not authenticated".into());
        };
        if id.authorized_at.elapsed() < AUTHZ_FRESH {
            return Ok(());
        }
        let (user, login) = (id.cert.user.clone(), id.login.clone());
        let authz = match self.authorize(&id.cert, &login).await {
            Ok(authz) => authz,
            Err(e) => {
                tracing::warn!(%user, %login, error = %e, "cannot re-check access; the login's authorization stands");
                return Ok(());
            }
        };
        if !authz.allowed {
            let reason = format!("access revoked: {}", authz.reason);
            self.ctx
                .audit
                .record(&self.event("auth", false).with("reason", reason.as_str()));
            tracing::warn!(%user, %login, client = %self.client, %reason, "channel refused");
            return Err(reason);
        }
        if let Some(id) = self.identity.as_mut() {
            id.authz = authz;
            id.authorized_at = std::time::Instant::now();
        }
        Ok(())
    }

    /// Starts a session channel's process: audits its start (no event, no
    /// session), opens its recording, then runs it in a task of its own
    /// (`launch.rs`) that reports its end.
    async fn start(
        &mut self,
        channel: ChannelId,
        launch: Launch,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let (Some(id), Some(state)) = (self.identity.as_ref(), self.channels.get(&channel)) else {
            return session.channel_failure(channel);
        };
        if state.input.is_some() {
            // One process per channel.
            return session.channel_failure(channel);
        }
        let session_id = uuid::Uuid::new_v4().to_string();
        let pty = match launch {
            Launch::Subsystem(..) => None,
            _ if id.cert.permit_pty => state.pty.clone(),
            _ => None,
        };
        let (user, login) = (id.cert.user.clone(), id.login.clone());
        let mut template = self.event("session.start", true);
        template.session_id = Some(session_id.clone());
        if let Err(e) = launch::audit_start(&self.ctx, &template, &launch, pty.as_ref()) {
            tracing::error!(error = %e, "cannot queue session.start; session refused");
            return session.channel_failure(channel);
        }
        let mode = self.ctx.recording_mode();
        let meta = RecordingMeta {
            session_id: session_id.clone(),
            user: user.clone(),
            login: login.clone(),
            node: self.ctx.nodename.clone(),
            node_uuid: None,
            start: jaunt_sys::clock::now(),
            end: None,
            size: 0,
            truncated: false,
        };
        let Ok(recorder) = launch::recorder(&self.ctx, mode, pty.as_ref(), &meta) else {
            return session.channel_failure(channel);
        };
        let info = SessionInfo {
            session_id: session_id.clone(),
            user,
            login,
            cluster: self.ctx.cluster.clone(),
            host_uuid: self.ctx.uuid.clone(),
            proxy_addr: self.ctx.proxy_addr.clone(),
            client: self.client,
            server: self.server,
            agent_socket: self.agent.as_ref().map(|a| a.socket().to_path_buf()),
        };
        let Some(state) = self.channels.get_mut(&channel) else {
            return session.channel_failure(channel);
        };
        let (tx, rx) = mpsc::channel(64);
        state.input = Some(tx.clone());
        state.session_id = Some(session_id);
        let running = launch::Running {
            ctx: self.ctx.clone(),
            channel,
            handle: session.handle(),
            template,
            launch,
            info,
            pty,
            env: state.env.clone(),
            recorder,
            sync: mode == RecordingMode::NodeSync,
            input: tx,
            io: SessionIo {
                out: state.writer.make_writer(),
                err: state.writer.make_writer_ext(Some(1)),
                input: rx,
            },
        };
        session.channel_success(channel)?;
        launch::spawn(running);
        Ok(())
    }

    async fn send_input(&mut self, channel: ChannelId, input: Input) {
        if let Some(tx) = self.channels.get(&channel).and_then(|c| c.input.clone()) {
            // Waiting here is the back-pressure: a process that does not read
            // its input slows its sender, not the node.
            let _ = tx.send(input).await;
        }
    }
}

fn signal_of(sig: &Sig) -> Option<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal as S;
    Some(match sig {
        Sig::ABRT => S::SIGABRT,
        Sig::ALRM => S::SIGALRM,
        Sig::FPE => S::SIGFPE,
        Sig::HUP => S::SIGHUP,
        Sig::ILL => S::SIGILL,
        Sig::INT => S::SIGINT,
        Sig::KILL => S::SIGKILL,
        Sig::PIPE => S::SIGPIPE,
        Sig::QUIT => S::SIGQUIT,
        Sig::SEGV => S::SIGSEGV,
        Sig::TERM => S::SIGTERM,
        Sig::USR1 => S::SIGUSR1,
        Sig::Custom(_) => return None,
    })
}

fn clamp(v: u32) -> u16 {
    v.clamp(1, u16::MAX as u32) as u16
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        Ok(self.refuse(user, "no credentials offered"))
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(self
            .refuse_audited(
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
            .refuse_audited(
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
        let cas = self
            .ctx
            .user_cas
            .read()
            .map(|c| c.clone())
            .unwrap_or_default();
        let now = jaunt_sys::clock::now().max(0) as u64;
        let trusted = self
            .ctx
            .trusted_cas
            .read()
            .map(|c| c.clone())
            .unwrap_or_default();
        let check = UserCertCheck {
            user_cas: &cas,
            trusted: &trusted,
            login,
            now,
            client_ip: Some(self.client.ip()),
        };
        let identity = match check_user_cert(cert, &check) {
            Ok(id) => id,
            Err(refusal) => {
                // The certificate was refused, so its key ID (the user it
                // names) is only a claim: recorded as such, not as `user`.
                let mut e = self
                    .event("auth", false)
                    .with("reason", refusal.to_string())
                    .with("cert_key_id", cert.key_id());
                e.login = Some(login.to_string());
                self.record_refusal(e).await;
                return Ok(self.refuse(login, &refusal.to_string()));
            }
        };
        let authz = match self.authorize(&identity, login).await {
            Ok(a) => a,
            Err(e) => return Ok(self.refuse_audited(login, Some(&identity.user), &e).await),
        };
        if !authz.allowed {
            return Ok(self
                .refuse_audited(
                    login,
                    Some(&identity.user),
                    &format!("user {:?}: {}", identity.user, authz.reason),
                )
                .await);
        }
        if let Err(full) = self
            .ctx
            .count_connection(&identity.user, authz.max_connections)
        {
            return Ok(self
                .refuse_audited(login, Some(&identity.user), &full)
                .await);
        }
        self.counted = Some(identity.user.clone());
        tracing::info!(user = %identity.user, %login, client = %self.client, "user authenticated");
        self.identity = Some(Identity {
            cert: identity,
            login: login.to_string(),
            authz,
            authorized_at: std::time::Instant::now(),
        });
        Ok(Auth::Accept)
    }

    /// The connection ends when its access does: its certificate expires
    /// (the reference product's `disconnect_expired_cert`), or a lock that
    /// stops it comes into force. A kept-open connection must not outlive
    /// the access it was granted for.
    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        let Some(id) = &self.identity else {
            return Ok(());
        };
        self.authenticated
            .store(true, std::sync::atomic::Ordering::Release);
        let left = id
            .cert
            .valid_before
            .saturating_sub(jaunt_sys::clock::now().max(0) as u64);
        let subject = LockSubject {
            user: id.cert.user.clone(),
            roles: id.authz.roles.clone(),
            login: Some(id.login.clone()),
            node: Some(self.ctx.uuid.clone()),
        };
        // Subscribed before the count rises, so the first answer of the
        // lock poll it starts is seen.
        let feed = self.ctx.locks.subscribe();
        self.ctx.live.send_modify(|n| *n += 1);
        jaunt_metrics::metrics()
            .node_connections
            .set(*self.ctx.live.borrow() as i64);
        let handle = session.handle();
        let event = self.event("client.disconnect", true);
        let ctx = self.ctx.clone();
        let mut shutdown = self.ctx.shutdown.subscribe();
        self.ender = Some(tokio::spawn(async move {
            let expiry = tokio::time::sleep(Duration::from_secs(left));
            let (told, reason, lock) = tokio::select! {
                end = access_end(feed, &subject, jaunt_sys::clock::now, expiry) => {
                    let lock = match &end {
                        AccessEnd::Locked(lock) => Some(lock.id.clone()),
                        _ => None,
                    };
                    (end.told(), end.reason(), lock)
                }
                // The end of a graceful stop.
                Ok(message) = shutdown.wait_for(Option::is_some) => {
                    let message = message.clone().unwrap_or_default();
                    (message.clone(), format!("node shutting down: {message}"), None)
                }
            };
            // Nothing to do if the client has gone already.
            let told = handle
                .disconnect(russh::Disconnect::ByApplication, told, String::new())
                .await;
            if told.is_ok() {
                let mut e = event.with("reason", reason.as_str());
                if let Some(lock) = lock {
                    e = e.with("lock", lock);
                }
                tracing::info!(user = ?e.user, %reason, "connection closed");
                ctx.audit.record(&e);
            }
        }));
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.still_allowed().await.is_err() {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let max = self.identity.as_ref().and_then(|i| i.authz.max_sessions);
        if let Some(max) = max.filter(|m| self.channels.len() >= *m as usize) {
            tracing::warn!(client = %self.client, max, "session channel refused: max_sessions reached");
            self.ctx.audit.record(&self.event("auth", false).with(
                "reason",
                format!("a connection may hold {max} sessions at once (max_sessions)"),
            ));
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        let id = channel.id();
        // Input arrives through the handler callbacks; the read half is
        // dropped so russh never waits on a queue nobody reads.
        let (read, writer) = channel.split();
        drop(read);
        self.channels.insert(
            id,
            ChannelState {
                writer,
                pty: None,
                env: Vec::new(),
                input: None,
                session_id: None,
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator: &str,
        _originator_port: u32,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let allowed = self.still_allowed().await.is_ok()
            && self
                .identity
                .as_ref()
                .is_some_and(|i| i.authz.port_forwarding && i.cert.permit_port_forwarding);
        let Ok(port) = u16::try_from(port) else {
            reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        let port_event = |ok: bool| {
            self.event("port", ok)
                .with("destination", format!("{host}:{port}"))
        };
        if !allowed {
            self.ctx.audit.record(&port_event(false).with(
                "reason",
                "port forwarding is not allowed by the user's roles",
            ));
            tracing::warn!(client = %self.client, %host, port, "port forwarding refused: not allowed by the user's roles");
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let login = self
            .identity
            .as_ref()
            .map(|i| i.login.clone())
            .unwrap_or_default();
        let helper = self.ctx.sftp_helper.as_deref();
        let target = match crate::port_forward::connect_as(helper, &login, host, port).await {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(%host, port, error = %e, "port forward target unreachable");
                self.ctx
                    .audit
                    .record(&port_event(false).with("reason", e.to_string()));
                reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        // Recorded before any byte flows.
        if let Err(e) = self.ctx.audit.emit(&port_event(true)) {
            tracing::error!(error = %e, "cannot queue the port event; forward refused");
            reply.reject(russh::ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        }
        reply.accept().await;
        tracing::info!(%host, port, "port forward opened");
        tokio::spawn(async move {
            let mut target = target;
            let mut stream = channel.into_stream();
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut target).await;
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let permitted = self.identity.as_ref().is_some_and(|i| i.cert.permit_pty);
        match self.channels.get_mut(&channel) {
            Some(state) if permitted && state.input.is_none() => {
                state.pty = Some(PtyRequest {
                    term: term.to_string(),
                    cols: clamp(cols),
                    rows: clamp(rows),
                });
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some(id) = self.identity.as_ref() else {
            return Ok(false);
        };
        if !(id.authz.forward_agent && id.cert.permit_agent_forwarding) {
            tracing::warn!(client = %self.client, "agent forwarding refused: not allowed by the user's roles");
            return Ok(false);
        }
        if self.agent.is_none() {
            let user = match os::lookup(&id.login) {
                Ok(u) => u,
                Err(e) => {
                    tracing::info!(error = %e, "agent forwarding refused");
                    return Ok(false);
                }
            };
            match crate::agent_forward::AgentForward::start(&user, session.handle()) {
                Ok(a) => self.agent = Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "agent forwarding failed");
                    return Ok(false);
                }
            }
        }
        tracing::info!(?channel, "agent forwarding on");
        Ok(true)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(state) if session::env_allowed(name) && state.env.len() < 64 => {
                state.env.push((name.to_string(), value.to_string()));
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Launch::Shell, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        self.start(channel, Launch::Exec(command), session).await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match (name, &self.ctx.sftp_helper) {
            ("sftp", Some(helper)) => {
                let launch = Launch::Subsystem(helper.clone(), vec!["sftp-server".to_string()]);
                self.start(channel, launch, session).await
            }
            _ => {
                tracing::info!(subsystem = name, "unknown subsystem refused");
                session.channel_failure(channel)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pw: u32,
        _ph: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(id) = self
            .channels
            .get(&channel)
            .and_then(|c| c.session_id.clone())
        {
            let mut e = self
                .event("resize", true)
                .with("size", format!("{}x{}", clamp(cols), clamp(rows)));
            e.session_id = Some(id);
            self.ctx.audit.record(&e);
        }
        self.send_input(
            channel,
            Input::Resize {
                cols: clamp(cols),
                rows: clamp(rows),
            },
        )
        .await;
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(sig) = signal_of(&signal) {
            self.send_input(channel, Input::Signal(sig)).await;
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.send_input(channel, Input::Data(data.to_vec())).await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.send_input(channel, Input::Eof).await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(input) = self.channels.remove(&channel).and_then(|c| c.input) {
            let _ = input.try_send(Input::Hangup);
        }
        Ok(())
    }
}

impl Drop for Connection {
    /// The connection is gone: an authenticated one is recorded as such.
    fn drop(&mut self) {
        if let Some(ender) = self.ender.take() {
            ender.abort();
            self.ctx.live.send_modify(|n| *n = n.saturating_sub(1));
            jaunt_metrics::metrics()
                .node_connections
                .set(*self.ctx.live.borrow() as i64);
        }
        if let Some(user) = self.counted.take() {
            self.ctx.uncount_connection(&user);
        }
        for state in self.channels.values() {
            if let Some(input) = &state.input {
                let _ = input.try_send(Input::Hangup);
            }
        }
        if self.identity.is_some() {
            self.ctx.audit.record(
                &self
                    .event("client.disconnect", true)
                    .with("reason", "connection closed"),
            );
        }
    }
}

/// Parses OpenSSH public key lines into key data, skipping bad lines.
pub fn parse_ca_keys(lines: &[String]) -> Vec<jaunt_ca::ssh_key::public::KeyData> {
    lines
        .iter()
        .filter_map(|l| PublicKey::from_openssh(l.trim()).ok())
        .map(|k| k.key_data().clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal as S;

    #[test]
    fn ssh_signal_names_map_to_posix_signals() {
        for (sig, want) in [
            (Sig::ABRT, Some(S::SIGABRT)),
            (Sig::ALRM, Some(S::SIGALRM)),
            (Sig::FPE, Some(S::SIGFPE)),
            (Sig::HUP, Some(S::SIGHUP)),
            (Sig::ILL, Some(S::SIGILL)),
            (Sig::INT, Some(S::SIGINT)),
            (Sig::KILL, Some(S::SIGKILL)),
            (Sig::PIPE, Some(S::SIGPIPE)),
            (Sig::QUIT, Some(S::SIGQUIT)),
            (Sig::SEGV, Some(S::SIGSEGV)),
            (Sig::TERM, Some(S::SIGTERM)),
            (Sig::USR1, Some(S::SIGUSR1)),
            // Unknown names are refused, not guessed.
            (Sig::Custom("USR2".into()), None),
            (Sig::Custom("STOP".into()), None),
        ] {
            assert_eq!(signal_of(&sig), want, "{sig:?}");
        }
    }

    #[test]
    fn window_sizes_are_clamped_to_what_a_terminal_takes() {
        for (v, want) in [
            (0, 1),
            (1, 1),
            (80, 80),
            (65_535, 65_535),
            (1 << 20, 65_535),
        ] {
            assert_eq!(clamp(v), want, "{v}");
        }
    }
}
