//! `waybill bench queries`: the read side on a generated ledger (1M events
//! over 100 projects by default): rebuild rate against a raw ordered consumer
//! reading the same stream, peak RSS of the rebuild, GetStage / History /
//! StateAt latency, and command-to-visible lag, each through real processes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use clap::builder::RangedU64ValueParser;
use clap::Args;
use futures::StreamExt;
use tonic::transport::Channel;
use waybill_ledger::EventLog;
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;
use waybill_proto::v1::query_service_client::QueryServiceClient;

use super::doc;
use super::generate::generate;
use super::machine::{self, Machine};
use super::measure::Progress;
use super::process::serve;
use super::report::{self, Row, Target as Goal, Value};
use super::scratch::ScratchDir;
use super::server::Target;
use super::stats::{Latency, Rate};

#[derive(Debug, Args)]
pub struct QueriesBenchArgs {
    /// Events in the generated ledger.
    #[arg(long, default_value_t = 1_000_000, value_parser = RangedU64ValueParser::<u64>::new().range(1000..))]
    pub events: u64,
    /// Projects they are spread over.
    #[arg(long, default_value_t = 100, value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub projects: usize,
    /// Samples per latency figure.
    #[arg(long, default_value_t = 500, value_parser = RangedU64ValueParser::<u64>::new().range(10..))]
    pub samples: u64,
    /// Use this NATS server, whose `WAYBILL` stream must be absent or empty
    /// (it is left in place, for a later `waybill projections rebuild`)
    /// [default: spawn one on a free port with a temp store].
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Spawn a 3-node cluster (`sync_interval: always`) and use an R3 stream.
    #[arg(long, conflicts_with = "nats")]
    pub cluster: bool,
    /// Measure the embedded backend: the same ledger is also generated into
    /// an embedded log, which the rebuild and the server then use (the raw
    /// figure stays the JetStream consumer, measured in this run).
    #[arg(long, conflicts_with_all = ["nats", "cluster"])]
    pub embedded: bool,
    /// Write the results into FILE, replacing its `bench:queries` section.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

/// Reads the whole stream through an ordered consumer, touching each payload.
pub(super) async fn raw_replay(target: &Target, expected: u64) -> anyhow::Result<Rate> {
    let stream = target.context().get_stream("WAYBILL").await?;
    let started = Instant::now();
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut n = 0u64;
    let mut touched = 0u64;
    while n < expected {
        let m = messages.next().await.context("stream ended")??;
        touched = touched.wrapping_add(m.payload.len() as u64);
        n += 1;
    }
    std::hint::black_box(touched);
    Ok(Rate {
        events: n,
        elapsed: started.elapsed(),
    })
}

/// Runs the rebuild in a child process (on JetStream at `url`, or on the
/// embedded log in `data`); returns its rate and peak RSS (bytes).
fn rebuild(url: Option<&str>, data: &std::path::Path, events: u64) -> anyhow::Result<(Rate, u64)> {
    let exe = std::env::current_exe()?;
    let nats: Vec<&str> = url.map(|u| vec!["--nats", u]).unwrap_or_default();
    let (elapsed, peak) = super::process::run_measured(
        Command::new(exe)
            .args(["projections", "rebuild"])
            .args(nats)
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        "the rebuild",
        || {},
    )?;
    Ok((Rate { events, elapsed }, peak))
}

/// The staging stage of `project`.
async fn get_stage(q: &mut QueryServiceClient<Channel>, project: &str) -> anyhow::Result<()> {
    q.get_stage(pb::GetStageRequest {
        project: project.to_string(),
        stage: "staging".into(),
        min_position: 0,
    })
    .await?;
    Ok(())
}

/// The first 1,000 history items of `project`, read to the end; how many came.
async fn history(q: &mut QueryServiceClient<Channel>, project: &str) -> anyhow::Result<usize> {
    let mut items = q
        .history(pb::HistoryRequest {
            project: project.to_string(),
            limit: 1000,
            from_position: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut n = 0;
    while let Some(item) = items.next().await {
        item?;
        n += 1;
    }
    Ok(n)
}

/// A discovery of image `ghcr.io/acme/<image>:<version>` in `project`.
fn discovery(project: String, image: &str, version: impl ToString) -> pb::RecordDiscoveryRequest {
    pb::RecordDiscoveryRequest {
        project,
        warehouse: "images".into(),
        artifacts: vec![pb::Artifact {
            kind: 1,
            name: format!("ghcr.io/acme/{image}"),
            version: version.to_string(),
            digest: String::new(),
        }],
        ..Default::default()
    }
}

/// What the command side holds: RSS of a `waybill serve --roles commands`
/// child before and after one `RecordDiscovery` on each project (the first
/// command on a project folds its whole history into the cached state),
/// with a cache big enough for all `events`, and how long those commands
/// took.
struct CommandState {
    before: u64,
    after: u64,
    peak: u64,
    elapsed: Duration,
}

async fn command_state_rss(
    url: Option<&str>,
    data: &std::path::Path,
    projects: usize,
    events: u64,
) -> anyhow::Result<CommandState> {
    let budget = (2 * events).to_string();
    let (mut server, endpoint) = serve(
        url,
        data,
        &["--roles", "commands", "--command-cache-records", &budget],
    )?;
    let pid = server.id();
    let result = async {
        let mut c = CommandServiceClient::connect(endpoint).await?;
        let before = super::process::rss(pid);
        let started = Instant::now();
        for p in 0..projects {
            c.record_discovery(discovery(format!("proj-{p:03}"), "state", p))
                .await?;
        }
        anyhow::Ok(CommandState {
            before,
            after: super::process::rss(pid),
            peak: super::process::peak_rss(&server),
            elapsed: started.elapsed(),
        })
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    result
}

pub async fn run(args: QueriesBenchArgs) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let date = machine::now_utc();
    let mut progress = Progress::named("queries", if args.embedded { 11 } else { 10 });
    progress.phase("starting nats-server");
    let mut target = Target::open_with(args.nats.clone(), args.cluster, args.cluster).await?;
    let url = target.url().to_string();
    let log: Arc<dyn EventLog> = Arc::new(
        target
            .waybill_log("WAYBILL".into(), "waybill".into())
            .await?,
    );
    ensure!(
        log.head().await?.0 == 0,
        "the WAYBILL stream on {url} already holds events: give an empty server"
    );
    let per_project = args.events / args.projects as u64;
    let total = per_project * args.projects as u64;
    progress.phase(format!(
        "generating {total} events over {} projects",
        args.projects
    ));
    generate(&log, args.projects, per_project).await?;

    progress.phase("raw ordered consumer over the same stream");
    raw_replay(&target, total).await?;
    let raw = raw_replay(&target, total).await?;

    let scratch = ScratchDir::create("waybill-bench-queries-")?;
    let data = scratch.path().to_path_buf();
    // The log the rebuild and the server read: JetStream, or an embedded
    // log in the data dir holding the same ledger.
    let source = if args.embedded {
        progress.phase(format!("embedded: generating the same {total} events"));
        let sled = waybill_ledger::SledLog::open(&data)?;
        generate(
            &(Arc::new(sled.clone()) as Arc<dyn EventLog>),
            args.projects,
            per_project,
        )
        .await?;
        sled.flush().await?;
        None
    } else {
        Some(url.clone())
    };
    progress.phase("projections rebuild (a child process)");
    let (url2, data2) = (source.clone(), data.clone());
    let (rebuild_rate, peak) =
        tokio::task::spawn_blocking(move || rebuild(url2.as_deref(), &data2, total)).await??;

    progress.phase("serving the rebuilt read models");
    let (mut server, endpoint) = serve(source.as_deref(), &data, &[])?;
    let channel = crate::client::windows(tonic::transport::Endpoint::from_shared(endpoint)?)
        .connect()
        .await?;
    let mut q = QueryServiceClient::new(channel.clone());
    let mut c = CommandServiceClient::new(channel);
    let mut seed = 7u64;
    let mut pick = move |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize % n
    };

    // The server starts with a cold page cache: one unrecorded call of each
    // kind per project first, as a server that has been up a while has.
    progress.phase(format!(
        "warm-up: GetStage and History of {} projects",
        args.projects
    ));
    for i in 0..args.projects {
        let project = format!("proj-{i:03}");
        get_stage(&mut q, &project).await?;
        history(&mut q, &project).await?;
    }
    progress.phase(format!(
        "GetStage and History (1,000 items), {} samples each",
        args.samples
    ));
    let (mut stage_times, mut history_times) = (Vec::new(), Vec::new());
    for _ in 0..args.samples {
        let project = format!("proj-{:03}", pick(args.projects));
        let started = Instant::now();
        get_stage(&mut q, &project).await?;
        stage_times.push(started.elapsed());
        let started = Instant::now();
        let n = history(&mut q, &project).await?;
        history_times.push(started.elapsed());
        ensure!(
            n == 1000.min(per_project as usize),
            "history returned {n} items"
        );
    }

    let state_samples = (args.samples / 10).max(10);
    progress.phase(format!("StateAt, {state_samples} samples"));
    let mut state_at = Vec::new();
    for _ in 0..state_samples {
        let project = format!("proj-{:03}", pick(args.projects));
        let position = 1 + pick(total as usize) as u64;
        let started = Instant::now();
        let _ = q
            .state_at(pb::StateAtRequest {
                project,
                at: Some(pb::state_at_request::At::Position(position)),
            })
            .await;
        state_at.push(started.elapsed());
    }

    progress.phase(format!("command-to-visible lag, {} samples", args.samples));
    let mut lag = Vec::new();
    for i in 0..args.samples {
        let reply = c
            .record_discovery(discovery(
                format!("proj-{:03}", pick(args.projects)),
                "lag",
                i,
            ))
            .await?
            .into_inner();
        let started = Instant::now();
        q.list_stages(pb::ListStagesRequest {
            project: reply.project,
            min_position: reply.position,
        })
        .await?;
        lag.push(started.elapsed());
    }
    let _ = server.kill();
    let _ = server.wait();
    progress.phase(format!(
        "command state: one command on each of {} projects",
        args.projects
    ));
    let command = command_state_rss(source.as_deref(), &data, args.projects, total).await?;
    drop(scratch);
    let version = target.version();
    if args.nats.is_some() {
        target.keep_streams();
    }
    // Its connection would otherwise keep trying the stopped server.
    drop(log);
    target.close().await;

    let l = |v: Vec<Duration>| Latency::from_samples(v).context("samples");
    let (get_stage, history, state_at, lag) =
        (l(stage_times)?, l(history_times)?, l(state_at)?, l(lag)?);
    let ms = |m: u64| Value::Latency(Duration::from_millis(m));
    let rows = vec![
        Row::new(
            "projection rebuild",
            Value::Rate(rebuild_rate.per_sec()),
            Value::Rate(raw.per_sec()),
            Goal::AtLeast(0.5),
        ),
        Row::new(
            "GetStage p99",
            Value::Latency(get_stage.p99),
            ms(5),
            Goal::AtMost(1.0),
        ),
        Row::new(
            "History, 1,000 items, p99",
            Value::Latency(history.p99),
            ms(5),
            Goal::AtMost(1.0),
        ),
        Row::new(
            "StateAt p99",
            Value::Latency(state_at.p99),
            ms(20),
            Goal::AtMost(1.0),
        ),
        Row::new(
            "command-to-visible lag p99",
            Value::Latency(lag.p99),
            ms(50),
            Goal::AtMost(1.0),
        ),
    ];
    let table = report::render(&rows);
    let rss_mb = peak as f64 / (1024.0 * 1024.0);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let command_grew = command.after.saturating_sub(command.before);
    let command_state = format!(
        "{:.0} MiB before, {:.0} MiB after (peak {:.0} MiB), {} bytes per event; the {} commands took {:.1} s ({:.0} events folded per second)",
        mib(command.before),
        mib(command.after),
        mib(command.peak),
        command_grew / total.max(1),
        args.projects,
        command.elapsed.as_secs_f64(),
        total as f64 / command.elapsed.as_secs_f64().max(1e-9)
    );
    println!("waybill bench queries: nats-server {version}, {total} events over {} projects\nmachine: {machine}\n\n{table}\npeak RSS of the rebuild: {rss_mb:.0} MiB (target ≤ 200 MiB)\ncommand server after one command on each project: {command_state}", args.projects);
    if let Some(path) = &args.write {
        let body = format!(
            "## Read side (`waybill bench queries{flag}`)

- Command: `cargo run --release -- bench queries{flag} --events {events} --projects {projects} --samples {samples} --write {file}`
- Date: {date}
- Machine: {machine}
- Server: nats-server {version}, spawned on loopback, {layout}
- Ledger: {total} generated events over {projects} projects (per freight: discovery, promotion into dev, a passing check, promotion into staging)

{table}
Peak RSS of the rebuild process: **{rss_mb:.0} MiB** (target ≤ 200 MiB).

Command side (no target): a `waybill serve --roles commands` child on the
same log, {command_state}, after one `RecordDiscovery` on each project. The
first command on a project folds its whole history; the command service
keeps each project's working set in memory and the rest in its store under
the data directory (see `docs/decisions.md`, \"The command side keeps a
working set\"); here `--command-cache-records` is set above the ledger's
size, so that no project is dropped from the cache.

The rebuild row compares `waybill projections rebuild` (a child process:
read, decode and hash every event, evolve the project states, write the
read models of every freight, promotion and stage, history, indexes, stage
versions and checkpoints to sled, and, beside them, the Merkle tree of the
log) with a raw ordered consumer
reading the same stream in this process. The latency rows compare with the
issue's absolute targets (the \"raw\" column is the target, the ratio is
figure ÷ target): gRPC calls to a `waybill serve` child process on the rebuilt
read models, after one unrecorded `GetStage` and `History` per project (the
child starts with a cold page cache); StateAt asks for a random position of a random project;
command-to-visible lag is the time from a `RecordDiscovery` reply to a
`ListStages` with that `min_position` returning. The rebuild keeps only each
project's working set in memory (stages, the freight they run, active
promotions); the rest is in sled, whose page cache is {build_cache} MiB (`--cache-mb`);
most of the remaining memory is sled's own bookkeeping of its pages, which
grows with the ledger (jemalloc runs with one arena, see `.cargo/config.toml`:
30 MiB less). A bigger cache is faster: measured by hand on the same 1M-event
ledger, `--cache-mb 64` rebuilt in 107 s at a 236 MB peak, 16 MiB in 125 s at 193 MB. The
rebuild's time is mostly sled's: it copies a node for every key it writes
(about five keys per event: the history item, a stage version, the freight
or promotion record, index entries).
",
            events = args.events,
            projects = args.projects,
            samples = args.samples,
            file = path.display(),
            build_cache = crate::projections::BUILD_CACHE_MB,
            flag = if args.cluster {
                " --cluster"
            } else if args.embedded {
                " --embedded"
            } else {
                ""
            },
            layout = if args.embedded {
                "R1 file storage for the raw consumer; the rebuild and the server \
                 use the embedded (sled) log holding the same ledger"
            } else {
                super::commands::layout(args.cluster)
            },
        );
        let section = if args.cluster {
            "queries-r3"
        } else if args.embedded {
            "queries-embedded"
        } else {
            "queries"
        };
        doc::write_section(path, section, &body)?;
    }
    Ok(())
}
