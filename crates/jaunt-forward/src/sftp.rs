//! SFTP file operations read off a forwarded `sftp` subsystem, for the
//! audit log: the proxy sees both directions of the stream (requests from
//! the client, replies from sshd) and pairs them by request ID. Pure: bytes
//! in, operations out. It never holds a transfer's data: READ and WRITE
//! payloads are counted and skipped, and what it keeps (pending requests,
//! open handles) is bounded, so a hostile client cannot grow it.

use std::collections::HashMap;

pub use jaunt_types::audit::SftpOp;

/// An operation on `path`, before its details.
fn op(action: &str, path: &str, success: bool) -> SftpOp {
    SftpOp {
        action: action.to_string(),
        path: path.to_string(),
        success,
        target: None,
        bytes: None,
        error: None,
    }
}

// Packet types (draft-ietf-secsh-filexfer-02, the version OpenSSH speaks).
const OPEN: u8 = 3;
const CLOSE: u8 = 4;
const READ: u8 = 5;
const WRITE: u8 = 6;
const LSTAT: u8 = 7;
const FSTAT: u8 = 8;
const SETSTAT: u8 = 9;
const FSETSTAT: u8 = 10;
const OPENDIR: u8 = 11;
const READDIR: u8 = 12;
const REMOVE: u8 = 13;
const MKDIR: u8 = 14;
const RMDIR: u8 = 15;
const REALPATH: u8 = 16;
const STAT: u8 = 17;
const RENAME: u8 = 18;
const READLINK: u8 = 19;
const SYMLINK: u8 = 20;
const EXTENDED: u8 = 200;
const STATUS: u8 = 101;
const HANDLE: u8 = 102;
const DATA: u8 = 103;
const NAME: u8 = 104;

/// The largest non-data packet parsed; larger ones are skipped unread
/// (paths are at most a few KiB).
const MAX_PARSED: usize = 64 * 1024;
/// Requests waiting for their reply; OpenSSH keeps 64 in flight.
const MAX_PENDING: usize = 4096;
/// Open files and directories followed.
const MAX_HANDLES: usize = 1024;

/// A request waiting for its reply.
#[derive(Debug, Clone)]
struct Pending {
    kind: u8,
    path: String,
    target: Option<String>,
    /// READ and WRITE: the handle, and for WRITE the bytes sent.
    handle: Option<Vec<u8>>,
    bytes: u64,
}

/// An open file or directory.
#[derive(Debug, Default, Clone)]
struct Open {
    path: String,
    dir: bool,
    read: u64,
    written: u64,
    listed: bool,
}

/// Reassembles one direction's packets, skipping payloads it need not
/// keep.
#[derive(Default)]
struct Framer {
    buf: Vec<u8>,
    /// Payload bytes still to pass over.
    skip: usize,
}

/// What one packet (or its head) says.
struct Packet<'a> {
    kind: u8,
    id: u32,
    body: &'a [u8],
}

/// What the framer does with the bytes it holds.
enum Next {
    /// Needs this many bytes in the buffer before it can decide.
    Want(usize),
    /// A whole packet, or the head of a WRITE or DATA packet followed by
    /// this much payload: handed on, payload skipped.
    Ready { head: usize, payload: usize },
    /// Not worth reading: skip this many bytes from the packet's start.
    Skip(usize),
}

