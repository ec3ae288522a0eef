//! Hostile clients against a running cluster: what one address can take
//! of the proxy, while everyone else goes on working.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::io::AsyncReadExt;

/// How many connections wait in the accept queue of the loopback
/// listener on `port` (/proc/net/tcp's rx_queue for a LISTEN socket).
fn accept_queue(port: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        let local_port = u16::from_str_radix(cols.get(1)?.rsplit(':').next()?, 16).ok()?;
        let listening = cols.get(3) == Some(&"0A");
        let rx = cols.get(4)?.split(':').nth(1)?;
        (listening && local_port == port).then(|| u32::from_str_radix(rx, 16).ok())?
    })
}

/// Alice logs in and runs a command on node1: the cluster still serves.
fn still_served(c: &Cluster, os: &OsUser, home: &std::path::Path) {
    c.login(home, "alice", &[], &format!("{PASSWORD}\n")).ok();
    let out = c
        .jsh(
            home,
            &["ssh", &format!("{}@node1", os.name), "echo fine"],
            "",
        )
        .ok();
    assert_eq!(out.stdout, "fine\n");
}

/// The test opens thousands of sockets: as many as the hard limit allows.
fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

/// Opens `n` connections from `from` to `to` that send nothing, and
/// returns how many the proxy still holds after `wait` (the rest it
/// closed), and this process's memory then.
async fn idle_flood(from: &str, to: SocketAddr, n: usize, wait: Duration) -> (usize, usize, u64) {
    let mut conns = Vec::with_capacity(n);
    // In batches the listen backlog holds: a connection the kernel could
    // not queue would wait for a SYN-ACK retry, held by no one.
    for chunk in 0..n.div_ceil(200) {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..200.min(n - chunk * 200) {
            let local: SocketAddr = format!("{from}:0").parse().expect("addr");
            batch.spawn(async move {
                let s = tokio::net::TcpSocket::new_v4()?;
                s.bind(local)?;
                s.connect(to).await
            });
        }
        while let Some(c) = batch.join_next().await {
            if let Ok(stream) = c.expect("task") {
                conns.push(stream);
            }
        }
        // The next batch once the proxy has taken this one off its
        // listen queue.
        eventually(
            "the proxy's accept queue to drain",
            Duration::from_secs(30),
            || (accept_queue(to.port()) == Some(0)).then_some(()),
        );
    }
    let opened = conns.len();
    let mut reads = tokio::task::JoinSet::new();
    for mut c in conns {
        reads.spawn(async move {
            let mut b = [0u8; 1];
            // Closed by the proxy: end of stream or reset. Held: no answer.
            let held = tokio::time::timeout(wait, c.read(&mut b)).await.is_err();
            (held, c)
        });
    }
    let mut held = Vec::new();
    while let Some(r) = reads.join_next().await {
        let (h, c) = r.expect("task");
        if h {
            held.push(c);
        }
    }
    // Measured while the connections the proxy kept are still open.
    (opened, held.len(), rss_kib())
}

#[test]
fn ten_thousand_idle_connections_from_one_address_leave_the_proxy_to_others() {
    raise_open_files();
    let (c, os, home) = Cluster::with_alice(Options::default(), "hf");
    let _node = c.add_node("node1", "env=dev", true);
    let proxy: SocketAddr = c.proxy.parse().expect("proxy address");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rss_before = rss_kib();
    let flood = std::thread::spawn(move || {
        rt.block_on(idle_flood(
            "127.0.0.2",
            proxy,
            10_000,
            Duration::from_secs(6),
        ))
    });
    // Meanwhile, from another address, alice logs in and works.
    c.login(&home, "alice", &[], &format!("{PASSWORD}\n")).ok();
    let target = format!("{}@node1", os.name);
    let out = eventually(
        "a session during the flood",
        Duration::from_secs(30),
        || {
            let out = c.jsh(&home, &["ssh", &target, "echo still-here"], "");
            (out.code == Some(0)).then_some(out)
        },
    );
    assert_eq!(out.stdout, "still-here\n");
    let (opened, held, rss_during) = flood.join().expect("flood");
    assert!(opened >= 9_000, "the flood opened {opened} connections");
    // Only one address's share of handshakes is held (64 by default).
    assert!(held <= 64, "{held} of {opened} idle connections held");
    // The cluster runs in this process: what the flood cost it in memory
    // (the test's own 10,000 sockets included) stays small.
    let grew = rss_during.saturating_sub(rss_before);
    assert!(grew < 200 * 1024, "memory grew {grew} KiB under the flood");
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Sends `bytes` on a fresh connection and reads what comes back until the
/// proxy closes it (or 15 s pass: then `None`, the proxy kept it open).
async fn answer_to(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    bytes: &[u8],
) -> Option<Vec<u8>> {
    use tokio::io::AsyncWriteExt;
    // The proxy may close before reading all of it: that is an answer.
    let _ = stream.write_all(bytes).await;
    let mut got = Vec::new();
    match tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut got)).await {
        Ok(_) => Some(got),
        Err(_) => None,
    }
}

