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
use jaunt_client::putty::{self, RegFile, Store, config};
use jaunt_types::api::{NodeListResponse, PATH_NODES};

#[derive(Args)]
pub struct PuttyconfigArgs {
    /// The SSH port to store [default: the node's registered port]
    #[arg(long)]
    port: Option<u16>,
    /// A leaf cluster's node, through the root's proxy (log in to the root).
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

pub fn run(args: PuttyconfigArgs) -> anyhow::Result<()> {
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
        let rows: Vec<Vec<String>> = config::list(putty)?
            .into_iter()
            .map(|s| vec![s.name, s.host, s.port, s.login, s.cluster])
            .collect();
        print_text(&table::render(
            &["Session", "Host", "Port", "Login", "Cluster"],
            &rows,
        ))?;
        return Ok(());
    }
    if args.remove && args.all {
        let removed = config::remove_all(putty)?;
        for name in &removed.sessions {
            say!("Removed PuTTY session {name}")?;
        }
        for name in &removed.host_cas {
            say!("Removed PuTTY host CA {name}")?;
        }
        if removed == config::Removed::default() {
            say!("No PuTTY sessions or host CAs made by jsh.")?;
        }
        return Ok(());
    }
    let home = Home::from_env()?;
    let (profile, client) = logged_in_client(&home, None)?;
    let default_login = crate::commands::login::os_user();
    if args.remove {
        let [target] = args.args.as_slice() else {
            anyhow::bail!("say which session to remove: jsh puttyconfig --remove [login@]host");
        };
        let name = config::remove(
            putty,
            target,
            default_login,
            &profile.name(),
            args.leaf.as_deref(),
        )?;
        say!("Removed PuTTY session {name}")?;
        return Ok(());
    }
    let runtime = crate::runtime()?;
    let (cluster, path) = match args.leaf.as_deref() {
        Some(leaf) => {
            jaunt_types::resources::validate_name(leaf)
                .map_err(|e| anyhow::anyhow!("--leaf: {e}"))?;
            // The leaf's host CA, for its JauntHostCA- entry.
            let clusters = runtime.block_on(jaunt_client::clusters::fetch(&client))?;
            if !clusters.iter().any(|c| c.name == leaf && c.kind == "leaf") {
                anyhow::bail!(
                    "{leaf:?} is not a leaf cluster of {} (see 'jsh clusters')",
                    profile.cluster
                );
            }
            jaunt_client::clusters::remember(&home, &profile, &clusters)?;
            (leaf.to_string(), format!("{PATH_NODES}?cluster={leaf}"))
        }
        None => (profile.cluster.clone(), PATH_NODES.to_string()),
    };
    let nodes: NodeListResponse = runtime.block_on(client.get(&path))?;
    let choices = if args.all {
        let login = args
            .login
            .clone()
            .or(default_login)
            .ok_or_else(|| anyhow::anyhow!("give the login with --login"))?;
        config::choose_all(&nodes.nodes, &args.args, &login, args.port)?
    } else {
        let [target] = args.args.as_slice() else {
            anyhow::bail!("say which node: jsh puttyconfig [login@]host[:port] (see 'jsh ls')");
        };
        vec![config::choose_one(
            &nodes.nodes,
            target,
            default_login,
            args.port,
            &cluster,
        )?]
    };
    let exe = std::env::current_exe()?.display().to_string();
    for (name, added) in
        config::write_sessions(putty, &home, &profile, args.leaf.as_deref(), &choices, &exe)?
    {
        match added {
            true => say!("Added PuTTY session for {name}")?,
            false => say!("Updated PuTTY session for {name}")?,
        }
    }
    if let Some(file) = reg_file {
        let path = file.describe();
        file.finish()?;
        say!("Wrote {path}; import it with: regedit /S \"{path}\"")?;
    }
    Ok(())
}