impl Framer {
    /// Feeds bytes; calls `f` with each packet (for WRITE and DATA, the
    /// head only, and the payload's length).
    fn feed(&mut self, mut data: &[u8], f: &mut dyn FnMut(Packet<'_>, u64)) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            match self.next() {
                Next::Want(n) => {
                    let take = (n - self.buf.len()).min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                }
                Next::Ready { head, payload } => {
                    if let Some(p) = packet(&self.buf[..head]) {
                        f(p, payload as u64);
                    }
                    self.buf.clear();
                    self.skip = payload;
                }
                Next::Skip(n) => {
                    self.skip = n.saturating_sub(self.buf.len());
                    self.buf.clear();
                }
            }
        }
        // A decision the last bytes completed.
        if let Next::Ready { head, payload } = self.next() {
            if let Some(p) = packet(&self.buf[..head]) {
                f(p, payload as u64);
            }
            self.buf.clear();
            self.skip = payload;
        }
    }

    fn next(&self) -> Next {
        let have = self.buf.len();
        let Some(len) = self
            .buf
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(|b: [u8; 4]| u32::from_be_bytes(b) as usize)
        else {
            return Next::Want(4);
        };
        let total = 4 + len;
        if len < 5 {
            // Too short to carry a request ID (INIT, VERSION, garbage).
            return Next::Skip(total);
        }
        let Some(&kind) = self.buf.get(4) else {
            return Next::Want(5);
        };
        let head = match kind {
            // type, ID, handle (string), offset, data length
            WRITE => match self.buf.get(9..13) {
                None => return Next::Want(13),
                Some(h) => {
                    let handle = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
                    if handle > 256 {
                        return Next::Skip(total);
                    }
                    4 + 1 + 4 + 4 + handle + 8 + 4
                }
            },
            // type, ID, data length
            DATA => 4 + 1 + 4 + 4,
            _ if len > MAX_PARSED => return Next::Skip(total),
            _ => total,
        };
        if head > total {
            return Next::Skip(total);
        }
        if have < head {
            return Next::Want(head);
        }
        Next::Ready {
            head,
            payload: total - head,
        }
    }
}

fn packet(raw: &[u8]) -> Option<Packet<'_>> {
    let kind = *raw.get(4)?;
    let id = u32::from_be_bytes(raw.get(5..9)?.try_into().ok()?);
    Some(Packet {
        kind,
        id,
        body: raw.get(9..)?,
    })
}

/// Reads an SSH `string` off the front of `b`.
fn string(b: &mut &[u8]) -> Option<Vec<u8>> {
    let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let s = b.get(4..4 + len)?.to_vec();
    *b = &b[4 + len..];
    Some(s)
}

fn text(b: &mut &[u8]) -> Option<String> {
    string(b).map(|s| String::from_utf8_lossy(&s).into_owned())
}

/// Both directions of one SFTP session.
#[derive(Default)]
pub struct SftpWatch {
    requests: Framer,
    replies: Framer,
    pending: HashMap<u32, Pending>,
    handles: HashMap<Vec<u8>, Open>,
}

impl SftpWatch {
    /// Bytes the client sent.
    pub fn client_bytes(&mut self, data: &[u8]) {
        let mut seen = Vec::new();
        self.requests
            .feed(data, &mut |p, payload| seen.push(request(&p, payload)));
        for (id, pending) in seen.into_iter().flatten() {
            if self.pending.len() < MAX_PENDING {
                self.pending.insert(id, pending);
            }
        }
    }

    /// Requests sent and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Bytes sshd sent back; the operations they complete.
    pub fn server_bytes(&mut self, data: &[u8]) -> Vec<SftpOp> {
        let mut replies = Vec::new();
        self.replies.feed(data, &mut |p, payload| {
            replies.push((p.kind, p.id, p.body.to_vec(), payload))
        });
        let mut ops = Vec::new();
        for (kind, id, body, payload) in replies {
            if let Some(pending) = self.pending.remove(&id) {
                self.reply(pending, kind, &body, payload, &mut ops);
            }
        }
        ops
    }

    /// The session ended: files still open are reported as read and
    /// written so far (a client that disconnects without closing).
    pub fn finish(&mut self) -> Vec<SftpOp> {
        let mut ops = Vec::new();
        for (_, open) in self.handles.drain() {
            transfer_ops(&open, &mut ops);
        }
        ops
    }

