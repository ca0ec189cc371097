//! The phases of `bench log`: each measurement on raw JetStream, on Waybill
//! over JetStream (same server, same run) and on the embedded sled backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use waybill_ledger::{EventLog, Position, ProjectName, SledLog};

use super::ledger;
use super::log::LogBenchArgs;
use super::raw::RawStream;
use super::sample::RunId;
use super::scratch::ScratchDir;
use super::server::Target;
use super::stats::{Latency, Rate};

/// Unrecorded appends before latency samples are taken, per side.
pub const LATENCY_WARMUP: u64 = 100;
/// Latency samples are taken in this many rounds, alternating raw and Waybill,
/// so that drift (page cache, file store growth, CPU clocks) hits both alike.
pub const LATENCY_ROUNDS: u64 = 4;
/// Events per writer in the unrecorded throughput warm-up.
pub const THROUGHPUT_WARMUP: u64 = 10;
/// Measured throughput rounds per side, alternating; reported as total
/// events over total time.
pub const THROUGHPUT_ROUNDS: usize = 3;
/// Measured replay passes per side after one warm-up pass; the median is reported.
pub const REPLAY_PASSES: usize = 3;
/// Projects (raw: subjects) the replay events are spread over.
pub const FILL_PROJECTS: usize = 256;
/// Phases announced on stderr.
pub const PHASES: usize = 13;

/// Everything measured in one run.
#[derive(Debug)]
pub struct Figures {
    /// Bytes Waybill stores for the typical event (the raw payload length).
    pub record_len: usize,
    pub raw_latency: Latency,
    pub waybill_latency: Latency,
    pub sled_latency: Latency,
    pub raw_throughput: Rate,
    /// Raw throughput with a header set like Waybill's on every append.
    pub raw_headered_throughput: Rate,
    pub waybill_throughput: Rate,
    pub sled_throughput: Rate,
    pub raw_replay: Rate,
    /// Raw replay of messages carrying a header set like Waybill's.
    pub raw_headered_replay: Rate,
    pub waybill_replay: Rate,
    pub sled_replay: Rate,
}

/// Announces each phase on stderr.
#[derive(Debug)]
pub struct Progress {
    name: &'static str,
    phases: usize,
    step: usize,
    started: Instant,
}

impl Progress {
    /// Progress of `bench log`.
    pub fn new() -> Progress {
        Progress::named("log", PHASES)
    }

    /// Progress of `bench <name>`, which has `phases` phases.
    pub fn named(name: &'static str, phases: usize) -> Progress {
        Progress {
            name,
            phases,
            step: 0,
            started: Instant::now(),
        }
    }

    pub fn phase(&mut self, what: impl std::fmt::Display) {
        self.step += 1;
        let at = self.started.elapsed().as_secs_f64();
        eprintln!(
            "bench {} [{}/{}] {at:6.1}s  {what}",
            self.name, self.step, self.phases
        );
    }
}

