//! `waybill projections rebuild | catch-up`: build the read models from the
//! log with a progress bar, outside a running server (which holds the store).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use waybill_ledger::Position;
use waybill_projections::audit::{CheckpointPolicy, Transparency};
use waybill_projections::Projections;

use crate::cli::{ProjectionsArgs, ProjectionsCommand};
use crate::config::{FileConfig, DEFAULT_DATA_DIR};
use crate::open::open_existing;

/// The page cache of an offline build: it writes mostly at the tails of the
/// keyspace, which a small cache holds. On the 1M-event bench ledger, 16 MiB
/// keeps the rebuild's peak RSS under 200 MB (193 MB) for 17% more time than
/// 64 MiB (125 s against 107 s, 236 MB); `--cache-mb` trades one for the other.
pub const BUILD_CACHE_MB: u64 = 16;

/// The page cache of an embedded log while the read models are built from
/// it: the log is read through once, in order. On the 300,000-event bench
/// ledger 2 MiB peaked at 184-199 MB against 202-204 MB with 16, in no more
/// time (18.6-19.5 s against 19.7-21.1 s).
const LOG_CACHE_MB: u64 = 2;

pub async fn run(command: ProjectionsCommand, file: &FileConfig) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Rebuild(args) => rebuild(&args, file).await,
        ProjectionsCommand::CatchUp(args) => {
            let dir = projections_dir(&args, file);
            catch_up(&args, file, &dir, "catching up").await.map(|_| ())
        }
    }
}

fn projections_dir(args: &ProjectionsArgs, file: &FileConfig) -> PathBuf {
    args.log
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
        .join("projections")
}

async fn rebuild(args: &ProjectionsArgs, file: &FileConfig) -> anyhow::Result<()> {
    let dir = projections_dir(args, file);
    // Hold the lock sled keeps on the old store's `db` file until the swap:
    // a server running on it holds that lock (refuse rather than swap the
    // store from under it), and while the rebuild holds it none starts.
    let _held = lock_store(&dir)?;
    let fresh = dir.with_file_name("projections.rebuild");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)
            .with_context(|| format!("removing an unfinished rebuild in {}", fresh.display()))?;
    }
    let head = catch_up(args, file, &fresh, "rebuilding").await?;
    // Swap: the old store goes only once the new one is complete.
    let old = dir.with_file_name("projections.old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(&dir, &old).with_context(|| format!("moving {} aside", dir.display()))?;
    }
    std::fs::rename(&fresh, &dir).with_context(|| format!("installing {}", dir.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    eprintln!(
        "rebuilt the read models in {} up to position {head}",
        dir.display()
    );
    Ok(())
}

/// Takes the lock sled takes on the store in `dir` (on its `db` file), if
/// there is a store; the lock goes with the file.
fn lock_store(dir: &Path) -> anyhow::Result<Option<std::fs::File>> {
    let db = dir.join("db");
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(&db) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", db.display())),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            anyhow::bail!(waybill_projections::store::in_use(dir))
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", db.display()))
        }
    }
}

/// Runs the projections in `dir` until they reflect the log's head at the start.
async fn catch_up(
    args: &ProjectionsArgs,
    file: &FileConfig,
    dir: &Path,
    what: &str,
) -> anyhow::Result<Position> {
    // The log is read through once, in order: a small cache will do.
    let log = open_existing(&args.log, file, Some(LOG_CACHE_MB << 20)).await?;
    let handle = log.log();
    let head = handle.head().await?;
    let open_dir = dir.to_path_buf();
    let cache_mb = args.cache_mb.or(file.cache_mb).unwrap_or(BUILD_CACHE_MB);
    let projections = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&open_dir)?;
        Projections::open_with_cache(&open_dir, cache_mb << 20)
            .with_context(|| format!("opening {}", open_dir.display()))
    })
    .await??;
    let transparency = {
        let db = projections.store().db().clone();
        tokio::task::spawn_blocking(move || Transparency::open(&db, CheckpointPolicy::read_only()))
            .await??
    };
    waybill_projections::origin::check_built_from(
        &*handle,
        projections.applied(),
        transparency.store(),
        dir,
    )
    .await?;
    let start = projections.applied().min(Position(transparency.size()));
    let bar = crate::progress::terminal_bar(
        head.0,
        "{msg} {bar:40} {pos}/{len} events ({per_sec}, eta {eta})",
    );
    bar.set_message(what.to_string());
    bar.set_position(start.0);
    // The read models and the Merkle tree of the log (in the same store)
    // each read the log, at once: one waits for sled while the other works.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let views = (projections.applied() < head).then(|| {
        let projections = projections.clone();
        let (log, stop) = (log.log(), stopped(stop_rx.clone()));
        tokio::spawn(async move { projections.run(log, stop, |_| {}).await })
    });
    let tree = (transparency.size() < head.0).then(|| {
        let transparency = transparency.clone();
        let (log, stop) = (log.log(), stopped(stop_rx.clone()));
        tokio::spawn(async move { transparency.run(log, stop).await })
    });
    let finished = |h: &Option<tokio::task::JoinHandle<_>>| {
        h.as_ref().is_some_and(tokio::task::JoinHandle::is_finished)
    };
    let reached = loop {
        let done = (projections.applied(), Position(transparency.size()));
        bar.set_position(done.0.min(done.1).0);
        if done.0 >= head && done.1 >= head {
            break true;
        }
        if finished(&views) || finished(&tree) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = stop_tx.send(true);
    if let Some(views) = views {
        views.await.context("projection runner")??;
    }
    if let Some(tree) = tree {
        tree.await.context("Merkle tree runner")??;
    }
    if !reached {
        anyhow::bail!("the projections stopped before reaching position {head}");
    }
    bar.finish_with_message(format!("{what}: done"));
    log.close().await;
    Ok(head)
}
