//! `jaunt start`: resolve the configuration, bind, run until SIGINT/SIGTERM.

use crate::SettingsFlags;
use anyhow::Context;
use clap::Args;
use jaunt_cli::say;
use jaunt_config::{Config, FileConfig, Service};
use std::path::PathBuf;

#[derive(Args)]
pub struct StartArgs {
    /// A YAML config file (see 'jaunt configure'); flags override it.
    #[arg(short, long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsFlags,
}

fn load(args: &StartArgs) -> anyhow::Result<(Config, bool)> {
    let (file, source) = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let name = path.display().to_string();
            (FileConfig::parse(&text, &name)?, name)
        }
        None => (FileConfig::default(), "flags".to_string()),
    };
    // Whether the public address names its own port; if not, and the
    // proxy listens on port 0, it takes the port the kernel picked.
    let public_text = args
        .settings
        .public_addr
        .clone()
        .or(file.public_addr.clone());
    let public_given = public_text.as_deref().is_some_and(has_port);
    let config = Config::resolve(
        file,
        args.settings.to_file_config(),
        &crate::hostname(),
        &source,
    )?;
    Ok((config, public_given))
}

fn has_port(addr: &str) -> bool {
    match addr.rsplit_once(':') {
        Some((host, _)) => !addr.ends_with(']') && (!host.contains(':') || host.ends_with(']')),
        None => false,
    }
}

/// Every relayed session holds descriptors (two at the proxy, a socket and
/// three pipes at the node): lift the soft open-file limit to the hard one.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(error = %e, soft, hard, "cannot raise the open-file limit");
    }
}

/// The log filter for `level` (`JAUNT_LOG`, when set, wins).
fn log_filter(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("JAUNT_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,jaunt={level},jaunt_auth={level},jaunt_proxy={level},jaunt_node={level},jaunt_forward={level}"
        ))
    })
}

type LogLevelHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Logs to stderr as text or JSON lines; the returned handle changes the
/// level later (SIGHUP).
fn init_logging(config: &Config) -> LogLevelHandle {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(log_filter(&config.log_level));
    let registry = tracing_subscriber::registry().with(filter);
    match config.log_format {
        jaunt_config::LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
        jaunt_config::LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
    handle
}

pub fn run(args: StartArgs) -> anyhow::Result<()> {
    let (mut config, public_given) = load(&args)?;
    let log_level = init_logging(&config);
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Before anything says the daemon runs: a signal sent as soon as
        // it does must find its handler (SIGHUP's default would kill).
        let signals = Signals::new()?;
        let listener = if config.runs(Service::Proxy) {
            let l = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("listening on {}", config.listen))?;
            // With port 0 the kernel picks; clients must be told the real one.
            let bound = l.local_addr()?;
            if !public_given && config.listen.port() == 0 {
                config.public_addr = if config.public_host.contains(':') {
                    format!("[{}]:{}", config.public_host, bound.port())
                } else {
                    format!("{}:{}", config.public_host, bound.port())
                };
            }
            Some(l)
        } else {
            None
        };
        let daemon = jaunt_cli::daemon::start(&config, listener, None).await?;
        let services: Vec<&str> = config
            .services
            .iter()
            .map(|s| match s {
                Service::Auth => "auth",
                Service::Proxy => "proxy",
                Service::Node => "node",
            })
            .collect();
        match &daemon.node {
            Some(node) if daemon.auth.is_none() => say!(
                "Jaunt node {:?} of cluster {:?} is running.",
                node_name(&config),
                node.cluster
            )?,
            _ => say!(
                "Jaunt cluster {:?} is running ({}).",
                config.cluster_name,
                services.join(", ")
            )?,
        }
        if let Some(addr) = daemon.proxy_addr {
            say!(
                "  Proxy:     https://{} (listening on {addr})",
                config.public_addr
            )?;
        }
        if let Some(pin) = &daemon.ca_pin {
            say!("  CA pin:    {pin}")?;
        }
        if let Some(node) = &daemon.node {
            let mode = match node.ssh_addr {
                Some(addr) => format!("SSH on {addr}"),
                None => "reverse tunnel to the proxy".to_string(),
            };
            say!("  Node:      {} ({}), {mode}", node.uuid, node.cluster)?;
        }
        say!("  Data dir:  {}", config.data_dir.display())?;
        if daemon.auth.is_some() {
            say!("  Store:     {}", config.storage.describe())?;
            say!(
                "Add a user: jctl --data-dir={} users add NAME --roles=access --logins=NAME",
                config.data_dir.display()
            )?;
        } else {
            say!("Ready.")?;
        }
        match wait_for_signal(signals, &args, &config, &log_level, &daemon).await? {
            Stop::Now => {
                tracing::info!("shutting down");
                daemon.stop().await;
            }
            Stop::Drain => {
                tracing::info!(timeout = %config.shutdown_timeout, "SIGTERM: draining, then shutting down");
                daemon
                    .drain(std::time::Duration::from_secs(config.shutdown_timeout.as_secs()))
                    .await;
            }
        }
        Ok(())
    })
}

fn node_name(config: &Config) -> String {
    config
        .node
        .as_ref()
        .map(|n| n.nodename.clone())
        .unwrap_or_default()
}

/// Runs until SIGINT or SIGTERM; on SIGHUP reads the configuration again
/// and applies what can change while running (the log level), saying what
/// it applied and what waits for a restart.
/// How the daemon stops: SIGINT (a terminal's ^C) at once, SIGTERM (a
/// service manager) after draining.
enum Stop {
    Now,
    Drain,
}

/// The signals the daemon acts on, registered once at its start.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

async fn wait_for_signal(
    mut signals: Signals,
    args: &StartArgs,
    running: &Config,
    log_level: &LogLevelHandle,
    daemon: &jaunt_cli::daemon::Daemon,
) -> anyhow::Result<Stop> {
    let mut level = running.log_level.clone();
    loop {
        tokio::select! {
            _ = signals.int.recv() => return Ok(Stop::Now),
            _ = signals.term.recv() => return Ok(Stop::Drain),
            _ = signals.hup.recv() => match load(args) {
                Ok((fresh, _)) => {
                    if fresh.log_level != level {
                        match log_level.reload(log_filter(&fresh.log_level)) {
                            Ok(()) => {
                                tracing::warn!(from = %level, to = %fresh.log_level, "SIGHUP: log level reloaded");
                                level = fresh.log_level.clone();
                            }
                            Err(e) => tracing::warn!(error = %e, "SIGHUP: cannot change the log level"),
                        }
                    } else {
                        tracing::warn!(%level, "SIGHUP: configuration read again; the log level is unchanged");
                    }
                    match daemon.reload(&fresh) {
                        Ok(done) => {
                            for what in done {
                                tracing::warn!(%what, "SIGHUP: reloaded");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "SIGHUP: cannot reload the proxy's limits and certificate"),
                    }
                    tracing::warn!("SIGHUP: other settings (addresses, storage, roles) take effect at the next restart");
                }
                Err(e) => tracing::warn!(error = %e, "SIGHUP: the configuration has an error; nothing reloaded"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn explicit_ports() {
        for (addr, want) in [
            ("a.b", false),
            ("a.b:443", true),
            ("[::1]", false),
            ("[::1]:22", true),
            ("::1", false),
        ] {
            assert_eq!(super::has_port(addr), want, "{addr}");
        }
    }
}
