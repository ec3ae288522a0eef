//! `jaunt-bench`: load generators for bench/*.sh, built on the same client
//! code as `jsh` (russh with the login's certificate through the proxy) and
//! the nodes' real join and heartbeat protocol.
//!
//! - `sessions`: exec sessions (`true`) as fast as they complete, from N
//!   concurrent workers, each on a new connection; prints sessions/s.
//! - `idle`: opens N sessions (`sleep`) and holds them until stdin closes.
//! - `inventory`: joins N simulated nodes and heartbeats them for ever.
//! - `audit-fill`: writes a large audit log into a stopped cluster's store.

mod audit_fill;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jaunt_client::home::Home;
use jaunt_client::login::logged_in_client;
use russh::ChannelMsg;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sessions per second: each worker connects, runs `true`, disconnects.
    Sessions {
        /// login@node
        target: String,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Opens COUNT sessions running `sleep` and holds them until stdin
    /// closes (prints "ready" when all are open).
    Idle {
        target: String,
        #[arg(long)]
        count: usize,
    },
    /// Joins COUNT simulated nodes with TOKEN and heartbeats them.
    Inventory {
        /// host:port of the proxy
        #[arg(long)]
        proxy: String,
        #[arg(long)]
        ca_pin: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        count: usize,
        /// Joins in flight at once.
        #[arg(long, default_value_t = 32)]
        parallel: usize,
    },
    /// Writes EVENTS audit events, spread over the last DAYS, into the
    /// SQLite store at DB (its cluster stopped).
    AuditFill {
        #[arg(long)]
        db: std::path::PathBuf,
        #[arg(long)]
        events: u64,
        #[arg(long, default_value_t = 30)]
        days: u64,
        #[arg(long, default_value_t = 200)]
        users: u64,
    },
}

/// One session: connect through the proxy, authenticate, run `command`.
async fn session(
    home: &Home,
    profile: &jaunt_client::profile::Profile,
    client: &jaunt_transport::ApiClient,
    target: &str,
    command: &str,
    hold: Option<&tokio::sync::Notify>,
) -> anyhow::Result<()> {
    let (login, host) = target.split_once('@').context("the target is login@node")?;
    let handle = jaunt_client::ssh::connect(home, profile, client, login, host, None, None).await?;
    let mut channel = handle.channel_open_session().await?;
    channel.exec(true, command).await?;
    if let Some(hold) = hold {
        hold.notified().await;
        return Ok(());
    }
    while let Some(msg) = channel.wait().await {
        if let ChannelMsg::ExitStatus { exit_status } = msg {
            anyhow::ensure!(exit_status == 0, "exit status {exit_status}");
        }
    }
    handle
        .disconnect(russh::Disconnect::ByApplication, "", "")
        .await?;
    Ok(())
}

async fn sessions(target: String, concurrency: usize, seconds: u64) -> anyhow::Result<()> {
    let home = Arc::new(Home::from_env()?);
    let (profile, client) = logged_in_client(&home, None)?;
    let (profile, client) = (Arc::new(profile), Arc::new(client));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (home, profile, client, target) = (
            home.clone(),
            profile.clone(),
            client.clone(),
            target.clone(),
        );
        let (done, failed) = (done.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < end {
                match session(&home, &profile, &client, &target, "true", None).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("session failed: {e:#}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    println!(
        "sessions {n} failed {} seconds {secs:.1} rate {:.1}",
        failed.load(Ordering::Relaxed),
        n as f64 / secs
    );
    Ok(())
}

async fn idle(target: String, count: usize) -> anyhow::Result<()> {
    let home = Arc::new(Home::from_env()?);
    let (profile, client) = logged_in_client(&home, None)?;
    let (profile, client) = (Arc::new(profile), Arc::new(client));
    let release = Arc::new(tokio::sync::Notify::new());
    let opened = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut held = Vec::new();
    for _ in 0..count {
        let (home, profile, client, target) = (
            home.clone(),
            profile.clone(),
            client.clone(),
            target.clone(),
        );
        let (release, opened, gate) = (release.clone(), opened.clone(), gate.clone());
        held.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let home2 = home.clone();
            let result = async {
                let (login, host) = target.split_once('@').context("login@node")?;
                let handle =
                    jaunt_client::ssh::connect(&home2, &profile, &client, login, host, None, None)
                        .await?;
                let channel = handle.channel_open_session().await?;
                channel.exec(true, "sleep 86400").await?;
                drop(permit);
                opened.add_permits(1);
                release.notified().await;
                drop(channel);
                drop(handle);
                anyhow::Ok(())
            }
            .await;
            if let Err(e) = result {
                eprintln!("idle session failed: {e:#}");
                opened.add_permits(1);
            }
        }));
    }
    let _ = opened.acquire_many(count as u32).await?;
    println!("ready {count}");
    // Hold until stdin closes.
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    release.notify_waiters();
    Ok(())
}

/// Counters shared by every simulated node.
#[derive(Default)]
struct Tally {
    joined: AtomicU64,
    beats: AtomicU64,
    errors: AtomicU64,
    /// The longest heartbeat interval auth has told a node.
    longest: AtomicU64,
}

/// What every simulated node joins with.
struct Fleet {
    proxy: String,
    ca_pin: String,
    token: String,
    /// Joins go through one unauthenticated client.
    anon: jaunt_transport::ApiClient,
    /// Limits joins in flight.
    gate: tokio::sync::Semaphore,
    tally: Tally,
}

