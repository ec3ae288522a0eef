//! The raw relay: after a TLS dial request the SSH bytes travel on a plain
//! TCP connection that redeems a one-time ticket. Tickets work once, only
//! from the address that asked, and nonsense on the port harms nothing;
//! with `ssh_relay: tls` the proxy keeps SSH inside TLS and `jsh` follows.
//! (Every other test reaches nodes through the raw relay: OpenSSH through
//! `jsh config` takes the socket itself, PuTTY and `jsh ssh` through jsh.)
//! Runs as root (it creates OS users for logins).

mod support;

use jaunt_client::home::Home;
use jaunt_transport::ApiClient;
use jaunt_transport::relay::{Grant, redeem, request};
use jaunt_types::api::RAW_RELAY_MAGIC;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn client_of(home: &Path) -> ApiClient {
    let home = Home::new(home.join(".jsh"));
    jaunt_client::login::logged_in_client(&home, None)
        .expect("logged in")
        .1
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn ticket(client: &ApiClient, target: &str) -> (SocketAddr, String) {
    match request(client, target, None, true).await.expect("dial") {
        Grant::Ticket { addr, ticket } => (addr, ticket),
        Grant::Stream(_) => panic!("the proxy granted no raw relay"),
    }
}

/// Sends `preamble` from `source` and returns all the proxy sends back
/// until it closes or `until` appears.
async fn raw(source: &str, proxy: SocketAddr, preamble: &[u8], until: &[u8]) -> Vec<u8> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("addr"))
        .expect("bind");
    let mut tcp = socket.connect(proxy).await.expect("connect");
    tcp.write_all(preamble).await.expect("write");
    let _ = tcp.shutdown().await;
    read_some(&mut tcp, until).await
}

async fn read_some(tcp: &mut TcpStream, until: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if got.windows(until.len()).any(|w| w == until) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the proxy answers or closes");
    got
}

