//! `jsh puttyconfig`: PuTTY saved sessions that reach nodes through the
//! proxy with the login's certificate, and trust for the cluster's host CA,
//! so PuTTY never asks about host keys and WinSCP can import the sessions.
//! On Windows in the registry (HKEY_CURRENT_USER), on Unix in PuTTY's own
//! directory (the reference product only writes the registry), or with
//! --reg-file into a `.reg` file to import elsewhere.

use clap::Args;
use jaunt_cli::{print_text, say, table};
use jaunt_client::home::Home;
use jaunt_client::login::logged_in_client;
use jaunt_client::putty::{self, RegFile, Store, host_ca_lines};
use jaunt_putty::names::session_name;
use jaunt_putty::settings::{SessionSpec, get};
use jaunt_types::api::{NodeInfo, NodeListResponse, PATH_NODES};
use jaunt_types::route::{parse_target, resolve};

#[derive(Args)]
pub struct PuttyconfigArgs {
    /// The SSH port to store [default: the node's registered port]
    #[arg(long)]
    port: Option<u16>,
    /// A leaf cluster's node (not supported yet).
    #[arg(long)]
    leaf: Option<String>,
    /// A session for every node you can reach (filtered by key=value labels).
    #[arg(long, conflicts_with = "list")]
    all: bool,
    /// With --all: the login to use [default: your OS user name]
    #[arg(long)]
    login: Option<String>,
    /// List the sessions jsh made.
    #[arg(long)]
    list: bool,
    /// Remove the session for [login@]host (or, with --all, every session jsh made).
    #[arg(long)]
    remove: bool,
    /// Write the entries to this .reg file (Windows) instead of the registry.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["list", "remove"])]
    reg_file: Option<std::path::PathBuf>,
    /// [login@]host[:port], or with --all: key=value label filters.
    args: Vec<String>,
}

/// The port a session stores for a node: its registered one, else 3022.
fn node_port(node: &NodeInfo) -> u16 {
    node.addr
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(3022)
}

fn proxy_command(cluster: &str) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?.display().to_string();
    // PuTTY on Windows needs each backslash in the command doubled.
    let exe = if cfg!(windows) {
        exe.replace('\\', "\\\\")
    } else {
        exe
    };
    let exe = match exe.contains(' ') {
        true => format!("\"{exe}\""),
        false => exe,
    };
    Ok(format!(
        "{exe} proxy ssh --cluster={cluster} --proxy=%proxyhost:%proxyport %user@%host:%port"
    ))
}

