//! A session channel's life after the handler accepted it: its start
//! audited before anything runs, its recording opened, the process run as
//! the OS user (with node-sync streaming when the cluster records every
//! session), and its end reported: audit events on disk, then the exit
//! status to the client. The russh handler (`server.rs`) only decides.

use crate::context::NodeContext;
use crate::os;
use crate::session::SharedRecorder;
use crate::session::{
    self, Exit, Input, Launch, Observers, PtyRequest, SessionInfo, SessionIo, SessionSpec,
};
use crate::sftp::SftpRecord;
use jaunt_store::StoreError;
use jaunt_types::api::RecordingMode;
use jaunt_types::audit::{ActiveSession, AuditEvent, RecordingMeta};
use russh::{ChannelId, Sig};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

/// The kind of session, as audit events and logs name it.
fn kind_of(launch: &Launch) -> &'static str {
    match launch {
        Launch::Shell => "shell",
        Launch::Exec(_) => "exec",
        Launch::Subsystem(..) => "sftp",
    }
}

/// Queues `session.start` (and `subsystem` for SFTP) durably. An error
/// means the session must not run: an allowed action is never unaudited.
pub fn audit_start(
    ctx: &NodeContext,
    template: &AuditEvent,
    launch: &Launch,
    pty: Option<&PtyRequest>,
) -> Result<(), StoreError> {
    let mut start = template
        .clone()
        .with("kind", kind_of(launch))
        .with("interactive", pty.is_some());
    if let Some(p) = pty {
        start = start.with("size", format!("{}x{}", p.cols, p.rows));
    }
    if let Launch::Exec(command) = launch {
        start = start.with("command", command.clone());
    }
    ctx.audit.emit(&start)?;
    if let Launch::Subsystem(..) = launch {
        ctx.audit.record(
            &ctx.audit
                .like(template, "subsystem", true)
                .with("name", "sftp"),
        );
    }
    Ok(())
}

/// The recording of a terminal session, unless recording is off. `Err`:
/// it cannot be recorded and the cluster requires it (node-sync).
pub fn recorder(
    ctx: &NodeContext,
    mode: RecordingMode,
    pty: Option<&PtyRequest>,
    meta: &RecordingMeta,
) -> Result<Option<SharedRecorder>, ()> {
    let Some(p) = pty.filter(|_| mode != RecordingMode::Off) else {
        return Ok(None);
    };
    match ctx.spool.create(meta, p.cols, p.rows, &p.term) {
        Ok(r) => Ok(Some(Arc::new(std::sync::Mutex::new(r)))),
        Err(e) if mode == RecordingMode::NodeSync => {
            tracing::error!(error = %e, "cannot record; session refused (recording: node-sync)");
            Err(())
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record this session");
            Ok(None)
        }
    }
}

/// An accepted session channel, ready to run.
pub struct Running<W1, W2> {
    pub ctx: Arc<NodeContext>,
    pub channel: ChannelId,
    pub handle: russh::server::Handle,
    /// The `session.start` event the session's other events copy.
    pub template: AuditEvent,
    pub launch: Launch,
    pub info: SessionInfo,
    pub pty: Option<PtyRequest>,
    pub env: Vec<(String, String)>,
    pub recorder: Option<SharedRecorder>,
    /// node-sync: auth must take the recording as it is made.
    pub sync: bool,
    /// The session's input, for node-sync to end it.
    pub input: mpsc::Sender<Input>,
    pub io: SessionIo<W1, W2>,
}

/// Runs the session in a task of its own and reports its end.
pub fn spawn<W1, W2>(running: Running<W1, W2>)
where
    W1: AsyncWrite + Unpin + Send + 'static,
    W2: AsyncWrite + Unpin + Send + 'static,
{
    let info = &running.info;
    let kind = kind_of(&running.launch);
    tracing::info!(user = %info.user, login = %info.login, session = %info.session_id, kind, "session started");
    running.ctx.session_started(
        ActiveSession {
            id: info.session_id.clone(),
            user: info.user.clone(),
            login: info.login.clone(),
            node: running.ctx.nodename.clone(),
            node_uuid: running.ctx.uuid.clone(),
            kind: kind.to_string(),
            start: jaunt_sys::clock::now(),
            client: info.client.to_string(),
        },
        &running.template,
    );
    // Every line logged while the session runs (its end, its recording,
    // its SFTP operations) carries the session and the user, also in the
    // JSON log's span fields.
    let span = tracing::info_span!(
        "session",
        session = %info.session_id,
        user = %info.user,
        login = %info.login
    );
    tokio::spawn(tracing::Instrument::instrument(drive(running), span));
}