fn preamble(ticket: &str) -> Vec<u8> {
    [RAW_RELAY_MAGIC, ticket.as_bytes(), b"\n"].concat()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn raw_relay_tickets_work_once_from_their_own_address() {
    let s = setup("rly");
    let client = client_of(&s.home);
    let rt = runtime();
    for node in ["node1", "node2"] {
        let target = format!("{}@{node}", s.os.name);
        rt.block_on(async {
            // A ticket leads to the node's SSH server, once.
            let (addr, t) = ticket(&client, &target).await;
            let mut tcp = redeem(addr, &t).await.expect("redeem");
            let banner = read_some(&mut tcp, b"\r\n").await;
            assert!(banner.starts_with(b"SSH-2.0-"), "{node}: {}", text(&banner));
            let again = redeem(addr, &t).await.expect_err("a ticket works once");
            assert!(
                again.to_string().contains("unknown or already used"),
                "{again}"
            );

            // Shown from another address it is refused, and spent.
            let (addr, t) = ticket(&client, &target).await;
            let answer = raw("127.0.0.2", addr, &preamble(&t), b"\n").await;
            assert!(
                text(&answer).contains("issued to another address"),
                "{}",
                text(&answer)
            );
            let answer = raw("127.0.0.1", addr, &preamble(&t), b"\n").await;
            assert!(text(&answer).contains("unknown or already used"));

            // Only another instance of this cluster can vouch for a
            // client's address (with the cluster's peer key): a forged
            // forward line from elsewhere gets nothing and spends nothing.
            let (addr, t) = ticket(&client, &target).await;
            let forged = [
                b"JAUNT-FORWARD/1 127.0.0.1 ".as_slice(),
                "ab".repeat(32).as_bytes(),
                b"\n",
                &preamble(&t),
            ]
            .concat();
            assert_eq!(raw("127.0.0.2", addr, &forged, b"\n").await, b"");
            let mut tcp = redeem(addr, &t).await.expect("the ticket is still good");
            let banner = read_some(&mut tcp, b"\r\n").await;
            assert!(banner.starts_with(b"SSH-2.0-"), "{node}: {}", text(&banner));

            // Made-up tickets get nothing: with this instance's tag (the
            // start of its tickets) or another's (no live instance has
            // it, so there is none to hand it to). A malformed preamble is
            // closed without an answer.
            let made_up = [format!("{}{}", &t[..8], "0".repeat(32)), "0".repeat(40)];
            for fake in made_up {
                let answer = raw("127.0.0.1", addr, &preamble(&fake), b"\n").await;
                assert!(text(&answer).contains("unknown or already used"), "{fake}");
                assert!(!text(&answer).contains("SSH-2.0"));
            }
            assert_eq!(
                raw("127.0.0.1", addr, &preamble(&"0".repeat(32)), b"\n").await,
                b""
            );
            let junk = [RAW_RELAY_MAGIC, b"not a ticket at all\xff\x00\n".as_slice()].concat();
            assert_eq!(raw("127.0.0.1", addr, &junk, b"\n").await, b"");
            assert_eq!(raw("127.0.0.1", addr, b"J", b"\n").await, b"");

            // A client that asks for no raw relay gets SSH inside TLS.
            match request(&client, &target, None, false).await.expect("dial") {
                Grant::Stream(mut tls) => {
                    let mut banner = [0u8; 8];
                    tls.read_exact(&mut banner).await.expect("banner");
                    assert_eq!(&banner, b"SSH-2.0-");
                }
                Grant::Ticket { .. } => panic!("a ticket nobody asked for"),
            }
        });
    }
    // A ticket needs a user certificate: without one the request is refused.
    let bare = ApiClient::new(
        &s.c.proxy,
        &jaunt_client::login::trust_for(&Home::new(s.home.join(".jsh")), &s.c.proxy, None, false)
            .expect("trust"),
        None,
    )
    .expect("client");
    let refused = rt
        .block_on(request(&bare, &format!("{}@node1", s.os.name), None, true))
        .err()
        .expect("refused");
    assert!(refused.to_string().contains("jsh login"), "{refused}");

    // After all that the proxy serves real clients as before.
    ssh(
        &s.ssh_config,
        &[&format!("{}@node1.example", s.os.name), "echo still fine"],
        "",
    )
    .ok();
}

#[test]
fn a_tls_only_proxy_keeps_ssh_inside_tls() {
    let c = Cluster::start(Options {
        ssh_relay: "tls",
        ..Default::default()
    });
    let os = OsUser::create("rlt");
    let home = c.signed_up("alice", &os.name);
    c.login(&home, "alice", &[], &format!("{PASSWORD}\n")).ok();
    let _node = c.add_node("node1", "", true);
    let target = format!("{}@node1", os.name);

    let client = client_of(&home);
    let grant = runtime()
        .block_on(request(&client, &target, None, true))
        .expect("dial");
    assert!(
        matches!(grant, Grant::Stream(_)),
        "the proxy must not issue tickets"
    );
    // The raw preamble is not TLS: at most a TLS alert (0x15) comes back.
    let addr: SocketAddr = c.proxy.parse().expect("addr");
    let answer = runtime().block_on(raw("127.0.0.1", addr, &preamble(&"0".repeat(32)), b"\n"));
    assert!(answer.is_empty() || answer[0] == 0x15, "{}", text(&answer));

    // jsh ssh and jsh proxy ssh (PuTTY's way) relay inside TLS.
    let out = eventually("node1 online", Duration::from_secs(20), || {
        let out = c.jsh(&home, &["ssh", &target, "echo inside tls"], "");
        (out.code == Some(0)).then_some(out)
    });
    assert!(out.stdout.contains("inside tls"), "{}", out.stdout);
    let config = c.jsh(&home, &["config"], "").ok().stdout;
    let without_fdpass = config
        .replace(" --fdpass", "")
        .replace("    ProxyUseFdpass yes\n", "");
    assert_ne!(
        config, without_fdpass,
        "jsh config passes the socket to ssh"
    );
    let plain = home.join("ssh_config_plain");
    std::fs::write(&plain, &without_fdpass).expect("config");
    let out = ssh(&plain, &[&format!("{target}.example"), "echo relayed"], "").ok();
    assert!(out.stdout.contains("relayed"));

    // With the socket-passing config ssh cannot get a socket: jsh says why.
    let fdpass = home.join("ssh_config_fdpass");
    std::fs::write(&fdpass, &config).expect("config");
    let out = ssh(&fdpass, &[&format!("{target}.example"), "true"], "");
    assert_eq!(out.code, Some(255), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("ERROR: this proxy keeps SSH inside TLS (ssh_relay: tls)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_user_holds_a_bounded_number_of_unredeemed_tickets() {
    let s = setup("rlm");
    let client = client_of(&s.home);
    let target = format!("{}@node1", s.os.name);
    let rt = runtime();
    rt.block_on(async {
        // Each ticket holds a connection to the node until it is redeemed
        // or expires; one user cannot make the proxy hold any number.
        let mut held = Vec::new();
        for _ in 0..64 {
            held.push(ticket(&client, &target).await);
        }
        let refused = request(&client, &target, None, true)
            .await
            .err()
            .expect("the 65th is refused");
        assert!(
            refused.to_string().contains("too many relays waiting"),
            "{refused}"
        );
        // Redeeming one makes room for another.
        let (addr, t) = held.pop().expect("a ticket");
        let _tcp = redeem(addr, &t).await.expect("redeem");
        ticket(&client, &target).await;
    });
}
