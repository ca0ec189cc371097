//! `waybill copy`: the whole log into another log, record for record: an
//! embedded ledger onto NATS JetStream when a trial becomes production, or a
//! JetStream stream into a data directory as a backup. Every record keeps its
//! bytes, hash and position, so chains, Merkle roots and signed checkpoints
//! stay valid; a copy that stops part-way resumes from the target's head.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde_json::json;
use waybill_ledger::audit::leaf_hash;
use waybill_ledger::{EventLog, LedgerError, Position, StoredEvent};

use crate::cli::LogArgs;
use crate::client::Output;
use crate::config::FileConfig;
use crate::open::{open, open_existing};

/// Records per `append_copies` call: one fsync on the embedded log, one
/// pipeline of publishes on JetStream.
const BATCH: usize = 512;

/// How often a copy without a terminal says how far it is.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// `waybill copy`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["to_data_dir", "to_nats"])))]
pub struct CopyArgs {
    /// The log to copy (as `serve` opens it: `--data-dir` or `--nats`, the
    /// config file, the environment).
    #[command(flatten)]
    pub from: LogArgs,
    /// Copy into this data directory (created if absent; an embedded log
    /// that is not in use).
    #[arg(long)]
    pub to_data_dir: Option<PathBuf>,
    /// Copy into JetStream on these NATS server(s) (the stream is created if absent).
    #[arg(long)]
    pub to_nats: Option<String>,
    /// NATS credentials file for --to-nats.
    #[arg(long, requires = "to_nats")]
    pub to_nats_creds: Option<PathBuf>,
    /// PEM CA of the --to-nats servers' certificates.
    #[arg(long, requires = "to_nats")]
    pub to_nats_ca: Option<PathBuf>,
    /// PEM client certificate for --to-nats (with --to-nats-key).
    #[arg(long, requires = "to_nats")]
    pub to_nats_cert: Option<PathBuf>,
    /// PEM key of --to-nats-cert.
    #[arg(long, requires = "to_nats")]
    pub to_nats_key: Option<PathBuf>,
    /// Stream name on --to-nats [default: WAYBILL].
    #[arg(long, requires = "to_nats")]
    pub to_stream: Option<String>,
    /// Replicas when the stream on --to-nats is created [default: 1].
    #[arg(long, requires = "to_nats")]
    pub to_replicas: Option<usize>,
    /// Subject prefix of the stream on --to-nats [default: waybill]; another
    /// than the source's to copy into a second stream on the same account.
    #[arg(long, requires = "to_nats")]
    pub to_subject_prefix: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = crate::client::Output::Text)]
    pub output: crate::client::Output,
}

impl CopyArgs {
    /// The target, as the log options `open` takes.
    fn target(&self) -> LogArgs {
        LogArgs {
            data_dir: self.to_data_dir.clone(),
            nats: self.to_nats.clone(),
            nats_creds: self.to_nats_creds.clone(),
            nats_ca: self.to_nats_ca.clone(),
            nats_cert: self.to_nats_cert.clone(),
            nats_key: self.to_nats_key.clone(),
            stream: self.to_stream.clone(),
            subject_prefix: self.to_subject_prefix.clone(),
            replicas: self.to_replicas,
            ..LogArgs::default()
        }
    }
}

/// Where the copy starts: after the target's head, once the target is known
/// to hold the source's first events (nothing, or an earlier copy).
pub async fn resume_point(
    source: &dyn EventLog,
    target: &dyn EventLog,
) -> anyhow::Result<Position> {
    let (source_head, target_head) = (source.head().await?, target.head().await?);
    anyhow::ensure!(
        target_head <= source_head,
        "the target holds {} events, more than the source's {}: it is another ledger; copy \
         into an empty data directory or stream",
        target_head,
        source_head
    );
    if target_head > Position::ZERO {
        let (ours, theirs) = (
            message_at(source, target_head).await?,
            message_at(target, target_head).await?,
        );
        let same = matches!((&ours, &theirs), (Some(a), Some(b)) if a == b);
        anyhow::ensure!(
            same,
            "the target's event at position {target_head} is not the source's: it is another \
             ledger; copy into an empty data directory or stream"
        );
    }
    Ok(target_head.next())
}