/// The session from its start to the client hearing how it ended.
async fn drive<W1, W2>(running: Running<W1, W2>)
where
    W1: AsyncWrite + Unpin + Send + 'static,
    W2: AsyncWrite + Unpin + Send + 'static,
{
    let Running {
        ctx,
        channel,
        handle,
        template,
        launch,
        info,
        pty,
        env,
        recorder,
        sync,
        input,
        io,
    } = running;
    let say = |text: String| {
        let handle = handle.clone();
        async move {
            let _ = handle.extended_data(channel, 1, text.into_bytes()).await;
        }
    };
    let session_id = info.session_id.clone();
    let ended = Ended {
        kind: kind_of(&launch),
        command: match &launch {
            Launch::Exec(c) => Some(c.clone()),
            _ => None,
        },
        user: info.user.clone(),
        recorded: recorder.is_some(),
        started: std::time::Instant::now(),
    };
    // Kept to ask at the end whether the recording stopped part way.
    let recording = recorder.clone();
    let (audit_tx, audit_rx) = mpsc::unbounded_channel();
    let observers = Observers {
        audit_lines: matches!(launch, Launch::Subsystem(..)).then_some(audit_tx),
        recorder,
    };
    let sftp_audit = tokio::spawn(tracing::Instrument::in_current_span(sftp_events(
        ctx.clone(),
        template.clone(),
        audit_rx,
    )));
    let synced = match sync && ended.recorded {
        true => Some(sync_start(&ctx, &session_id).await),
        false => None,
    };
    let exit = match synced {
        Some(Err(e)) => {
            tracing::warn!(session = %session_id, error = %e, "recording not taken; session refused (node-sync)");
            say(sync_failure(&e)).await;
            Exit::Code(255)
        }
        synced => {
            let run = run_as_user(launch, info, pty, env, observers, io, &say);
            match synced {
                Some(Ok(sent)) => stream_while(&ctx, &session_id, sent, run, &input, &say).await,
                _ => run.await,
            }
        }
    };
    // The session's end is on disk before the client hears of it.
    let _ = sftp_audit.await;
    if ended.recorded {
        ctx.spool.finish(&session_id);
    }
    ctx.session_ended(&session_id);
    let truncated = recording
        .as_ref()
        .is_some_and(|r| r.lock().map(|r| r.truncated()).unwrap_or(false));
    ended.audit(&ctx, &template, &exit, truncated);
    tracing::info!(exit = ?exit, truncated, "session ended");
    tell_exit(&handle, channel, &exit).await;
}

/// Looks the login up and runs the session as that user; a failure to
/// start is told to the client.
async fn run_as_user<W1, W2, S, SF>(
    launch: Launch,
    info: SessionInfo,
    pty: Option<PtyRequest>,
    client_env: Vec<(String, String)>,
    observers: Observers,
    io: SessionIo<W1, W2>,
    say: &S,
) -> Exit
where
    W1: AsyncWrite + Unpin + Send + 'static,
    W2: AsyncWrite + Unpin + Send + 'static,
    S: Fn(String) -> SF,
    SF: std::future::Future<Output = ()>,
{
    let user = match os::lookup(&info.login) {
        Ok(user) => user,
        Err(e) => {
            say(format!("Failed to launch: {e}\r\n")).await;
            return Exit::Code(1);
        }
    };
    let spec = SessionSpec {
        launch,
        info,
        user,
        pty,
        client_env,
        observers,
    };
    match session::run(spec, io).await {
        Ok(exit) => exit,
        Err(e) => {
            tracing::warn!(error = %e, "session failed to start");
            say(format!("Failed to launch: {e}\r\n")).await;
            Exit::Code(255)
        }
    }
}

