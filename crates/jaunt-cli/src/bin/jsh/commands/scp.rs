//! `jsh scp`: copy files to and from a node over SFTP through the proxy,
//! with a progress bar per file on a terminal (none when the output is
//! not one), as the reference product's `tsh scp`.

use clap::Args;
use jaunt_client::scp::{Direction, Progress, download, plan, upload};
use std::io::IsTerminal;
use std::sync::Mutex;

#[derive(Args)]
pub struct ScpArgs {
    /// Copy directories and what they hold.
    #[arg(short = 'r', long)]
    recursive: bool,
    /// The node's port [default: its registered port]
    #[arg(short = 'P', long = "port")]
    port: Option<u16>,
    /// A leaf cluster's node, through the root's proxy.
    #[arg(long)]
    cluster: Option<String>,
    /// No progress bars.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// SOURCE... DEST: one side remote, [login@]host:path.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<String>,
}

/// One indicatif bar per file, on stderr when it is a terminal.
struct Bars {
    shown: bool,
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Progress for Bars {
    fn start(&self, name: &str, len: u64) {
        let bar = match self.shown {
            true => indicatif::ProgressBar::new(len),
            false => indicatif::ProgressBar::hidden(),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_message(name.to_string());
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(bar);
        }
    }

    fn advance(&self, bytes: u64) {
        if let Ok(b) = self.bar.lock()
            && let Some(bar) = b.as_ref()
        {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Ok(mut b) = self.bar.lock()
            && let Some(bar) = b.take()
        {
            bar.finish();
        }
    }
}

pub fn run(args: ScpArgs) -> anyhow::Result<()> {
    let plan = plan(&args.paths)?;
    let login = match plan.login.clone() {
        Some(l) => l,
        None => crate::commands::login::os_user()
            .ok_or_else(|| anyhow::anyhow!("give the login as LOGIN@HOST:PATH"))?,
    };
    let (home, profile, client, cluster) = crate::logged_in(args.cluster.as_deref())?;
    let progress = Bars {
        shown: !args.quiet && std::io::stderr().is_terminal(),
        bar: Mutex::new(None),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let handle = jaunt_client::ssh::connect_to(
            &home,
            &profile,
            &client,
            &jaunt_client::ssh::Destination {
                cluster: &cluster,
                login: &login,
                host: &plan.host,
                port: args.port,
            },
            None,
        )
        .await?;
        let sftp = jaunt_client::scp::sftp(&handle).await?;
        match &plan.direction {
            Direction::Upload { sources, dest } => {
                upload(&sftp, sources, dest, args.recursive, &progress).await?
            }
            Direction::Download { sources, dest } => {
                download(&sftp, sources, dest, args.recursive, &progress).await?
            }
        }
        let _ = sftp.close().await;
        anyhow::Ok(())
    })?;
    runtime.shutdown_background();
    Ok(())
}
