//! One session channel carried between the user's client and sshd: each
//! side's messages are taken as they come (`fill`) and passed on by one
//! loop per direction (`to_sshd`, `to_user`), so a direction waits only on
//! its own destination. Requests go to sshd with a reply wanted; sshd's
//! replies come back in order and are passed on by the other direction. On
//! the way it audits the session's start, end and SFTP file operations,
//! and records terminal output.

use crate::record::Recording;
use crate::sftp::{SftpOp, SftpWatch};
use jaunt_auth::AuthServer;
use jaunt_types::api::{RecordingMode, env_allowed};
use jaunt_types::audit::{ActiveSession, AuditEvent, RecordingMeta};
use russh::{ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, client, server};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Mutex as AsyncMutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// What a channel needs from its connection.
pub struct ChannelCtx {
    pub auth: Arc<AuthServer>,
    pub node_uuid: String,
    pub node_name: String,
    /// An event with the connection's user, login, node and client.
    pub template: AuditEvent,
    pub permit_pty: bool,
    pub permit_agent: bool,
    pub recording: RecordingMode,
    /// The user's side of the connection.
    pub handle: server::Handle,
}

/// What the next reply from sshd answers.
enum Awaiting {
    Plain,
    /// The request that starts the session (shell, exec, subsystem).
    Start,
}

/// The session a channel runs, once started.
struct Running {
    id: String,
    kind: &'static str,
    command: Option<String>,
    started: Instant,
    template: AuditEvent,
}

#[derive(Default)]
struct Shared {
    awaiting: Mutex<VecDeque<Awaiting>>,
    session: Mutex<Option<Running>>,
    sftp: Mutex<Option<SftpWatch>>,
    recording: AsyncMutex<Option<Recording>>,
    /// When the running session is to be listed again.
    list_again: Mutex<Option<Instant>>,
    /// The user's side closed: nothing sshd sends can be delivered now.
    user_gone: tokio::sync::Notify,
    /// sshd answered SFTP requests (or is gone): see `sftp_turn`.
    answered: tokio::sync::Notify,
    sshd_gone: std::sync::atomic::AtomicBool,
}

struct Pty {
    term: String,
    cols: u32,
    rows: u32,
}

/// Carries one channel until both sides have closed it.
pub async fn pump(
    ctx: ChannelCtx,
    user: russh::Channel<server::Msg>,
    sshd: russh::Channel<client::Msg>,
    user_budget: Budget,
) {
    let id = user.id();
    let (user_read, user_write) = user.split();
    let (sshd_read, sshd_write) = sshd.split();
    let ctx = Arc::new(ctx);
    let shared = Arc::new(Shared::default());
    let (from_user, user_inbox) = inbox(user_budget);
    let (from_sshd, sshd_inbox) = inbox(Budget::new(HELD_FROM_SSHD));
    tokio::join!(
        fill(user_read, from_user),
        fill(sshd_read, from_sshd),
        to_sshd(&ctx, &shared, id, user_inbox, &sshd_write),
        to_user(&ctx, &shared, id, sshd_inbox, &user_write),
    );
    finish(&ctx, &shared, id).await;
}

/// Data a direction holds that its destination has not taken yet. russh
/// grants window on receipt, so the only brake on a sender is the
/// connection's own loop waiting to hand a channel its next message. If
/// both connections' loops could wait on each other's channels (sshd's
/// replies unread while the client's data waits for sshd's window, which
/// sshd's loop cannot grant), the relay would stall for good: sshd's side
/// is therefore taken as it comes, up to this much, which in practice
/// never makes the upstream loop wait.
pub const HELD_FROM_SSHD: usize = 4 * 1024 * 1024;
/// The user's side may wait (its loop then stops reading, which is the
/// brake on the client, with the window below), so little is held.
pub const HELD_FROM_USER: usize = 256 * 1024;

/// The window to grant a client whose channel holds `held` bytes not yet
/// passed on to sshd: the full window when nothing waits, down to a
/// floor that keeps it moving.
pub fn window_for(full: u32, held: usize) -> u32 {
    const FLOOR: u32 = 64 * 1024;
    let held = u32::try_from(held).unwrap_or(u32::MAX);
    full.saturating_sub(held).max(FLOOR.min(full))
}

type Held = (ChannelMsg, Option<OwnedSemaphorePermit>);

/// A direction's messages, taken from its channel as they come.
struct Inbox(mpsc::UnboundedReceiver<Held>);

impl Inbox {
    async fn next(&mut self) -> Option<Held> {
        self.0.recv().await
    }
}