    fn reply(
        &mut self,
        pending: Pending,
        kind: u8,
        body: &[u8],
        payload: u64,
        ops: &mut Vec<SftpOp>,
    ) {
        let status = (kind == STATUS).then(|| status_of(body));
        let ok = matches!(status, None | Some((0, _)));
        let error = status.filter(|(code, _)| *code != 0).map(|(_, m)| m);
        let with_error = |mut op: SftpOp| {
            op.error = error.clone();
            op
        };
        match pending.kind {
            READ => {
                if let Some(open) = pending.handle.and_then(|h| self.handles.get_mut(&h))
                    && kind == DATA
                {
                    open.read += payload;
                }
            }
            WRITE => {
                if let Some(open) = pending.handle.and_then(|h| self.handles.get_mut(&h))
                    && ok
                {
                    open.written += pending.bytes;
                }
            }
            OPEN | OPENDIR => {
                let action = if pending.kind == OPEN {
                    "open"
                } else {
                    "opendir"
                };
                let mut b = body;
                if kind == HANDLE
                    && let Some(h) = string(&mut b)
                    && self.handles.len() < MAX_HANDLES
                {
                    self.handles.insert(
                        h,
                        Open {
                            path: pending.path.clone(),
                            dir: pending.kind == OPENDIR,
                            ..Default::default()
                        },
                    );
                }
                ops.push(with_error(op(action, &pending.path, kind == HANDLE)));
            }
            READDIR => {
                if let Some(open) = pending.handle.and_then(|h| self.handles.get_mut(&h))
                    && kind == NAME
                    && !open.listed
                {
                    open.listed = true;
                    ops.push(op("readdir", &open.path, true));
                }
            }
            CLOSE => {
                if let Some(open) = pending.handle.and_then(|h| self.handles.remove(&h)) {
                    transfer_ops(&open, ops);
                }
            }
            FSTAT | FSETSTAT => {
                let path = pending
                    .handle
                    .and_then(|h| self.handles.get(&h).map(|o| o.path.clone()))
                    .unwrap_or_default();
                let action = if pending.kind == FSTAT {
                    "fstat"
                } else {
                    "fsetstat"
                };
                ops.push(with_error(op(action, &path, ok)));
            }
            other => {
                let Some(action) = path_action(other) else {
                    return;
                };
                let mut op = with_error(op(action, &pending.path, ok));
                op.target = pending.target;
                ops.push(op);
            }
        }
    }
}

/// `read` and `write` (when bytes moved) and `close`, as a node reports a
/// closed file.
fn transfer_ops(open: &Open, ops: &mut Vec<SftpOp>) {
    if open.dir {
        return;
    }
    for (action, bytes) in [("read", open.read), ("write", open.written)] {
        if bytes > 0 {
            let mut op = op(action, &open.path, true);
            op.bytes = Some(bytes);
            ops.push(op);
        }
    }
    let mut close = op("close", &open.path, true);
    close.bytes = Some(open.read + open.written);
    ops.push(close);
}

fn path_action(kind: u8) -> Option<&'static str> {
    Some(match kind {
        LSTAT => "lstat",
        STAT => "stat",
        SETSTAT => "setstat",
        REMOVE => "remove",
        MKDIR => "mkdir",
        RMDIR => "rmdir",
        REALPATH => "realpath",
        RENAME => "rename",
        READLINK => "readlink",
        SYMLINK => "symlink",
        // Only the hard-link extension is kept as EXTENDED.
        EXTENDED => "link",
        _ => return None,
    })
}

fn status_of(body: &[u8]) -> (u32, String) {
    let code = body
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(u32::MAX, u32::from_be_bytes);
    let mut rest = body.get(4..).unwrap_or_default();
    (code, text(&mut rest).unwrap_or_default())
}