/// Garbage and oversized first lines on every kind of connection the
/// public port takes: each is turned away promptly (a refusal line, an
/// HTTP error, or a close), and the proxy goes on serving.
#[test]
fn garbage_and_oversized_first_lines_are_turned_away_and_the_proxy_serves_on() {
    let (c, os, home) = Cluster::with_alice(Options::default(), "hg");
    let _node = c.add_node("node1", "env=dev", true);
    let proxy: SocketAddr = c.proxy.parse().expect("proxy address");
    let (rt, anonymous) = c.anonymous_api();
    let tcp = || async {
        tokio::net::TcpStream::connect(proxy)
            .await
            .expect("connect")
    };
    let long = vec![b'a'; 1 << 20];
    rt.block_on(async {
        // Raw relay and tunnel-data preambles: no newline for 1 MiB, a
        // ticket of the wrong shape, bytes that are neither TLS nor ours.
        let mut raw_long = b"JAUNT-RELAY/1 ".to_vec();
        raw_long.extend_from_slice(&long);
        for (what, bytes) in [
            ("a 1 MiB raw relay line", raw_long),
            (
                "a malformed ticket",
                b"JAUNT-RELAY/1 not-a-ticket\n".to_vec(),
            ),
            (
                "an unknown ticket",
                format!("JAUNT-RELAY/1 {}\n", "ab".repeat(20)).into_bytes(),
            ),
            (
                "a malformed tunnel preamble",
                b"JAUNT-TUNNEL/1 x y z\n".to_vec(),
            ),
            (
                "binary noise",
                (0u8..=255).cycle().skip(1).take(4096).collect(),
            ),
        ] {
            let got = answer_to(tcp().await, &bytes).await;
            assert!(got.is_some(), "{what}: the proxy held the connection");
        }
        // The SSH relay's JSON line without a certificate, and 1 MiB of it.
        for line in [b"{\"target\": \"x\"}\n".to_vec(), long.clone()] {
            let tls = anonymous
                .connect(jaunt_types::api::ALPN_SSH)
                .await
                .expect("tls");
            let got = answer_to(tls, &line).await.expect("an answer");
            let text = String::from_utf8_lossy(&got);
            assert!(text.contains("certificate") || text.is_empty(), "{text}");
        }
        // HTTP: a 1 MiB header, and a tunnel hello that is not JSON.
        let tls = anonymous
            .connect(jaunt_types::api::ALPN_HTTP)
            .await
            .expect("tls");
        let mut head = b"GET /v1/ping HTTP/1.1\r\nHost: jaunt\r\nX-Big: ".to_vec();
        head.extend_from_slice(&long);
        head.extend_from_slice(b"\r\n\r\n");
        let got = answer_to(tls, &head).await.expect("an answer");
        let text = String::from_utf8_lossy(&got);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
        let tls = anonymous.connect(b"jaunt-tunnel/1").await.expect("tls");
        assert!(answer_to(tls, b"\x00\xffnot json\n").await.is_some());
    });
    // Everyone else is still served.
    still_served(&c, &os, &home);
}

/// A 100 KiB SSH user name (as long as a command line takes) straight at
/// a node: refused like any unknown login, audited with the name capped,
/// and the node serves on.
#[test]
fn a_huge_ssh_user_name_is_refused_and_recorded_capped() {
    let (c, os, home) = Cluster::with_alice(Options::default(), "hu");
    let node = c.add_node("node1", "env=dev", true);
    let addr = node.ssh_addr.expect("direct node");
    let name = "u".repeat(100 * 1024);
    // A plain key, so the node has a public-key attempt to refuse (and
    // record) under that name.
    let key = keygen(&home, "plain");
    let mut cmd = std::process::Command::new("ssh");
    cmd.args([
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
    ])
    .arg("-i")
    .arg(&key)
    .args([
        "-p",
        &addr.port().to_string(),
        "-l",
        &name,
        &addr.ip().to_string(),
        "true",
    ]);
    let out = run(cmd, "");
    assert_ne!(out.code, Some(0));
    let events = eventually("the refusal's event", Duration::from_secs(20), || {
        let out = c
            .jctl(&["audit", "ls", "--type=auth", "--format=json"])
            .ok()
            .stdout;
        out.contains("uuuu").then_some(out)
    });
    for line in events.lines() {
        assert!(line.len() < 16 * 1024, "an event of {} bytes", line.len());
    }
    assert!(events.contains("truncated: 102400 bytes"), "{events}");
    still_served(&c, &os, &home);
}