/// The data a direction may hold, as permits of one byte each.
#[derive(Clone)]
pub struct Budget(Arc<Semaphore>, usize);

impl Budget {
    pub fn new(limit: usize) -> Self {
        Budget(Arc::new(Semaphore::new(limit)), limit)
    }

    /// Whether a channel still uses it.
    pub fn is_live(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.1.saturating_sub(self.0.available_permits())
    }
}

/// Where `fill` puts a channel's messages, and the budget of data held.
struct Filler {
    tx: mpsc::UnboundedSender<Held>,
    budget: Arc<Semaphore>,
    limit: usize,
}

fn inbox(budget: Budget) -> (Filler, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Filler {
            tx,
            budget: budget.0,
            limit: budget.1,
        },
        Inbox(rx),
    )
}

/// Takes a channel's messages as they come (data counted against the
/// budget, released once passed on) until the channel or the reader ends.
async fn fill(mut from: ChannelReadHalf, to: Filler) {
    loop {
        let msg = tokio::select! {
            msg = from.wait() => msg,
            _ = to.tx.closed() => return,
        };
        let Some(msg) = msg else { return };
        let size = match &msg {
            ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => data.len(),
            _ => 0,
        };
        let permit = match size {
            0 => None,
            n => {
                let n = n.min(to.limit) as u32;
                match to.budget.clone().acquire_many_owned(n).await {
                    Ok(p) => Some(p),
                    Err(_) => return,
                }
            }
        };
        if to.tx.send((msg, permit)).is_err() {
            return;
        }
    }
}