/// The pending entry a request leaves, if it is one the audit log keeps.
fn request(p: &Packet<'_>, payload: u64) -> Option<(u32, Pending)> {
    let mut b = p.body;
    let mut pending = Pending {
        kind: p.kind,
        path: String::new(),
        target: None,
        handle: None,
        bytes: 0,
    };
    match p.kind {
        OPEN | OPENDIR | LSTAT | STAT | SETSTAT | REMOVE | MKDIR | RMDIR | REALPATH | READLINK => {
            pending.path = text(&mut b)?
        }
        RENAME => {
            pending.path = text(&mut b)?;
            pending.target = Some(text(&mut b)?);
        }
        SYMLINK => {
            // OpenSSH sends (target, link) in that order, against the draft.
            let target = text(&mut b)?;
            pending.path = text(&mut b)?;
            pending.target = Some(target);
        }
        CLOSE | READ | READDIR | FSTAT | FSETSTAT => pending.handle = Some(string(&mut b)?),
        WRITE => {
            pending.handle = Some(string(&mut b)?);
            pending.bytes = payload;
        }
        EXTENDED => {
            let name = text(&mut b)?;
            match name.as_str() {
                "posix-rename@openssh.com" => {
                    pending.kind = RENAME;
                    pending.path = text(&mut b)?;
                    pending.target = Some(text(&mut b)?);
                }
                "hardlink@openssh.com" => {
                    pending.path = text(&mut b)?;
                    pending.target = Some(text(&mut b)?);
                }
                _ => return None,
            }
        }
        _ => return None,
    }
    Some((p.id, pending))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(kind: u8, id: u32, fields: &[&[u8]]) -> Vec<u8> {
        let mut body = vec![kind];
        body.extend_from_slice(&id.to_be_bytes());
        for f in fields {
            body.extend_from_slice(f);
        }
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    fn s(text: &[u8]) -> Vec<u8> {
        let mut out = (text.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(text);
        out
    }

    fn status(id: u32, code: u32, msg: &str) -> Vec<u8> {
        pkt(
            STATUS,
            id,
            &[&code.to_be_bytes(), &s(msg.as_bytes()), &s(b"")],
        )
    }

    fn write(id: u32, handle: &[u8], data: &[u8]) -> Vec<u8> {
        pkt(WRITE, id, &[&s(handle), &0u64.to_be_bytes(), &s(data)])
    }

    /// A file written and closed, fed one byte at a time and in one piece.
    #[test]
    fn a_written_file_is_opened_written_and_closed() {
        for step in [1usize, 7, usize::MAX] {
            let mut w = SftpWatch::default();
            let mut ops = Vec::new();
            let feed_client = |w: &mut SftpWatch, b: Vec<u8>| {
                for chunk in b.chunks(step.min(b.len()).max(1)) {
                    w.client_bytes(chunk);
                }
            };
            let feed_server = |w: &mut SftpWatch, b: Vec<u8>, ops: &mut Vec<SftpOp>| {
                for chunk in b.chunks(step.min(b.len()).max(1)) {
                    ops.extend(w.server_bytes(chunk));
                }
            };
            feed_client(
                &mut w,
                pkt(
                    OPEN,
                    1,
                    &[&s(b"/tmp/f"), &0x1au32.to_be_bytes(), &0u32.to_be_bytes()],
                ),
            );
            feed_server(&mut w, pkt(HANDLE, 1, &[&s(b"h1")]), &mut ops);
            feed_client(&mut w, write(2, b"h1", &[7u8; 1000]));
            feed_client(&mut w, write(3, b"h1", &[7u8; 500]));
            feed_server(&mut w, status(2, 0, "ok"), &mut ops);
            feed_server(&mut w, status(3, 0, "ok"), &mut ops);
            feed_client(&mut w, pkt(CLOSE, 4, &[&s(b"h1")]));
            feed_server(&mut w, status(4, 0, "ok"), &mut ops);
            let actions: Vec<(&str, Option<u64>)> =
                ops.iter().map(|o| (o.action.as_str(), o.bytes)).collect();
            assert_eq!(
                actions,
                [("open", None), ("write", Some(1500)), ("close", Some(1500))],
                "step {step}"
            );
            assert!(ops.iter().all(|o| o.path == "/tmp/f" && o.success));
        }
    }

    #[test]
    fn reads_are_counted_from_the_replies_and_failures_carry_the_reason() {
        let mut w = SftpWatch::default();
        w.client_bytes(&pkt(
            OPEN,
            1,
            &[&s(b"/etc/x"), &1u32.to_be_bytes(), &0u32.to_be_bytes()],
        ));
        let mut ops = w.server_bytes(&pkt(HANDLE, 1, &[&s(b"h")]));
        w.client_bytes(&pkt(
            READ,
            2,
            &[&s(b"h"), &0u64.to_be_bytes(), &32768u32.to_be_bytes()],
        ));
        ops.extend(w.server_bytes(&pkt(DATA, 2, &[&s(&[1u8; 300])])));
        w.client_bytes(&pkt(REMOVE, 3, &[&s(b"/etc/passwd")]));
        ops.extend(w.server_bytes(&status(3, 3, "Permission denied")));
        // The client goes away without closing: the read is still reported.
        ops.extend(w.finish());
        type Seen<'a> = (&'a str, &'a str, bool, Option<u64>, Option<&'a str>);
        let got: Vec<Seen> = ops
            .iter()
            .map(|o| {
                (
                    o.action.as_str(),
                    o.path.as_str(),
                    o.success,
                    o.bytes,
                    o.error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("open", "/etc/x", true, None, None),
                (
                    "remove",
                    "/etc/passwd",
                    false,
                    None,
                    Some("Permission denied")
                ),
                ("read", "/etc/x", true, Some(300), None),
                ("close", "/etc/x", true, Some(300), None),
            ]
        );
    }

    #[test]
    fn renames_symlinks_and_listings() {
        let mut w = SftpWatch::default();
        w.client_bytes(&pkt(RENAME, 1, &[&s(b"/a"), &s(b"/b")]));
        w.client_bytes(&pkt(SYMLINK, 2, &[&s(b"/target"), &s(b"/link")]));
        w.client_bytes(&pkt(OPENDIR, 3, &[&s(b"/d")]));
        let mut ops = w.server_bytes(&status(1, 0, ""));
        ops.extend(w.server_bytes(&status(2, 0, "")));
        ops.extend(w.server_bytes(&pkt(HANDLE, 3, &[&s(b"d1")])));
        for id in [4, 5] {
            w.client_bytes(&pkt(READDIR, id, &[&s(b"d1")]));
            ops.extend(w.server_bytes(&pkt(NAME, id, &[&0u32.to_be_bytes()])));
        }
        let got: Vec<(&str, &str, Option<&str>)> = ops
            .iter()
            .map(|o| (o.action.as_str(), o.path.as_str(), o.target.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("rename", "/a", Some("/b")),
                ("symlink", "/link", Some("/target")),
                ("opendir", "/d", None),
                ("readdir", "/d", None),
            ]
        );
    }

    /// Garbage, lies about lengths and floods keep it bounded, and it
    /// never panics.
    #[test]
    fn hostile_streams_stay_bounded() {
        let mut w = SftpWatch::default();
        // A packet claiming 4 GiB, then noise.
        w.client_bytes(&[0xff, 0xff, 0xff, 0xff, OPEN, 0, 0, 0, 1]);
        w.client_bytes(&[0u8; 100_000]);
        assert!(w.requests.buf.len() <= MAX_PARSED + 5);
        let mut w = SftpWatch::default();
        for id in 0..(MAX_PENDING as u32 + 100) {
            w.client_bytes(&pkt(STAT, id, &[&s(b"/x")]));
        }
        assert_eq!(w.pending.len(), MAX_PENDING);
        // Short, truncated and unknown packets.
        let mut w = SftpWatch::default();
        for bad in [
            vec![0, 0, 0, 0],
            vec![0, 0, 0, 2, 1, 2],
            pkt(OPEN, 1, &[&[0, 0, 0, 200]]),
            pkt(250, 1, &[]),
            pkt(WRITE, 1, &[&[0xff, 0xff, 0xff, 0xff]]),
        ] {
            w.client_bytes(&bad);
            let _ = w.server_bytes(&bad);
        }
        let _ = w.finish();
    }
}