/// What the end-of-session events say besides the exit.
struct Ended {
    kind: &'static str,
    command: Option<String>,
    user: String,
    recorded: bool,
    started: std::time::Instant,
}

impl Ended {
    /// `exec` (for a command) and `session.end`, with how it exited.
    fn audit(&self, ctx: &NodeContext, template: &AuditEvent, exit: &Exit, truncated: bool) {
        let status = |e: AuditEvent| match exit {
            Exit::Code(c) => e.with("exit_status", *c),
            Exit::Signal(s) => e.with("exit_signal", s.clone()),
        };
        let ok = matches!(exit, Exit::Code(0));
        if let Some(command) = &self.command {
            ctx.audit.record(&status(
                ctx.audit
                    .like(template, "exec", ok)
                    .with("command", command.clone()),
            ));
        }
        let mut end = ctx
            .audit
            .like(template, "session.end", true)
            .with("kind", self.kind)
            .with("participants", vec![self.user.clone()])
            .with("duration_ms", self.started.elapsed().as_millis() as u64)
            .with("recorded", self.recorded);
        if truncated {
            end = end.with("recording_truncated", true);
        }
        ctx.audit.record(&status(end));
    }
}

/// Tells the client how the session ended, then closes the channel.
async fn tell_exit(handle: &russh::server::Handle, channel: ChannelId, exit: &Exit) {
    match exit {
        Exit::Code(code) => {
            let _ = handle.exit_status_request(channel, *code).await;
        }
        Exit::Signal(name) => {
            let _ = handle
                .exit_signal_request(
                    channel,
                    Sig::Custom(name.clone()),
                    false,
                    String::new(),
                    String::new(),
                )
                .await;
        }
    }
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

/// Why a node-sync session ends, as the user sees it.
fn sync_failure(reason: &str) -> String {
    format!(
        "\r\nERROR: this cluster records every session (recording: node-sync) and the auth \
         service cannot take this session's recording ({reason}); the session is ended.\r\n"
    )
}

/// node-sync: auth must hold the recording's start before the session runs.
async fn sync_start(ctx: &NodeContext, id: &str) -> Result<u64, String> {
    let api = ctx.api_client().ok_or("no API client")?;
    ctx.spool
        .send(&api, id, 0, false)
        .await
        .map_err(|e| e.to_string())
}

/// node-sync: runs the session while streaming its recording to auth every
/// quarter second; if auth stops taking it, the session is killed.
async fn stream_while<F, S, SF>(
    ctx: &NodeContext,
    id: &str,
    mut sent: u64,
    run: F,
    input: &mpsc::Sender<Input>,
    say: &S,
) -> Exit
where
    F: std::future::Future<Output = Exit>,
    S: Fn(String) -> SF,
    SF: std::future::Future<Output = ()>,
{
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            exit = &mut run => return exit,
            _ = tick.tick() => {
                let result = match ctx.api_client() {
                    Some(api) => ctx.spool.send(&api, id, sent, false).await.map_err(|e| e.to_string()),
                    None => Err("no API client".to_string()),
                };
                match result {
                    Ok(n) => sent = n,
                    Err(e) => {
                        tracing::warn!(session = %id, error = %e, "recording not taken; ending the session (node-sync)");
                        say(sync_failure(&e)).await;
                        let _ = input.send(Input::Signal(nix::sys::signal::Signal::SIGKILL)).await;
                        return (&mut run).await;
                    }
                }
            }
        }
    }
}

/// Turns the SFTP helper's audit lines into `sftp` events.
async fn sftp_events(
    ctx: Arc<NodeContext>,
    template: AuditEvent,
    mut lines: mpsc::UnboundedReceiver<String>,
) {
    while let Some(line) = lines.recv().await {
        let record: SftpRecord = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "malformed SFTP audit line");
                continue;
            }
        };
        let e = ctx
            .audit
            .like(&template, "sftp", record.success)
            .with_sftp(record);
        // An SFTP client can make thousands of operations: their synced
        // writes go to the blocking pool, one at a time, in order.
        let ctx = ctx.clone();
        let _ = tokio::task::spawn_blocking(move || ctx.audit.record(&e)).await;
    }
}
