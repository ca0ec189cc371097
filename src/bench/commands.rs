//! `waybill bench commands`: `RequestPromotion` end to end over gRPC — the
//! client, the command service (authentication, state, decide), the append
//! with optimistic concurrency — beside raw OCC publishes on the same server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::builder::RangedU64ValueParser;
use clap::Args;
use tonic::transport::Channel;
use waybill_commands::auth::{AuthConfig, Authenticator};
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;

use super::doc;
use super::in_process::Server;
use super::machine::{self, Machine};
use super::measure::Progress;
use super::raw::RawStream;
use super::report::{self, Row, Target as Goal, Value};
use super::sample::RunId;
use super::server::Target;
use super::stats::{Latency, Rate};
use crate::open::OpenLog;

/// 1-client p50 may be at most this many times raw OCC publish+ack.
const LATENCY_TARGET: f64 = 2.0;
/// Throughput with many clients must reach this fraction of raw.
const THROUGHPUT_TARGET: f64 = 0.5;
/// Unrecorded requests before measuring.
const WARMUP: u64 = 100;

#[derive(Debug, Args)]
pub struct CommandsBenchArgs {
    /// Use this NATS server [default: spawn one on a free port with a temp store].
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Spawn a 3-node cluster (`sync_interval: always`) and use R3 streams.
    #[arg(long, conflicts_with = "nats")]
    pub cluster: bool,
    /// The command service appends to an embedded (sled) log; the raw
    /// figures stay JetStream publishes, measured in this run.
    #[arg(long, conflicts_with_all = ["nats", "cluster"])]
    pub embedded: bool,
    /// Latency samples per side.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    pub latency_samples: u64,
    /// Concurrent clients, each on its own project.
    #[arg(long, value_name = "C", default_value_t = 64,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub clients: usize,
    /// Promotions requested per client.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    pub per_client: u64,
    /// Write the results into FILE, replacing its `bench:commands` section.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

fn pipeline(project: &str) -> String {
    format!(
        "project: {project}
warehouses:
  - name: images
stages:
  - name: prod
    record_only: true
    requested_freight:
      - origin: images
        sources: {{direct: true}}
    policy: {{mode: manual}}
"
    )
}

type Client = CommandServiceClient<Channel>;

/// Applies the pipeline and discovers `n` freights; returns their ids.
async fn prepare(client: &mut Client, project: &str, n: u64) -> anyhow::Result<Vec<String>> {
    client
        .apply_pipeline(pb::ApplyPipelineRequest {
            yaml: pipeline(project),
            source_uri: "bench".into(),
            ..Default::default()
        })
        .await
        .context("apply")?;
    let mut ids = Vec::with_capacity(n as usize);
    for i in 0..n {
        let reply = client
            .record_discovery(pb::RecordDiscoveryRequest {
                project: project.into(),
                warehouse: "images".into(),
                artifacts: vec![pb::Artifact {
                    kind: pb::artifact::Kind::Image as i32,
                    name: "ghcr.io/acme/app".into(),
                    version: format!("1.0.{i}"),
                    digest: String::new(),
                }],
                ..Default::default()
            })
            .await
            .context("discover")?;
        ids.push(reply.into_inner().freight_id);
    }
    Ok(ids)
}

/// Requests a promotion of each freight in turn, timing each call.
async fn promote_all(
    client: &mut Client,
    project: &str,
    freights: &[String],
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(freights.len());
    for f in freights {
        let request = pb::RequestPromotionRequest {
            project: project.into(),
            stage: "prod".into(),
            freight_selector: Some(pb::request_promotion_request::FreightSelector::Freight(
                f.clone(),
            )),
            ..Default::default()
        };
        let started = Instant::now();
        client
            .request_promotion(request)
            .await
            .context("request promotion")?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

pub async fn run(args: CommandsBenchArgs) -> anyhow::Result<()> {
    let machine = Machine::detect();
    let date = machine::now_utc();
    let mut progress = Progress::named("commands", 6);
    progress.phase("starting nats-server and the Waybill command service");
    let mut target = Target::open_with(args.nats.clone(), args.cluster, args.cluster).await?;
    let run = RunId::new();
    let log = target
        .waybill_log(run.name("BENCH_CMD_"), run.name("benchcmd"))
        .await?;
    let auth = Authenticator::new(AuthConfig::default())?.with_insecure_dev(true);
    let scratch = super::scratch::ScratchDir::create(&run.name("waybill-bench-views-"))?;
    let served = if args.embedded {
        OpenLog::Embedded(waybill_ledger::SledLog::open(&scratch.path().join("log"))?)
    } else {
        OpenLog::JetStream(log.clone())
    };
    let auth = Arc::new(auth);
    // First the commands role alone, as a command replica runs it.
    let server = Server::start(&served, &auth, None, &scratch.path().join("command-state")).await?;
    let channel = server.channel.clone();

    let raw = RawStream::create(
        &mut target,
        &run,
        "BENCH_CMD_RAW_",
        "benchcmdraw",
        358,
        false,
    )
    .await?;

    progress.phase(format!(
        "1 client: preparing {} freights",
        args.latency_samples + WARMUP
    ));
    let mut client = Client::new(channel.clone());
    let freights = prepare(&mut client, "latency", args.latency_samples + WARMUP + 1).await?;
    let (freights, retried) = freights.split_at(freights.len() - 1);
    progress.phase(format!(
        "1 client: {} RequestPromotion calls and {} raw OCC publishes",
        args.latency_samples, args.latency_samples
    ));
    let (warm, measured) = freights.split_at(WARMUP as usize);
    promote_all(&mut client, "latency", warm).await?;
    let mut raw_last = 0;
    raw.latency(&run, "latency", &mut raw_last, WARMUP).await?;
    let wb_latency = Latency::from_samples(promote_all(&mut client, "latency", measured).await?)
        .context("samples")?;
    let raw_latency = Latency::from_samples(
        raw.latency(&run, "latency", &mut raw_last, args.latency_samples)
            .await?,
    )
    .context("samples")?;
    // A call made again under its idempotency key (a client's retry): the
    // gRPC round trip, authentication and `decide`, which finds it done,
    // without an append. (Not a refused call: a refusal first asks the log
    // whether the replica's state is behind.)
    let retry = pb::RequestPromotionRequest {
        project: "latency".into(),
        stage: "prod".into(),
        freight_selector: Some(pb::request_promotion_request::FreightSelector::Freight(
            retried[0].clone(),
        )),
        idempotency_key: "bench-retried".into(),
        ..Default::default()
    };
    client
        .request_promotion(retry.clone())
        .await
        .context("the call to retry")?;
    let mut samples = Vec::with_capacity(args.latency_samples as usize);
    for _ in 0..args.latency_samples {
        let started = Instant::now();
        let outcome = client.request_promotion(retry.clone()).await;
        samples.push(started.elapsed());
        anyhow::ensure!(
            outcome.is_ok_and(|r| r.into_inner().already_done),
            "a retried call must be answered as done"
        );
    }
    let retried_latency = Latency::from_samples(samples).context("samples")?;

    // The command handler in process, without gRPC.
    let direct_freights = prepare(&mut client, "direct", args.latency_samples).await?;
    let handler = waybill_commands::handler::CommandHandler::new(
        served.log(),
        Arc::new(
            Authenticator::new(AuthConfig::default())?
                .with_insecure_dev(true)
                .authorizer()
                .clone(),
        ),
        "waybill://bench",
    );
    let principal = waybill_commands::auth::Principal::anonymous();
    let direct_project = waybill_ledger::ProjectName::project("direct")?;
    let mut direct = Vec::with_capacity(direct_freights.len());
    for f in &direct_freights {
        let command = waybill_commands::Command::RequestPromotion {
            stage: "prod".into(),
            freight: waybill_commands::FreightSelector::Named(f.clone()),
            ticket: String::new(),
            reason: String::new(),
        };
        let started = Instant::now();
        handler
            .execute(&direct_project, &principal, command, None)
            .await?;
        direct.push(started.elapsed());
    }
    let direct = Latency::from_samples(direct).context("samples")?;

    let c = args.clients;
    progress.phase(format!(
        "{c} clients: preparing {} projects of {} freights",
        c, args.per_client
    ));
    let prepared = prepare_clients(&mut client, "bench", c, args.per_client).await?;
    progress.phase(format!(
        "{c} clients: {} RequestPromotion calls each, then {c} raw writers",
        args.per_client
    ));
    let wb_rate = throughput(&channel, prepared).await?;
    let raw_rate = raw.throughput(&run, "tp", c, args.per_client).await?;
    server.stop().await?;

    // Then every role in one process (the default `waybill serve`): the read
    // models and the Merkle tree consume each event on the same cores.
    progress.phase(format!(
        "all roles in one process: catching up, then 1 client and {c} clients"
    ));
    let views = scratch.path().join("projections");
    let projections =
        tokio::task::spawn_blocking(move || waybill_projections::Projections::open(&views))
            .await??;
    let db = projections.store().db().clone();
    let transparency = tokio::task::spawn_blocking(move || {
        waybill_projections::audit::Transparency::open(
            &db,
            waybill_projections::audit::CheckpointPolicy::read_only(),
        )
    })
    .await??;
    let head = served.log().head().await?;
    let all = Server::start(
        &served,
        &auth,
        Some(crate::serve::ReadSide {
            projections: projections.clone(),
            transparency,
        }),
        &scratch.path().join("command-state-all"),
    )
    .await?;
    projections
        .wait_for(head, Duration::from_secs(600))
        .await
        .map_err(|at| anyhow::anyhow!("the read models stopped at {at}, short of {head}"))?;
    let mut client = Client::new(all.channel.clone());
    let freights = prepare(&mut client, "latency-all", args.latency_samples + WARMUP).await?;
    let (warm, measured) = freights.split_at(WARMUP as usize);
    promote_all(&mut client, "latency-all", warm).await?;
    let all_latency =
        Latency::from_samples(promote_all(&mut client, "latency-all", measured).await?)
            .context("samples")?;
    let prepared = prepare_clients(&mut client, "bench-all", c, args.per_client).await?;
    let all_rate = throughput(&all.channel, prepared).await?;
    all.stop().await?;
    log.close().await;
    let version = target.version();
    target.close().await;

    let rows = vec![
        Row::new(
            "RequestPromotion p50, 1 client",
            Value::Latency(wb_latency.p50),
            Value::Latency(raw_latency.p50),
            Goal::AtMost(LATENCY_TARGET),
        ),
        Row::new(
            "RequestPromotion p99, 1 client",
            Value::Latency(wb_latency.p99),
            Value::Latency(raw_latency.p99),
            Goal::AtMost(LATENCY_TARGET),
        ),
        Row::new(
            "RequestPromotion p50 in process (no gRPC)",
            Value::Latency(direct.p50),
            Value::Latency(raw_latency.p50),
            Goal::None,
        ),
        Row::new(
            "retried RequestPromotion p50 (no append), 1 client",
            Value::Latency(retried_latency.p50),
            Value::Latency(raw_latency.p50),
            Goal::None,
        ),
        Row::new(
            "floor: retried p50 + in-process p50",
            Value::Latency(retried_latency.p50 + direct.p50),
            Value::Latency(raw_latency.p50),
            Goal::None,
        ),
        Row::new(
            format!("RequestPromotion throughput, {c} clients on {c} projects"),
            Value::Rate(wb_rate.per_sec()),
            Value::Rate(raw_rate.per_sec()),
            Goal::AtLeast(THROUGHPUT_TARGET),
        ),
        Row::new(
            "all roles in one process: p50, 1 client",
            Value::Latency(all_latency.p50),
            Value::Latency(raw_latency.p50),
            Goal::None,
        ),
        Row::new(
            "all roles in one process: p99, 1 client",
            Value::Latency(all_latency.p99),
            Value::Latency(raw_latency.p99),
            Goal::None,
        ),
        Row::new(
            format!("all roles in one process: throughput, {c} clients"),
            Value::Rate(all_rate.per_sec()),
            Value::Rate(raw_rate.per_sec()),
            Goal::None,
        ),
    ];
    let table = report::render(&rows);
    println!("waybill bench commands: nats-server {version}\nmachine: {machine}\n\n{table}");
    if let Some(path) = &args.write {
        let body = format!(
            "## Commands over gRPC (`waybill bench commands{cluster_flag}`)

- Command: `cargo run --release -- bench commands{cluster_flag} --latency-samples {n} --clients {c} --per-client {per} --write {file}`
- Date: {date}
- Machine: {machine}
- Server: nats-server {version}, spawned on loopback, {layout}

{table}
Waybill: a `RequestPromotion` call from a gRPC client over loopback to a
server in the same process as the bench running the `commands` role, as a
command replica does (`waybill serve --roles commands`): authentication, the
cached project state (its working set; the rest in the command state store,
which each command here reads for its freight, and which takes finished
promotions and older freight in moves on a low-priority thread), `decide`,
the append with the subject-filtered expected position, the reply. The \"all roles\" rows repeat the measurement against a
server that also runs the `queries` role (read models and the Merkle tree,
which consume every event on the same two cores), as the default `waybill
serve` does. Each promotion names a fresh freight of a record-only
stage, so every call appends one event; the retried row repeats one call
under its idempotency key (a client's retry, answered as already done), so it
measures the gRPC round trip, authentication and `decide` without the append
(a refused call no longer does: it first asks the log whether the replica is
behind other replicas); the in-process row calls
the command handler directly (no gRPC) with the same work. Raw: one OCC publish with
`Nats-Msg-Id` and its ack, on the same server. Latency: {WARMUP} warm-up
calls, then {n} samples per side; throughput: {c} clients each requesting
{per} promotions in sequence on its own project, against {c} raw writers
each publishing {per} times on its own subject.

The floor row adds the two rows above it: a call that appends cannot take
much less than a gRPC round trip (with authentication and `decide`) plus the
handler's work and its append, so its ratio is roughly the lowest the
1-client p50 can reach on the machine of the run (see *Commands: where the
1-client latency goes* below).
",
            n = args.latency_samples,
            per = args.per_client,
            file = path.display(),
            cluster_flag = if args.cluster {
                " --cluster"
            } else if args.embedded {
                " --embedded"
            } else {
                ""
            },
            layout = if args.embedded {
                "R1 file storage for the raw publishes; Waybill appends to the \
                 embedded (sled) log (fsync before each acknowledgement)"
            } else {
                layout(args.cluster)
            },
        );
        let section = if args.cluster {
            "commands-r3"
        } else if args.embedded {
            "commands-embedded"
        } else {
            "commands"
        };
        doc::write_section(path, section, &body)?;
        println!("wrote the bench:commands section of {}", path.display());
    }
    Ok(())
}

/// Projects `{prefix}-{i}` with `per` freights each, for `c` clients.
async fn prepare_clients(
    client: &mut Client,
    prefix: &str,
    c: usize,
    per: u64,
) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let mut prepared = Vec::with_capacity(c);
    for i in 0..c {
        let project = format!("{prefix}-{i}");
        let ids = prepare(client, &project, per).await?;
        prepared.push((project, ids));
    }
    Ok(prepared)
}

/// Each client promotes its project's freights in sequence, all at once.
async fn throughput(
    channel: &Channel,
    prepared: Vec<(String, Vec<String>)>,
) -> anyhow::Result<Rate> {
    let events = prepared.iter().map(|(_, ids)| ids.len() as u64).sum();
    let started = Instant::now();
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|(project, ids)| {
            let mut client = Client::new(channel.clone());
            tokio::spawn(async move { promote_all(&mut client, &project, &ids).await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.context("client task")??;
    }
    Ok(Rate {
        events,
        elapsed: started.elapsed(),
    })
}

/// How the spawned server stores the streams, for the report.
pub(super) fn layout(cluster: bool) -> &'static str {
    if cluster {
        "a 3-node cluster with `sync_interval: always`, R3 file storage"
    } else {
        "R1 file storage"
    }
}