pub fn run(args: PuttyconfigArgs) -> anyhow::Result<()> {
    if args.leaf.is_some() {
        anyhow::bail!("leaf clusters are not supported yet");
    }
    if args.reg_file.is_some() && !cfg!(windows) {
        anyhow::bail!(
            "--reg-file writes Windows registry entries naming this machine's key files; \
             run jsh.exe puttyconfig on the Windows machine"
        );
    }
    let reg_file = args.reg_file.as_deref().map(RegFile::new);
    let native;
    let putty: &dyn Store = match &reg_file {
        Some(file) => file,
        None => {
            native = putty::native()?;
            native.as_ref()
        }
    };
    if args.list {
        let rows: Vec<Vec<String>> = putty::jaunt_sessions(putty)?
            .into_iter()
            .map(|(name, l)| {
                let cluster = get(&l, "ProxyTelnetCommand")
                    .and_then(|c| c.split("--cluster=").nth(1))
                    .and_then(|c| c.split_whitespace().next())
                    .unwrap_or("")
                    .to_string();
                vec![
                    name,
                    get(&l, "HostName").unwrap_or("").to_string(),
                    get(&l, "PortNumber").unwrap_or("").to_string(),
                    get(&l, "UserName").unwrap_or("").to_string(),
                    cluster,
                ]
            })
            .collect();
        print_text(&table::render(
            &["Session", "Host", "Port", "Login", "Cluster"],
            &rows,
        ))?;
        return Ok(());
    }
    if args.remove && args.all {
        let mut n = 0;
        for (name, _) in putty::jaunt_sessions(putty)? {
            putty::remove_session(putty, &name)?;
            say!("Removed PuTTY session {name}")?;
            n += 1;
        }
        if n == 0 {
            say!("No PuTTY sessions made by jsh.")?;
        }
        return Ok(());
    }
    let home = Home::from_env()?;
    let (profile, client) = logged_in_client(&home, None)?;
    let proxy_host = profile.name();
    let default_login = crate::commands::login::os_user();
    if args.remove {
        let [target] = args.args.as_slice() else {
            anyhow::bail!("say which session to remove: jsh puttyconfig --remove [login@]host");
        };
        let t = parse_target(target).map_err(anyhow::Error::msg)?;
        let login = t
            .login
            .or(default_login)
            .ok_or_else(|| anyhow::anyhow!("give the login as LOGIN@HOST"))?;
        let name = session_name(&login, &t.host, &proxy_host, None);
        if putty::remove_session(putty, &name)? {
            say!("Removed PuTTY session {name}")?;
            return Ok(());
        }
        anyhow::bail!("no PuTTY session {name:?} made by jsh (see 'jsh puttyconfig --list')");
    }
    let nodes: NodeListResponse = crate::runtime()?.block_on(client.get(PATH_NODES))?;
    let mut chosen: Vec<(String, NodeInfo, u16)> = Vec::new();
    if args.all {
        let login = args
            .login
            .clone()
            .or(default_login)
            .ok_or_else(|| anyhow::anyhow!("give the login with --login"))?;
        for n in &nodes.nodes {
            let matches = args.args.iter().all(|f| match f.split_once('=') {
                Some((k, v)) => n.labels.get(k).map(String::as_str) == Some(v),
                None => false,
            });
            if matches {
                chosen.push((
                    login.clone(),
                    n.clone(),
                    args.port.unwrap_or_else(|| node_port(n)),
                ));
            }
        }
        if chosen.is_empty() {
            anyhow::bail!("no node you can reach matches; see 'jsh ls'");
        }
    } else {
        let [target] = args.args.as_slice() else {
            anyhow::bail!("say which node: jsh puttyconfig [login@]host[:port] (see 'jsh ls')");
        };
        let t = parse_target(target).map_err(anyhow::Error::msg)?;
        let login = t
            .login
            .or(default_login)
            .ok_or_else(|| anyhow::anyhow!("give the login as LOGIN@HOST"))?;
        jaunt_types::resources::validate_login(&login).map_err(anyhow::Error::msg)?;
        let node = resolve(&nodes.nodes, &t.host, None, &profile.cluster).map_err(|_| {
            anyhow::anyhow!(
                "{} is not a node you can reach; run 'jsh ls' to see them",
                t.host
            )
        })?;
        let port = args.port.or(t.port).unwrap_or_else(|| node_port(node));
        chosen.push((login, node.clone(), port));
    }
    let ca_keys = host_ca_lines(&home, &profile.cluster)?;
    if ca_keys.is_empty() {
        anyhow::bail!(
            "no host CA for cluster {:?} in your known_hosts; run 'jsh login' again",
            profile.cluster
        );
    }
    let hosts: Vec<String> = chosen.iter().map(|(_, n, _)| n.name.clone()).collect();
    putty::trust_host_cas(putty, &profile.cluster, &ca_keys, &hosts)?;
    let (_, proxy_port) = jaunt_types::addr::split_host_port(&profile.web_proxy_addr, 3080)
        .map_err(anyhow::Error::msg)?;
    for (login, node, port) in chosen {
        let name = session_name(&login, &node.name, &proxy_host, None);
        let spec = SessionSpec {
            host: node.name.clone(),
            port,
            login: login.clone(),
            ppk_path: home
                .ppk_path(&proxy_host, &profile.user)
                .display()
                .to_string(),
            cert_path: home
                .ssh_cert_path(&proxy_host, &profile.user, &profile.cluster)
                .display()
                .to_string(),
            proxy_host: proxy_host.clone(),
            proxy_port,
            proxy_command: proxy_command(&profile.cluster)?,
        };
        if putty::save_session(putty, &name, &spec)? {
            say!("Added PuTTY session for {name}")?;
        } else {
            say!("Updated PuTTY session for {name}")?;
        }
    }
    if let Some(file) = reg_file {
        let path = file.describe();
        file.finish()?;
        say!("Wrote {path}; import it with: regedit /S \"{path}\"")?;
    }
    Ok(())
}