/// Sends one HTTP request with a `len`-byte body on a fresh connection and
/// returns the status line (the proxy may answer before reading it all).
async fn post_status(api: &jaunt_transport::ApiClient, path: &str, len: usize) -> String {
    use tokio::io::AsyncWriteExt;
    let mut tls = api.connect(jaunt_types::api::ALPN_HTTP).await.expect("tls");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: jaunt\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.expect("head");
    let body = vec![b' '; len];
    let (mut rd, mut wr) = tokio::io::split(tls);
    // Written alongside the read: an early answer must not wait for it.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&body).await;
    });
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut got)).await;
    writer.abort();
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Bodies over the limit on every POST route: refused (413, or 401 before
/// any body where the route needs a certificate the caller lacks), never
/// read whole into memory for nothing, and the proxy serves on.
#[test]
fn oversized_bodies_on_every_route_are_refused() {
    use jaunt_types::api::*;
    let (c, os, home) = Cluster::with_alice(Options::default(), "hb");
    let _node = c.add_node("node1", "env=dev", true);
    let (rt, anonymous) = c.anonymous_api();
    let big = 3 << 20;
    rt.block_on(async {
        for path in [
            PATH_SIGNUP_START,
            PATH_SIGNUP_FINISH,
            PATH_LOGIN,
            PATH_NODE_JOIN,
        ] {
            let status = post_status(&anonymous, path, big).await;
            assert!(status.contains(" 413 "), "{path}: {status}");
        }
        for path in [
            PATH_NODE_HEARTBEAT,
            PATH_NODE_AUTHORIZE,
            PATH_NODE_EVENTS,
            PATH_NODE_SESSIONS,
            PATH_NODE_RECORDING,
        ] {
            let status = post_status(&anonymous, path, 40 << 20).await;
            assert!(status.contains(" 401 "), "{path}: {status}");
        }
    });
    still_served(&c, &os, &home);
}

/// A hostile SFTP client (OpenSSH's `ssh -s sftp` carrying bytes of our
/// own): a request whose string claims 2 GiB gets a bad-message status,
/// a packet that claims 4 GiB ends the server without it allocating that,
/// and the node serves the next SFTP session as usual.
#[test]
fn a_hostile_sftp_client_gets_errors_not_a_crash() {
    let s = setup("hs");
    let target = format!("{}@node1.example", s.os.name);
    let mut bytes: Vec<u8> = Vec::new();
    bytes.extend_from_slice(&[0, 0, 0, 5, 1, 0, 0, 0, 3]); // INIT, version 3
    // OPEN, id 1, a filename said to be 2 GiB long, and nothing after.
    bytes.extend_from_slice(&[0, 0, 0, 9, 3, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff]);
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 3]); // a 4 GiB packet
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-F")
        .arg(&s.ssh_config)
        .args(["-o", "BatchMode=yes", "-s", &target, "sftp"])
        .env("HOME", &s.home)
        .env("JSH_HOME", s.home.join(".jsh"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("ssh -s sftp");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&bytes).expect("write");
        // Kept open: the server, not the end of input, must end it.
        let out = child.wait_with_output().expect("ssh");
        drop(stdin);
        let answer = out.stdout;
        assert_eq!(
            answer.get(4),
            Some(&2),
            "a VERSION answer first: {answer:?}"
        );
        let bad_message = [101u8, 0, 0, 0, 1, 0, 0, 0, 5];
        assert!(
            answer.windows(bad_message.len()).any(|w| w == bad_message),
            "a BAD_MESSAGE status for request 1: {answer:?}"
        );
    }
    // The next SFTP session works.
    let file = s.home.join("ok.txt");
    std::fs::write(&file, "fine").expect("file");
    let mut sftp = std::process::Command::new("sftp");
    sftp.arg("-F")
        .arg(&s.ssh_config)
        .args(["-o", "BatchMode=yes", "-b", "-", &target])
        .env("HOME", &s.home)
        .env("JSH_HOME", s.home.join(".jsh"));
    let out = run(sftp, "ls /\n");
    assert_eq!(out.code, Some(0), "{out:?}");
}
