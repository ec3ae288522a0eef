//! `jaunt storage copy`: a single-machine cluster's state (identity, users,
//! roles, tokens, nodes, audit, recordings: all of it lives in the store)
//! moved to a shared PostgreSQL database, or back.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use jaunt_cli::daemon::open_backend;
use jaunt_cli::say;
use jaunt_config::Storage;
use jaunt_store::{Copied, SharedBackend, SqliteBackend, copy_store};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Subcommand)]
pub enum StorageCommand {
    /// Copy every item of one store into another (empty) one.
    Copy(CopyArgs),
}

#[derive(Args)]
pub struct CopyArgs {
    /// The store to read: sqlite:DATA_DIR (or a .db file) or postgres://...
    #[arg(long, value_name = "URI")]
    from: String,
    /// The store to write: postgres://... (or sqlite:PATH)
    #[arg(long, value_name = "URI")]
    to: String,
    /// Copy into a store that holds items already (its keys that the
    /// source also has are replaced).
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: StorageCommand) -> anyhow::Result<()> {
    match cmd {
        StorageCommand::Copy(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(copy(args)),
    }
}

/// The default data directory, for `sqlite:` with no path.
const DATA_DIR: &str = "/var/lib/jaunt";

async fn copy(args: CopyArgs) -> anyhow::Result<()> {
    let data_dir = Path::new(DATA_DIR);
    let from = Storage::from_uri(&args.from, data_dir).map_err(anyhow::Error::msg)?;
    let to = Storage::from_uri(&args.to, data_dir).map_err(anyhow::Error::msg)?;
    if from == to {
        bail!("--from and --to are the same store ({})", from.describe());
    }
    let (source, snapshot) = open_source(&from).await?;
    let result = copy_into(&source, &from, &to, args.force).await;
    drop(source); // closed before its files go
    if let Some(path) = snapshot {
        // The copy and the files SQLite keeps beside it while open.
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
    let done = result?;
    say!(
        "Copied {} items ({:.1} MiB) from {} to {}.",
        done.items,
        done.bytes as f64 / (1024.0 * 1024.0),
        from.describe(),
        to.describe()
    )?;
    if matches!(to, Storage::Postgres { .. }) {
        say!(
            "Start the auth+proxy instances with --storage-uri=<that URI> (or storage: in their config file)."
        )?;
    }
    Ok(())
}

/// The source to read from. A SQLite file is copied first (one consistent
/// snapshot, taken while the cluster may keep running) and read from the
/// copy, which the caller removes.
async fn open_source(from: &Storage) -> anyhow::Result<(SharedBackend, Option<PathBuf>)> {
    let Storage::Sqlite { path } = from else {
        return Ok((open_backend(from).await?, None));
    };
    if !path.is_file() {
        bail!(
            "no Jaunt database at {} (give sqlite:DATA_DIR, the directory holding jaunt.db)",
            path.display()
        );
    }
    let live = SqliteBackend::open(path).with_context(|| format!("opening {}", path.display()))?;
    let snapshot = path.with_extension(format!("copy-{}.db", std::process::id()));
    live.snapshot(&snapshot)
        .await
        .with_context(|| format!("taking a snapshot of {}", path.display()))?;
    let copy = SqliteBackend::open(&snapshot)?;
    Ok((Arc::new(copy), Some(snapshot)))
}

async fn copy_into(
    source: &SharedBackend,
    from: &Storage,
    to: &Storage,
    force: bool,
) -> anyhow::Result<Copied> {
    if let Storage::Sqlite { path } = to
        && let Some(dir) = path.parent()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let target = open_backend(to).await?;
    let total = source.count("").await?;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} items, {msg} ({elapsed}, about {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let done = copy_store(source.as_ref(), target.as_ref(), force, |c| {
        bar.set_position(c.items);
        bar.set_message(format!("{:.1} MiB", c.bytes as f64 / (1024.0 * 1024.0)));
    })
    .await
    .with_context(|| format!("copying {} to {}", from.describe(), to.describe()));
    bar.finish_and_clear();
    done
}
