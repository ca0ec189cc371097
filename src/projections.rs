//! `waybill projections rebuild | catch-up`: build the read models from the
//! log with a progress bar, outside a running server (which holds the store).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use waybill_ledger::Position;
use waybill_projections::audit::{CheckpointPolicy, Transparency};
use waybill_projections::Projections;

use crate::cli::{ProjectionsArgs, ProjectionsCommand};
use crate::config::{FileConfig, DEFAULT_DATA_DIR};
use crate::open::open;

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

/// Runs the projections in `dir` until they reflect the log's head at the start.
async fn catch_up(
    args: &ProjectionsArgs,
    file: &FileConfig,
    dir: &Path,
    what: &str,
) -> anyhow::Result<Position> {
    let log = open(&args.log, file).await?;
    let handle = log.log();
    let head = handle.head().await?;
    let open_dir = dir.to_path_buf();
    let projections = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&open_dir)?;
        Projections::open(&open_dir).with_context(|| format!("opening {}", open_dir.display()))
    })
    .await??;
    let transparency = {
        let db = projections.store().db().clone();
        tokio::task::spawn_blocking(move || Transparency::open(&db, CheckpointPolicy::read_only()))
            .await??
    };
    let start = projections.applied();
    let bar = ProgressBar::with_draw_target(Some(head.0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.set_position(start.0);
    if start < head {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let runner = {
            let projections = projections.clone();
            let bar = bar.clone();
            tokio::spawn(async move {
                projections
                    .run(
                        handle,
                        async {
                            let _ = stop_rx.await;
                        },
                        move |p| bar.set_position(p.0),
                    )
                    .await
            })
        };
        let reached = loop {
            match projections.wait_for(head, Duration::from_secs(1)).await {
                Ok(p) => break Ok(p),
                Err(_) if runner.is_finished() => break Err(()),
                Err(_) => continue,
            }
        };
        let _ = stop_tx.send(());
        runner.await.context("projection runner")??;
        if reached.is_err() {
            anyhow::bail!("the projection runner stopped before reaching position {head}");
        }
    }
    // The Merkle tree of the log lives in the same store.
    if transparency.size() < head.0 {
        bar.set_message(format!("{what} (Merkle tree)"));
        bar.set_position(transparency.size());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let runner = {
            let transparency = transparency.clone();
            let log = log.log();
            tokio::spawn(async move {
                transparency
                    .run(log, async {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        };
        let reached = loop {
            match transparency.wait_for(head.0, Duration::from_secs(1)).await {
                Ok(_) => break true,
                Err(_) if runner.is_finished() => break false,
                Err(at) => bar.set_position(at),
            }
        };
        let _ = stop_tx.send(());
        runner.await.context("Merkle tree runner")??;
        if !reached {
            anyhow::bail!("the Merkle tree runner stopped before reaching position {head}");
        }
    }
    bar.finish_with_message(format!("{what}: done"));
    log.close().await;
    Ok(head)
}