/// Runs every phase against `target`.
pub async fn measure(
    args: &LogBenchArgs,
    target: &mut Target,
    progress: &mut Progress,
) -> anyhow::Result<Figures> {
    let run = RunId::new();
    let (writers, per_writer, events) = (args.writers, args.per_writer, args.replay_events);

    progress.phase("creating the raw and Waybill streams");
    let waybill = target
        .waybill_log(run.name("BENCH_WAYBILL_"), run.name("benchwb"))
        .await?;
    let wb: Arc<dyn EventLog> = Arc::new(waybill.clone());
    let record_len = ledger::record_len(&*wb, &run).await?;
    let raw = RawStream::create(target, &run, "BENCH_RAW_", "benchraw", record_len, false).await?;
    let raw_hdr = RawStream::create(
        target,
        &run,
        "BENCH_RAW_HDR_TP_",
        "benchrawhdrtp",
        record_len,
        true,
    )
    .await?;
    let scratch = ScratchDir::create(&run.name("waybill-bench-"))?;
    let sled = open_sled(scratch.path().join("log")).await?;

    progress.phase(format!(
        "1-writer append latency: warm-up ({LATENCY_WARMUP} appends per side)"
    ));
    let project = ProjectName::project("latency")?;
    let (mut raw_last, mut wb_head, mut sled_head) = (0, Position::ZERO, Position::ZERO);
    raw.latency(&run, "latency", &mut raw_last, LATENCY_WARMUP)
        .await?;
    ledger::latency(&*wb, &run, &project, &mut wb_head, LATENCY_WARMUP).await?;

    progress.phase(format!(
        "1-writer append latency: raw JetStream and Waybill, {} samples each in \
         {LATENCY_ROUNDS} alternating rounds",
        args.latency_samples
    ));
    let (mut raw_samples, mut wb_samples) = (Vec::new(), Vec::new());
    for round in 0..LATENCY_ROUNDS {
        let n = share(args.latency_samples, LATENCY_ROUNDS, round);
        raw_samples.extend(raw.latency(&run, "latency", &mut raw_last, n).await?);
        wb_samples.extend(ledger::latency(&*wb, &run, &project, &mut wb_head, n).await?);
    }

    progress.phase("1-writer append latency: sled (warm-up, then samples)");
    ledger::latency(&*sled, &run, &project, &mut sled_head, LATENCY_WARMUP).await?;
    let sled_samples =
        ledger::latency(&*sled, &run, &project, &mut sled_head, args.latency_samples).await?;

    progress.phase(format!(
        "{writers}-writer throughput: warm-up ({THROUGHPUT_WARMUP} appends per writer per side)"
    ));
    raw.throughput(&run, "tpwarm", writers, THROUGHPUT_WARMUP)
        .await?;
    raw_hdr
        .throughput(&run, "tpwarm", writers, THROUGHPUT_WARMUP)
        .await?;
    ledger::throughput(&wb, &run, "tpwarm", writers, THROUGHPUT_WARMUP).await?;

    progress.phase(format!(
        "{writers}-writer throughput: raw JetStream and Waybill, {THROUGHPUT_ROUNDS} \
         alternating rounds of {writers} x {per_writer} appends"
    ));
    let (mut raw_rates, mut hdr_rates, mut wb_rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..THROUGHPUT_ROUNDS {
        let tag = format!("tp{round}");
        raw_rates.push(raw.throughput(&run, &tag, writers, per_writer).await?);
        hdr_rates.push(raw_hdr.throughput(&run, &tag, writers, per_writer).await?);
        wb_rates.push(ledger::throughput(&wb, &run, &tag, writers, per_writer).await?);
    }

    progress.phase(format!(
        "{writers}-writer throughput: sled (warm-up, then rounds)"
    ));
    ledger::throughput(&sled, &run, "tpwarm", writers, THROUGHPUT_WARMUP).await?;
    let mut sled_rates = Vec::new();
    for round in 0..THROUGHPUT_ROUNDS {
        let tag = format!("tp{round}");
        sled_rates.push(ledger::throughput(&sled, &run, &tag, writers, per_writer).await?);
    }

    progress.phase(format!(
        "replay: filling a raw stream with {events} events (pipelined publishes)"
    ));
    let raw_replay = RawStream::create(
        target,
        &run,
        "BENCH_RAW_REPLAY_",
        "benchrawrp",
        record_len,
        false,
    )
    .await?;
    raw_replay.fill(&run, events, FILL_PROJECTS).await?;

    progress.phase(format!(
        "replay: filling a raw stream with {events} events carrying Waybill's header set"
    ));
    let raw_headered = RawStream::create(
        target,
        &run,
        "BENCH_RAW_HDR_",
        "benchrawhdr",
        record_len,
        true,
    )
    .await?;
    raw_headered.fill(&run, events, FILL_PROJECTS).await?;

    progress.phase(format!(
        "replay: filling a Waybill log with {events} events ({FILL_PROJECTS} concurrent projects)"
    ));
    let waybill_replay = target
        .waybill_log(run.name("BENCH_WAYBILL_REPLAY_"), run.name("benchwbrp"))
        .await?;
    let wb_replay: Arc<dyn EventLog> = Arc::new(waybill_replay.clone());
    ledger::fill(&wb_replay, &run, events, FILL_PROJECTS).await?;

    progress.phase(format!(
        "replay: raw ordered consumer and Waybill read_all, 1 warm-up + {REPLAY_PASSES} \
         alternating passes"
    ));
    let (mut raw_passes, mut hdr_passes, mut wb_passes) = (Vec::new(), Vec::new(), Vec::new());
    for pass in 0..=REPLAY_PASSES {
        let raw_pass = raw_replay.replay().await?;
        let hdr_pass = raw_headered.replay().await?;
        ensure!(
            raw_pass.events == events,
            "the raw replay read {} messages, expected {events}",
            raw_pass.events
        );
        let wb_pass = ledger::replay(&*wb_replay, events).await?;
        if pass > 0 {
            raw_passes.push(raw_pass);
            hdr_passes.push(hdr_pass);
            wb_passes.push(wb_pass);
        }
    }

    progress.phase(format!(
        "replay: filling sled with {events} events ({FILL_PROJECTS} concurrent projects)"
    ));
    let sled_replay = open_sled(scratch.path().join("replay")).await?;
    ledger::fill(&sled_replay, &run, events, FILL_PROJECTS).await?;

    progress.phase(format!(
        "replay: sled read_all, 1 warm-up + {REPLAY_PASSES} passes"
    ));
    let mut sled_passes = Vec::new();
    for pass in 0..=REPLAY_PASSES {
        let rate = ledger::replay(&*sled_replay, events).await?;
        if pass > 0 {
            sled_passes.push(rate);
        }
    }

    waybill.close().await;
    waybill_replay.close().await;
    close_sled(sled).await;
    close_sled(sled_replay).await;
    drop(scratch);

    let latency = |samples: Vec<Duration>| Latency::from_samples(samples).context("no samples");
    let median = |rates: &[Rate]| Rate::median(rates).context("no replay passes");
    Ok(Figures {
        record_len,
        raw_latency: latency(raw_samples)?,
        waybill_latency: latency(wb_samples)?,
        sled_latency: latency(sled_samples)?,
        raw_throughput: Rate::total(&raw_rates),
        raw_headered_throughput: Rate::total(&hdr_rates),
        waybill_throughput: Rate::total(&wb_rates),
        sled_throughput: Rate::total(&sled_rates),
        raw_replay: median(&raw_passes)?,
        raw_headered_replay: median(&hdr_passes)?,
        waybill_replay: median(&wb_passes)?,
        sled_replay: median(&sled_passes)?,
    })
}

/// Round `round`'s share of `total` split over `rounds`.
fn share(total: u64, rounds: u64, round: u64) -> u64 {
    total / rounds + u64::from(round < total % rounds)
}

async fn open_sled(dir: std::path::PathBuf) -> anyhow::Result<Arc<dyn EventLog>> {
    let log = tokio::task::spawn_blocking(move || SledLog::open(&dir))
        .await
        .context("opening the sled log")??;
    Ok(Arc::new(log))
}

/// Drops the last handle off the runtime: sled joins its writer and flushes.
async fn close_sled(log: Arc<dyn EventLog>) {
    let _ = tokio::task::spawn_blocking(move || drop(log)).await;
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_add_up() {
        for (total, rounds) in [(2000, 4), (7, 4), (3, 4), (1, 1)] {
            let sum: u64 = (0..rounds).map(|r| share(total, rounds, r)).sum();
            assert_eq!(sum, total);
        }
    }
}
