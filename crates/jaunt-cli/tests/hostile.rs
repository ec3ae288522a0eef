//! Hostile clients against a running cluster: what one address can take
//! of the proxy, while everyone else goes on working.

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::io::AsyncReadExt;

/// The test opens thousands of sockets: as many as the hard limit allows.
fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
}

/// Opens `n` connections from `from` to `to` that send nothing, and
/// returns how many the proxy still holds after `wait` (the rest it
/// closed).
async fn idle_flood(from: &str, to: SocketAddr, n: usize, wait: Duration) -> (usize, usize) {
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
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    (opened, held.len())
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
    let (opened, held) = flood.join().expect("flood");
    assert!(opened >= 9_000, "the flood opened {opened} connections");
    // Only one address's share of handshakes is held (64 by default).
    assert!(held <= 64, "{held} of {opened} idle connections held");
}