/// Everything the user sends, checked and passed to sshd.
async fn to_sshd(
    ctx: &ChannelCtx,
    shared: &Shared,
    id: ChannelId,
    mut from: Inbox,
    to: &ChannelWriteHalf<client::Msg>,
) {
    let mut pty: Option<Pty> = None;
    let refuse = || async { ctx.handle.channel_failure(id).await.ok() };
    let expect = |what: Awaiting| {
        if let Ok(mut a) = shared.awaiting.lock() {
            a.push_back(what);
        }
    };
    while let Some((msg, _held)) = from.next().await {
        let sent = match msg {
            ChannelMsg::Data { data } => {
                sftp_turn(shared).await;
                if let Ok(mut sftp) = shared.sftp.lock()
                    && let Some(watch) = sftp.as_mut()
                {
                    watch.client_bytes(&data);
                }
                to.data_bytes(data).await
            }
            ChannelMsg::Eof => to.eof().await,
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } => {
                if !ctx.permit_pty || started(shared) {
                    refuse().await;
                    continue;
                }
                pty = Some(Pty {
                    term: term.clone(),
                    cols: col_width,
                    rows: row_height,
                });
                expect(Awaiting::Plain);
                to.request_pty(
                    true,
                    &term,
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                    &terminal_modes,
                )
                .await
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } => {
                if !env_allowed(&variable_name) {
                    refuse().await;
                    continue;
                }
                expect(Awaiting::Plain);
                to.set_env(true, variable_name, variable_value).await
            }
            ChannelMsg::RequestShell { .. } => {
                if !start(ctx, shared, Start::Shell, pty.as_ref()).await {
                    refuse().await;
                    continue;
                }
                expect(Awaiting::Start);
                to.request_shell(true).await
            }
            ChannelMsg::Exec { command, .. } => {
                let text = String::from_utf8_lossy(&command).into_owned();
                if !start(ctx, shared, Start::Exec(text), pty.as_ref()).await {
                    refuse().await;
                    continue;
                }
                expect(Awaiting::Start);
                to.exec(true, command).await
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                if name != "sftp" || !start(ctx, shared, Start::Sftp, None).await {
                    tracing::info!(subsystem = %name, "subsystem refused");
                    refuse().await;
                    continue;
                }
                expect(Awaiting::Start);
                to.request_subsystem(true, name).await
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                resized(ctx, shared, col_width, row_height).await;
                to.window_change(col_width, row_height, pix_width, pix_height)
                    .await
            }
            ChannelMsg::Signal { signal } => to.signal(signal).await,
            // The connection's handler has answered it already.
            ChannelMsg::AgentForward { .. } if ctx.permit_agent => to.agent_forward(false).await,
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    // A client gone while its command runs: hang it up, as a closing
    // terminal would (sshd itself waits for the command to end).
    let exited = shared
        .session
        .lock()
        .map(|s| {
            s.as_ref().is_none_or(|r| {
                r.template.fields.contains_key("exit_status")
                    || r.template.fields.contains_key("exit_signal")
            })
        })
        .unwrap_or(true);
    if !exited {
        let _ = to.signal(russh::Sig::HUP).await;
    }
    let _ = to.eof().await;
    let _ = to.close().await;
    shared.user_gone.notify_one();
}

/// Everything sshd sends, passed to the user (and recorded).
async fn to_user(
    ctx: &ChannelCtx,
    shared: &Shared,
    id: ChannelId,
    mut from: Inbox,
    to: &ChannelWriteHalf<server::Msg>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let held = tokio::select! {
            held = from.next() => held,
            _ = shared.user_gone.notified() => break,
            _ = tick.tick() => {
                if !send_recording(ctx, shared, id, false).await {
                    break;
                }
                keep_listed(ctx, shared).await;
                continue;
            }
        };
        let Some((msg, _held)) = held else { break };
        let handle = &ctx.handle;
        let sent = match msg {
            ChannelMsg::Data { data } => {
                let ops = match shared.sftp.lock() {
                    Ok(mut sftp) => sftp
                        .as_mut()
                        .map(|w| w.server_bytes(&data))
                        .unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                shared.answered.notify_waiters();
                audit_sftp(ctx, shared, ops).await;
                let due = match shared.recording.lock().await.as_mut() {
                    Some(r) => {
                        r.output(&data);
                        r.due()
                    }
                    None => false,
                };
                if due && !send_recording(ctx, shared, id, false).await {
                    break;
                }
                to.data_bytes(data).await.map_err(|_| ())
            }
            ChannelMsg::ExtendedData { data, ext } => {
                to.extended_data_bytes(ext, data).await.map_err(|_| ())
            }
            ChannelMsg::Eof => handle.eof(id).await,
            ChannelMsg::Success => {
                awaited(shared);
                handle.channel_success(id).await
            }
            ChannelMsg::Failure => {
                if let Some(Awaiting::Start) = awaited(shared) {
                    tracing::info!(node = %ctx.node_name, "sshd refused the session request");
                }
                handle.channel_failure(id).await
            }
            ChannelMsg::ExitStatus { exit_status } => {
                set_exit(shared, Exit::Code(exit_status));
                handle.exit_status_request(id, exit_status).await
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                set_exit(shared, Exit::Signal(format!("{signal_name:?}")));
                handle
                    .exit_signal_request(id, signal_name, core_dumped, error_message, lang_tag)
                    .await
            }
            ChannelMsg::Close => break,
            _ => Ok(()),
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = to.close().await;
    shared
        .sshd_gone
        .store(true, std::sync::atomic::Ordering::Release);
    shared.answered.notify_waiters();
}

/// SFTP requests sent to sshd and not yet answered, at most, before more
/// are sent: what OpenSSH's sftp keeps in flight (64) with room for
/// clients that send smaller writes. PuTTY's psftp sends as many as its
/// window allows, and OpenSSH's SFTP server slows down with every request
/// queued in it (it copies its whole input queue per request): uploads
/// crawled at ~400 KB/s, through the proxy and sometimes without it.
const SFTP_IN_FLIGHT: usize = 256;
/// How long to wait for an answer before sending anyway, so a request
/// the watcher cannot pair with its reply never holds a transfer up.
const SFTP_TURN_WAIT: Duration = Duration::from_millis(500);

/// Waits while sshd has `SFTP_IN_FLIGHT` requests unanswered.
async fn sftp_turn(shared: &Shared) {
    let deadline = tokio::time::Instant::now() + SFTP_TURN_WAIT;
    loop {
        let answered = shared.answered.notified();
        tokio::pin!(answered);
        answered.as_mut().enable();
        let in_flight = shared
            .sftp
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(SftpWatch::in_flight))
            .unwrap_or(0);
        if in_flight < SFTP_IN_FLIGHT || shared.sshd_gone.load(std::sync::atomic::Ordering::Acquire)
        {
            return;
        }
        if tokio::time::timeout_at(deadline, answered).await.is_err() {
            tracing::debug!(in_flight, "SFTP replies late; sending on");
            return;
        }
    }
}

fn awaited(shared: &Shared) -> Option<Awaiting> {
    shared.awaiting.lock().ok().and_then(|mut a| a.pop_front())
}

fn started(shared: &Shared) -> bool {
    shared.session.lock().map(|s| s.is_some()).unwrap_or(true)
}

enum Start {
    Shell,
    Exec(String),
    Sftp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_shrinks_with_what_is_held_down_to_a_floor() {
        let full = 8 * 1024 * 1024;
        assert_eq!(window_for(full, 0), full);
        assert_eq!(window_for(full, 1024 * 1024), 7 * 1024 * 1024);
        assert_eq!(window_for(full, 8 * 1024 * 1024), 64 * 1024);
        assert_eq!(window_for(full, 2 * full as usize), 64 * 1024);
        assert_eq!(
            window_for(1000, 0),
            1000,
            "never above the configured window"
        );
        assert_eq!(window_for(1000, 5000), 1000);
    }
}

#[derive(Debug, Clone)]
enum Exit {
    Code(u32),
    Signal(String),
}

/// The exit sshd reported, kept with the session for its end event.
fn set_exit(shared: &Shared, exit: Exit) {
    if let Ok(mut s) = shared.session.lock()
        && let Some(r) = s.as_mut()
    {
        r.template = match &exit {
            Exit::Code(c) => r.template.clone().with("exit_status", *c),
            Exit::Signal(name) => r.template.clone().with("exit_signal", name.clone()),
        };
    }
}

/// Audits a session's start (durably, before sshd is asked) and opens its
/// recording; `false`: it must not run.
async fn start(ctx: &ChannelCtx, shared: &Shared, what: Start, pty: Option<&Pty>) -> bool {
    if started(shared) {
        return false;
    }
    let session_id = uuid::Uuid::new_v4().to_string();
    let mut template = ctx.template.clone();
    template.session_id = Some(session_id.clone());
    let (kind, command) = match &what {
        Start::Shell => ("shell", None),
        Start::Exec(c) => ("exec", Some(c.clone())),
        Start::Sftp => ("sftp", None),
    };
    let mut event = like(ctx, &template, "session.start", true)
        .with("kind", kind)
        .with("interactive", pty.is_some());
    if let Some(p) = pty {
        event = event.with("size", format!("{}x{}", p.cols, p.rows));
    }
    if let Some(c) = &command {
        event = event.with("command", c.clone());
    }
    if let Err(e) = ctx.auth.emit(event).await {
        tracing::error!(error = %e, "cannot write session.start; session refused");
        return false;
    }
    if let Start::Sftp = what {
        let _ = ctx
            .auth
            .emit(like(ctx, &template, "subsystem", true).with("name", "sftp"))
            .await;
        if let Ok(mut sftp) = shared.sftp.lock() {
            *sftp = Some(SftpWatch::default());
        }
    }
    if let Some(p) = pty.filter(|_| ctx.recording != RecordingMode::Off) {
        let meta = RecordingMeta {
            session_id: session_id.clone(),
            user: template.user.clone().unwrap_or_default(),
            login: template.login.clone().unwrap_or_default(),
            node: ctx.node_name.clone(),
            node_uuid: Some(ctx.node_uuid.clone()),
            start: jaunt_sys::clock::now(),
            end: None,
            size: 0,
            truncated: false,
        };
        let clamp = |v: u32| v.clamp(1, u16::MAX as u32) as u16;
        let mut recording = Recording::new(
            ctx.auth.clone(),
            &ctx.node_uuid,
            meta,
            clamp(p.cols),
            clamp(p.rows),
            &p.term,
        );
        // node-sync: auth holds the recording's start before it runs.
        if ctx.recording == RecordingMode::NodeSync
            && let Err(e) = recording.send(false).await
        {
            tracing::warn!(error = %e, "recording not taken; session refused (node-sync)");
            return false;
        }
        *shared.recording.lock().await = Some(recording);
    }
    tracing::info!(session = %session_id, user = ?template.user, login = ?template.login, node = %ctx.node_name, kind, "agentless session started");
    let running = Running {
        id: session_id,
        kind,
        command,
        started: Instant::now(),
        template,
    };
    tell_running(ctx, shared, &running).await;
    if let Ok(mut s) = shared.session.lock() {
        *s = Some(running);
    }
    true
}

/// Lists the session among the running ones (`jsh sessions ls`), and
/// says when to list it again.
async fn tell_running(ctx: &ChannelCtx, shared: &Shared, running: &Running) {
    let session = ActiveSession {
        id: running.id.clone(),
        user: running.template.user.clone().unwrap_or_default(),
        login: running.template.login.clone().unwrap_or_default(),
        node: ctx.node_name.clone(),
        node_uuid: ctx.node_uuid.clone(),
        kind: running.kind.to_string(),
        start: jaunt_sys::clock::now() - running.started.elapsed().as_secs() as i64,
        client: running.template.addr.clone().unwrap_or_default(),
    };
    match ctx.auth.put_running_session(&ctx.node_uuid, session).await {
        Ok(every) => {
            if let Ok(mut next) = shared.list_again.lock() {
                *next = Some(Instant::now() + every);
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot list the running session"),
    }
}

/// Lists the running session again when it is due.
async fn keep_listed(ctx: &ChannelCtx, shared: &Shared) {
    let due = shared
        .list_again
        .lock()
        .ok()
        .and_then(|n| *n)
        .is_some_and(|at| Instant::now() >= at);
    if !due {
        return;
    }
    let running = shared.session.lock().ok().and_then(|s| {
        s.as_ref().map(|r| Running {
            id: r.id.clone(),
            kind: r.kind,
            command: None,
            started: r.started,
            template: r.template.clone(),
        })
    });
    if let Some(r) = running {
        tell_running(ctx, shared, &r).await;
    }
}

async fn resized(ctx: &ChannelCtx, shared: &Shared, cols: u32, rows: u32) {
    let clamp = |v: u32| v.clamp(1, u16::MAX as u32) as u16;
    if let Some(r) = shared.recording.lock().await.as_mut() {
        r.resize(clamp(cols), clamp(rows));
    }
    let template = shared
        .session
        .lock()
        .ok()
        .and_then(|s| s.as_ref().map(|r| r.template.clone()));
    if let Some(t) = template {
        let e =
            like(ctx, &t, "resize", true).with("size", format!("{}x{}", clamp(cols), clamp(rows)));
        let _ = ctx.auth.emit(e).await;
    }
}

/// Sends the recording's held text; `false` when a node-sync session must
/// end because auth did not take it.
async fn send_recording(ctx: &ChannelCtx, shared: &Shared, id: ChannelId, complete: bool) -> bool {
    let mut guard = shared.recording.lock().await;
    let Some(r) = guard.as_mut() else {
        return true;
    };
    match r.send(complete).await {
        Ok(()) => true,
        Err(e) if ctx.recording == RecordingMode::NodeSync => {
            tracing::warn!(error = %e, "recording not taken; ending the session (node-sync)");
            let text = format!(
                "\r\nERROR: this cluster records every session (recording: node-sync) and the auth service cannot take this session's recording ({e}); the session is ended.\r\n"
            );
            let _ = ctx.handle.extended_data(id, 1, text.into_bytes()).await;
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "recording piece not taken; kept for later");
            true
        }
    }
}

/// An event about the same session as `template`, from an agentless node.
fn like(ctx: &ChannelCtx, template: &AuditEvent, name: &str, success: bool) -> AuditEvent {
    ctx.auth
        .event(name, success)
        .about(template)
        .with("server_sub_kind", "openssh")
}

async fn audit_sftp(ctx: &ChannelCtx, shared: &Shared, ops: Vec<SftpOp>) {
    if ops.is_empty() {
        return;
    }
    let template = shared
        .session
        .lock()
        .ok()
        .and_then(|s| s.as_ref().map(|r| r.template.clone()));
    let Some(template) = template else { return };
    for op in ops {
        let e = like(ctx, &template, "sftp", op.success).with_sftp(op);
        let _ = ctx.auth.emit(e).await;
    }
}

/// The session's end: SFTP files left open, the recording's last piece,
/// `exec` and `session.end`.
async fn finish(ctx: &ChannelCtx, shared: &Shared, id: ChannelId) {
    let ops = shared
        .sftp
        .lock()
        .ok()
        .and_then(|mut s| s.as_mut().map(SftpWatch::finish))
        .unwrap_or_default();
    audit_sftp(ctx, shared, ops).await;
    let recorded = shared.recording.lock().await.is_some();
    if recorded {
        send_recording(ctx, shared, id, true).await;
    }
    let Some(running) = shared.session.lock().ok().and_then(|mut s| s.take()) else {
        return;
    };
    if let Err(e) = ctx
        .auth
        .remove_running_session(&ctx.node_uuid, &running.id)
        .await
    {
        tracing::debug!(error = %e, "cannot unlist the ended session");
    }
    let ok = running
        .template
        .fields
        .get("exit_status")
        .and_then(|v| v.as_u64())
        == Some(0);
    if let Some(command) = &running.command {
        let e = like(ctx, &running.template, "exec", ok).with("command", command.clone());
        let _ = ctx.auth.emit(e).await;
    }
    let user = running.template.user.clone().unwrap_or_default();
    let e = like(ctx, &running.template, "session.end", true)
        .with("kind", running.kind)
        .with("participants", vec![user])
        .with("duration_ms", running.started.elapsed().as_millis() as u64)
        .with("recorded", recorded);
    let _ = ctx.auth.emit(e).await;
    tracing::info!(session = %running.id, node = %ctx.node_name, "agentless session ended");
}
