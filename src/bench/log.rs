//! `waybill bench log`: append latency, throughput and replay of the event
//! log, each beside raw JetStream measured in the same run.

use std::path::PathBuf;

use clap::builder::RangedU64ValueParser;
use clap::Args;

use super::doc;
use super::machine::{self, Machine};
use super::measure::{
    self, Figures, Progress, FILL_PROJECTS, LATENCY_ROUNDS, LATENCY_WARMUP, REPLAY_PASSES,
    THROUGHPUT_ROUNDS, THROUGHPUT_WARMUP,
};
use super::report::{self, Row, Target as Goal, Value};
use super::server::Target;

/// 1-writer p50 may be at most this many times raw OCC publish+ack.
const LATENCY_TARGET: f64 = 1.3;
/// Throughput with many writers must reach this fraction of raw.
const THROUGHPUT_TARGET: f64 = 0.8;
/// Full replay must reach this fraction of a raw ordered consumer.
const REPLAY_TARGET: f64 = 0.8;

#[derive(Debug, Args)]
pub struct LogBenchArgs {
    /// Use this NATS server (streams get unique names and are deleted at the
    /// end) [default: spawn one on a free port with a temp store].
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Make the spawned server fsync every write (`jetstream { sync_interval: always }`).
    #[arg(long, conflicts_with = "nats")]
    pub sync_always: bool,
    /// Spawn a 3-node cluster (with `sync_interval: always`) and use R3 streams.
    #[arg(long, conflicts_with = "nats")]
    pub cluster: bool,
    /// Latency samples per side.
    #[arg(long, value_name = "N", default_value_t = 2000,
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    pub latency_samples: u64,
    /// Concurrent writers, each on its own project, for the throughput figure.
    #[arg(long, value_name = "W", default_value_t = 64,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=4096))]
    pub writers: usize,
    /// Appends per writer in each throughput round.
    #[arg(long, value_name = "N", default_value_t = 200,
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    pub per_writer: u64,
    /// Events in the log before the full replay.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    pub replay_events: u64,
    /// Write the results into FILE, replacing its `bench:log` section
    /// (created with a header when absent; the rest is preserved).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

pub async fn run(args: LogBenchArgs) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let date = machine::now_utc();
    let mut progress = Progress::new();
    progress.phase(match &args.nats {
        Some(url) => format!("connecting to {url}"),
        None if args.cluster => {
            "starting a 3-node nats-server cluster (sync_interval: always)".to_string()
        }
        None if args.sync_always => "starting nats-server (sync_interval: always)".to_string(),
        None => "starting nats-server".to_string(),
    });
    let mut target = Target::open_with(
        args.nats.clone(),
        args.sync_always || args.cluster,
        args.cluster,
    )
    .await?;
    let result = measure::measure(&args, &mut target, &mut progress).await;
    let server = server_text(&args, &target);
    target.close().await;
    let figures = result?;

    let rows = rows(&args, &figures);
    let table = report::render(&rows);
    println!(
        "waybill bench log: {server}\nmachine: {machine}\nrecord: {} bytes\n",
        figures.record_len
    );
    println!("{table}");
    let missed: Vec<&str> = rows
        .iter()
        .filter(|r| r.met() == Some(false))
        .map(|r| r.metric.as_str())
        .collect();
    if missed.is_empty() {
        println!("all targets met");
    } else {
        println!("targets missed: {}", missed.join("; "));
    }
    if let Some(path) = &args.write {
        let body = section(&args, &figures, &machine, &date, &server, &table);
        // The fsync-always run keeps its own section beside the default one.
        let name = if args.cluster {
            "log-r3"
        } else if args.sync_always {
            "log-sync-always"
        } else {
            "log"
        };
        doc::write_section(path, name, &body)?;
        eprintln!("wrote the results to {}", path.display());
    }
    Ok(())
}

/// The server and how it was set up, for the report.
fn server_text(args: &LogBenchArgs, target: &Target) -> String {
    let version = target.version();
    let how = if target.spawned() {
        let sync = if args.sync_always || args.cluster {
            "`sync_interval: always` (fsync per write)"
        } else {
            "default `sync_interval` (lazy fsync)"
        };
        format!("spawned on loopback, {sync}")
    } else {
        "an existing server".to_string()
    };
    let layout = if target.replicas() > 1 {
        format!("a 3-node cluster, R{} file storage", target.replicas())
    } else {
        "R1 file storage".to_string()
    };
    format!("nats-server {version}, {how}, {layout}")
}