/// The position and hash of the message at `at` (its chain hash, or for a
/// message Waybill did not write, the leaf hash of its bytes).
async fn message_at(
    log: &dyn EventLog,
    at: Position,
) -> anyhow::Result<Option<(Position, [u8; 32])>> {
    let mut events = log.read_all(at).await?;
    Ok(match events.next().await {
        None => None,
        Some(Ok(ev)) => Some((ev.position, ev.hash.0)),
        Some(Err(LedgerError::Foreign(f))) => Some((f.position, leaf_hash(&f.bytes))),
        Some(Err(e)) => return Err(e.into()),
    })
}

/// What a copy writes, in order: runs of records, and the messages Waybill
/// did not write between them (each at its position, so that positions,
/// and with them the Merkle tree and its signed checkpoints, stay the
/// source's).
struct Copier<'a> {
    to: &'a dyn EventLog,
    batch: Vec<StoredEvent>,
    copied: u64,
}

impl<'a> Copier<'a> {
    fn new(to: &'a dyn EventLog) -> Copier<'a> {
        Copier {
            to,
            batch: Vec::with_capacity(BATCH),
            copied: 0,
        }
    }

    /// Takes the next item of the source; returns the position written
    /// last when it wrote.
    async fn take(
        &mut self,
        item: Result<StoredEvent, LedgerError>,
    ) -> anyhow::Result<Option<Position>> {
        match item {
            Ok(ev) => {
                self.batch.push(ev);
                if self.batch.len() < BATCH {
                    return Ok(None);
                }
                self.flush().await
            }
            Err(LedgerError::Foreign(f)) => {
                self.flush().await?;
                let last = self.to.append_foreign_copy(&f).await.with_context(|| {
                    format!(
                        "copying position {} (a message Waybill did not write); what was \
                         copied before stays, and a copy resumes after it",
                        f.position
                    )
                })?;
                self.copied += 1;
                Ok(Some(last))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the records taken and not written yet.
    async fn flush(&mut self) -> anyhow::Result<Option<Position>> {
        let (Some(first), Some(last)) = (self.batch.first(), self.batch.last()) else {
            return Ok(None);
        };
        let (first, last) = (first.position, last.position);
        let written = self.to.append_copies(&self.batch).await.with_context(|| {
            format!(
                "copying positions {first} to {last}; what was copied before stays, and a \
                 copy resumes after it"
            )
        })?;
        self.copied += self.batch.len() as u64;
        self.batch.clear();
        Ok(Some(written))
    }
}

/// Copies the events from `start` to `head` of `from` into `to`, [`BATCH`]
/// at a time, calling `progress` with the last position of each batch;
/// returns how many it copied.
pub async fn copy_range(
    from: &dyn EventLog,
    to: &dyn EventLog,
    start: Position,
    head: Position,
    mut progress: impl FnMut(Position),
) -> anyhow::Result<u64> {
    if start > head {
        return Ok(0);
    }
    let mut events = from.read_all(start).await?;
    let mut copier = Copier::new(to);
    while let Some(item) = events.next().await {
        let at = match &item {
            Ok(ev) => ev.position,
            Err(LedgerError::Foreign(f)) => f.position,
            Err(_) => Position::ZERO,
        };
        if at > head {
            break;
        }
        if let Some(last) = copier.take(item).await? {
            progress(last);
        }
    }
    if let Some(last) = copier.flush().await? {
        progress(last);
    }
    Ok(copier.copied)
}

/// Brings `target` up to `source`'s head (at a clean stop of `serve
/// --backup-dir`, once nothing appends any more).
pub async fn catch_up(source: &dyn EventLog, target: &dyn EventLog) -> anyhow::Result<u64> {
    let start = resume_point(source, target).await?;
    let head = source.head().await?;
    copy_range(source, target, start, head, |last| {
        metrics::gauge!("waybill_backup_position").set(last.0 as f64);
    })
    .await
}

pub async fn run(args: CopyArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let output = args.output;
    if let (Some(to), None) = (&args.to_data_dir, &args.from.nats) {
        let from = crate::config::data_dir(&args.from, file);
        let same = matches!(
            (std::fs::canonicalize(&from), std::fs::canonicalize(to)),
            (Ok(a), Ok(b)) if a == b
        );
        anyhow::ensure!(!same, "--to-data-dir {} is the log to copy", to.display());
    }
    let source = open_existing(&args.from, file, None)
        .await
        .context("opening the log to copy")?;
    let target = open(&args.target(), &FileConfig::default())
        .await
        .context("opening the target")?;
    let (from, to) = (source.log(), target.log());
    let start = resume_point(&*from, &*to).await?;
    let head = from.head().await?;
    let started = Instant::now();
    let bar = crate::progress::terminal_bar(
        head.0,
        "copying {bar:40} {pos}/{len} events ({per_sec}, eta {eta})",
    );
    bar.set_position(start.0 - 1);
    let mut last_report = Instant::now();
    let copied = copy_range(&*from, &*to, start, head, |last| {
        bar.set_position(last.0);
        // Without a terminal (a cron job, a pod), a line now and then.
        if bar.is_hidden() && last_report.elapsed() >= REPORT_EVERY {
            last_report = Instant::now();
            eprintln!("copied up to position {last} of {head}...");
        }
    })
    .await?;
    bar.finish_and_clear();
    let target_head = to.head().await?;
    source.close().await;
    target.close().await;
    let secs = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    match output {
        Output::Json => writeln!(
            out,
            "{}",
            json!({
                "copied": copied,
                "from_position": start.0,
                "target_head": target_head.0,
                "seconds": secs,
            })
        )?,
        Output::Text if copied == 0 => writeln!(
            out,
            "nothing to copy: the target already holds the source's {} events",
            target_head.0
        )?,
        Output::Text => writeln!(
            out,
            "copied {copied} events (positions {} to {}) in {secs:.1} s; the target holds {} \
             events. Check it with `waybill verify`.",
            start.0, target_head.0, target_head.0
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps `target` a copy of `source` as it grows (`serve --backup-dir`):
/// from the target's head, every event of the source's tail, in batches of
/// whatever has arrived (at most [`BATCH`]), until `stop`. A failure (the
/// target's disk, the source unreachable) is logged and the copy starts
/// again from the target's head after a pause; the target is a prefix of
/// the source at every moment.
pub async fn follow(
    source: Arc<dyn EventLog>,
    target: Arc<dyn EventLog>,
    stop: impl std::future::Future<Output = ()>,
) {
    use futures::FutureExt as _;
    tokio::pin!(stop);
    let mut failures = 0u32;
    loop {
        let mut progressed = false;
        let run = async {
            let start = resume_point(&*source, &*target).await?;
            let mut events = source.tail(start).await?;
            let mut copier = Copier::new(&*target);
            while let Some(first) = events.next().await {
                let mut wrote = copier.take(first).await?;
                while let Some(Some(item)) = events.next().now_or_never() {
                    wrote = copier.take(item).await?.or(wrote);
                }
                wrote = copier.flush().await?.or(wrote);
                if let Some(last) = wrote {
                    metrics::gauge!("waybill_backup_position").set(last.0 as f64);
                    progressed = true;
                }
            }
            anyhow::Ok(())
        };
        let result = tokio::select! {
            () = &mut stop => return,
            result = run => result,
        };
        if progressed {
            failures = 0;
        }
        failures += 1;
        let pause = Duration::from_millis(250 << failures.min(5));
        match result {
            Ok(()) => tracing::warn!("the backup's source ended; starting again"),
            Err(e) => tracing::error!(
                error = format!("{e:#}"),
                retry_in_ms = pause.as_millis() as u64,
                "the backup stopped; it starts again from its head"
            ),
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