/// A simulated node after its join: its client and what it reports.
struct SimNode {
    name: String,
    labels: jaunt_types::resources::Labels,
    api: jaunt_transport::ApiClient,
    host_public_key: String,
    valid_before: u64,
}

impl Fleet {
    /// Joins node `i` on the real join protocol, as a node does.
    async fn join(&self, i: usize) -> anyhow::Result<SimNode> {
        use jaunt_transport::{ApiClient, ClientCert, Trust};
        use jaunt_types::api::{NodeJoinRequest, NodeJoinResponse, PATH_NODE_JOIN};
        let name = format!("sim-{i:05}");
        let labels: jaunt_types::resources::Labels = [
            (
                "env".to_string(),
                ["dev", "prod", "staging"][i % 3].to_string(),
            ),
            ("rack".to_string(), format!("r{}", i % 100)),
        ]
        .into();
        let _permit = self.gate.acquire().await?;
        let mut rng = jaunt_ca::ssh_key::rand_core::UnwrapErr(jaunt_ca::ssh_key::getrandom::SysRng);
        let key =
            jaunt_ca::ssh_key::PrivateKey::random(&mut rng, jaunt_ca::ssh_key::Algorithm::Ed25519)?;
        let host_public_key = key.public_key().to_openssh()?;
        let (csr, tls_key) = jaunt_ca::generate_client_csr(&name)?;
        let resp: NodeJoinResponse = self
            .anon
            .post(
                PATH_NODE_JOIN,
                &NodeJoinRequest {
                    token: jaunt_types::Secret::new(self.token.clone()),
                    name: name.clone(),
                    labels: labels.clone(),
                    addr: None,
                    host_public_key: host_public_key.clone(),
                    tls_csr_pem: csr,
                    sub_kind: None,
                    additional_principals: Vec::new(),
                },
            )
            .await?;
        let trust = Trust {
            ca_pin: Some(self.ca_pin.clone()),
            cluster_ca_pem: Some(resp.tls_ca_pem.clone()),
            insecure: false,
        };
        let api = ApiClient::new(
            &self.proxy,
            &trust,
            Some(&ClientCert {
                cert_pem: resp.tls_cert_pem.clone(),
                key_pem: tls_key.expose().clone(),
            }),
        )?;
        let valid_before =
            jaunt_ca::ssh_key::Certificate::from_openssh(resp.host_cert.trim())?.valid_before();
        Ok(SimNode {
            name,
            labels,
            api,
            host_public_key,
            valid_before,
        })
    }

    /// Joins node `i`, then heartbeats for ever at the interval auth says.
    async fn run_node(&self, i: usize) {
        use jaunt_types::api::{HeartbeatRequest, HeartbeatResponse, PATH_NODE_HEARTBEAT};
        let node = match self.join(i).await {
            Ok(node) => node,
            Err(e) => {
                eprintln!("sim-{i:05}: join failed: {e:#}");
                self.tally.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        self.tally.joined.fetch_add(1, Ordering::Relaxed);
        let mut every = Duration::from_secs(5);
        loop {
            // As a node does: no connection kept between heartbeats.
            let beat: Result<HeartbeatResponse, _> = node
                .api
                .post_once(
                    PATH_NODE_HEARTBEAT,
                    &HeartbeatRequest {
                        name: node.name.clone(),
                        labels: node.labels.clone(),
                        addr: None,
                        host_public_key: node.host_public_key.clone(),
                        host_cert_valid_before: node.valid_before,
                        host_cert_ca: None,
                        tls_csr_pem: None,
                    },
                )
                .await;
            match beat {
                Ok(r) => {
                    self.tally.beats.fetch_add(1, Ordering::Relaxed);
                    self.tally
                        .longest
                        .fetch_max(r.heartbeat_secs, Ordering::Relaxed);
                    every = Duration::from_secs(r.heartbeat_secs.max(1));
                }
                Err(_) => {
                    self.tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}

async fn inventory(
    proxy: String,
    ca_pin: String,
    token: String,
    count: usize,
    parallel: usize,
) -> anyhow::Result<()> {
    use jaunt_transport::{ApiClient, Trust};
    let trust = Trust {
        ca_pin: Some(ca_pin.clone()),
        ..Default::default()
    };
    let fleet = Arc::new(Fleet {
        anon: ApiClient::new(&proxy, &trust, None)?,
        proxy,
        ca_pin,
        token,
        gate: tokio::sync::Semaphore::new(parallel),
        tally: Tally::default(),
    });
    let start = Instant::now();
    for i in 0..count {
        let fleet = fleet.clone();
        tokio::spawn(async move { fleet.run_node(i).await });
    }
    // A progress line every 5 s: joined nodes, heartbeats, errors, and
    // the longest interval told.
    let t = &fleet.tally;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        println!(
            "t {:.0}s joined {} heartbeats {} errors {} interval {}s",
            start.elapsed().as_secs_f64(),
            t.joined.load(Ordering::Relaxed),
            t.beats.load(Ordering::Relaxed),
            t.errors.load(Ordering::Relaxed),
            t.longest.load(Ordering::Relaxed)
        );
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Sessions {
                target,
                concurrency,
                seconds,
            } => sessions(target, concurrency, seconds).await,
            Command::Idle { target, count } => idle(target, count).await,
            Command::Inventory {
                proxy,
                ca_pin,
                token,
                count,
                parallel,
            } => inventory(proxy, ca_pin, token, count, parallel).await,
            Command::AuditFill {
                db,
                events,
                days,
                users,
            } => audit_fill::run(&db, events, days, users).await,
        }
    })
}