fn rows(args: &LogBenchArgs, f: &Figures) -> Vec<Row> {
    let w = args.writers;
    let sled = "sled (embedded backend)";
    let lat = |d| Value::Latency(d);
    let rate = |r: super::stats::Rate| Value::Rate(r.per_sec());
    vec![
        Row::new(
            "1-writer append p50",
            lat(f.waybill_latency.p50),
            lat(f.raw_latency.p50),
            Goal::AtMost(LATENCY_TARGET),
        ),
        Row::new(
            "1-writer append p99",
            lat(f.waybill_latency.p99),
            lat(f.raw_latency.p99),
            Goal::None,
        ),
        Row::new(
            format!("{w}-writer throughput"),
            rate(f.waybill_throughput),
            rate(f.raw_throughput),
            Goal::AtLeast(THROUGHPUT_TARGET),
        ),
        Row::new(
            format!("{w}-writer throughput vs raw with Waybill's header set"),
            rate(f.waybill_throughput),
            rate(f.raw_headered_throughput),
            Goal::None,
        ),
        Row::new(
            "full replay",
            rate(f.waybill_replay),
            rate(f.raw_replay),
            Goal::AtLeast(REPLAY_TARGET),
        ),
        Row::new(
            "full replay vs raw with Waybill's header set",
            rate(f.waybill_replay),
            rate(f.raw_headered_replay),
            Goal::None,
        ),
        Row::new(
            format!("1-writer append p50, {sled}"),
            lat(f.sled_latency.p50),
            lat(f.raw_latency.p50),
            Goal::None,
        ),
        Row::new(
            format!("1-writer append p99, {sled}"),
            lat(f.sled_latency.p99),
            lat(f.raw_latency.p99),
            Goal::None,
        ),
        Row::new(
            format!("{w}-writer throughput, {sled}"),
            rate(f.sled_throughput),
            rate(f.raw_throughput),
            Goal::None,
        ),
        Row::new(
            format!("full replay, {sled}"),
            rate(f.sled_replay),
            rate(f.raw_replay),
            Goal::None,
        ),
    ]
}

/// The command line that reproduces this run (a URL is not repeated: it may
/// carry credentials).
fn command(args: &LogBenchArgs) -> String {
    let mut cmd = "cargo run --release -- bench log".to_string();
    if args.nats.is_some() {
        cmd.push_str(" --nats <URL>");
    }
    if args.cluster {
        cmd.push_str(" --cluster");
    } else if args.sync_always {
        cmd.push_str(" --sync-always");
    }
    cmd.push_str(&format!(
        " --latency-samples {} --writers {} --per-writer {} --replay-events {}",
        args.latency_samples, args.writers, args.per_writer, args.replay_events
    ));
    if let Some(path) = &args.write {
        cmd.push_str(&format!(" --write {}", path.display()));
    }
    cmd
}

fn section(
    args: &LogBenchArgs,
    f: &Figures,
    machine: &Machine,
    date: &str,
    server: &str,
    table: &str,
) -> String {
    let (n, w, per, events) = (
        args.latency_samples,
        args.writers,
        args.per_writer,
        args.replay_events,
    );
    format!(
        "## Event log (`waybill bench log`)

- Command: `{command}`
- Date: {date}
- Machine: {machine}
- Server: {server}
- Record: {record} bytes (a `PromotionRequested` with actor, ids and ticket;
  the raw payload has the same length)

{table}
Ratio = Waybill ÷ raw. The sled rows are the embedded backend, divided by the
same raw JetStream figures for scale; they have no target.

- **1-writer append**: one project (raw: one subject filter), sequential
  appends, each timed from the call to the acknowledgement; the next append
  expects the returned position. {LATENCY_WARMUP} unrecorded appends per side
  first, then {n} samples per side in {LATENCY_ROUNDS} rounds alternating raw and
  Waybill. Percentiles are nearest-rank over the sorted samples.
- **{w}-writer throughput**: {w} tasks, each appending in sequence to its own
  project (raw: its own subject, same optimistic-concurrency headers).
  A warm-up of {THROUGHPUT_WARMUP} appends per writer, then {THROUGHPUT_ROUNDS}
  rounds of {w} × {per} appends alternating raw and Waybill; total events over
  total time. The second throughput row runs the same raw writers with the six
  `ce-*` attributes and `Waybill-Hash` added to every append (Waybill's
  header set), alternating in the same rounds.
- **Full replay**: {events} events written first (raw: pipelined publishes
  over {FILL_PROJECTS} subjects; Waybill: appends from {FILL_PROJECTS}
  concurrent projects), then read in full, timed from the call to the last
  event. Raw: an ordered pull consumer touching every payload. Waybill:
  `EventLog::read_all(Position(1))`, which decodes every record and computes
  its chain hash. One warm-up pass, then the median of {REPLAY_PASSES} passes
  alternating raw and Waybill. The second replay row reads a raw stream whose
  messages carry a header set like the one Waybill stores (six `ce-*`
  CloudEvents attributes, `Waybill-Hash`, two expected-sequence headers, the
  message id): DESIGN §2 puts the CloudEvents attributes in headers, and the
  client parses every header of every delivered message, so this row isolates
  Waybill's own cost (decoding, hashing) from the cost of the headers.
",
        command = command(args),
        record = f.record_len,
    )
}
