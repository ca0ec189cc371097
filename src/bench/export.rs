//! `waybill bench export`: a compliance export of one project with 1M events
//! (the `waybill export` client against a `waybill serve` child process),
//! then `waybill verify-export` on it, beside a raw ordered consumer reading
//! the same stream; peak RSS of the export client and the verifier, and how
//! much the server grew while exporting.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use clap::builder::RangedU64ValueParser;
use clap::Args;
use waybill_ledger::EventLog;
use waybill_proto::v1 as pb;
use waybill_proto::v1::query_service_client::QueryServiceClient;

use super::doc;
use super::generate::generate_project;
use super::machine::{self, Machine};
use super::measure::Progress;
use super::process::serve;
use super::process::{rss, run_measured, settle};
use super::queries::raw_replay;
use super::report::{self, Row, Target as Goal, Value};
use super::scratch::ScratchDir;
use super::server::Target;
use super::stats::Rate;

#[derive(Debug, Args)]
pub struct ExportBenchArgs {
    /// Events of the exported project.
    #[arg(long, default_value_t = 1_000_000, value_parser = RangedU64ValueParser::<u64>::new().range(1000..))]
    pub events: u64,
    /// Spawn a 3-node cluster (`sync_interval: always`) and use an R3
    /// stream; the embedded half is left out (it does not depend on NATS).
    #[arg(long)]
    pub cluster: bool,
    /// Write the results into FILE, replacing its `bench:export` section
    /// (`bench:export-r3` with `--cluster`).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

const PROJECT: &str = "audit-bench";

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Exports timed per backend; the median is reported (one run moved by
/// ±15% on the 2-core machine).
const EXPORT_RUNS: usize = 3;

/// The longest wait for the server to go quiet before an export.
const SETTLE: Duration = Duration::from_secs(120);

/// What one backend measured.
struct Measured {
    /// The median of the runs.
    export: Rate,
    /// Every run's rate, in the order they ran, and whether the server
    /// had gone quiet before it (false: it was still busy after [`SETTLE`]).
    export_runs: Vec<(f64, bool)>,
    verify: Rate,
    export_peak: u64,
    verify_peak: u64,
    server_before: u64,
    server_peak: u64,
    bytes: u64,
}

/// Serves the log (`url`, or the embedded one in `data`), waits for the read
/// models, then runs and measures `export` and `verify-export`.
async fn measure(url: Option<&str>, data: &Path, events: u64) -> anyhow::Result<Measured> {
    let exe = std::env::current_exe()?;
    let key = data.with_extension("key");
    let status = Command::new(&exe)
        .args(["keygen", "--name", "bench", "--out"])
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    ensure!(status.success(), "keygen failed");
    let key_arg = key
        .to_str()
        .context("scratch path is not UTF-8")?
        .to_string();
    let (mut server, endpoint) = serve(
        url,
        data,
        &["--signing-key", &key_arg, "--checkpoint-every", "100000"],
    )?;
    let mut q = QueryServiceClient::connect(endpoint.clone()).await?;
    loop {
        let s = q
            .projection_status(pb::ProjectionStatusRequest {})
            .await?
            .into_inner();
        if s.applied >= events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = data.with_extension("export");
    let server_pid = server.id();
    let server_before = rss(server_pid);
    // Each run's time, and whether the server had gone quiet before it.
    let mut runs: Vec<(Duration, bool)> = Vec::with_capacity(EXPORT_RUNS);
    let (mut export_peak, mut server_peak) = (0, server_before);
    for _ in 0..EXPORT_RUNS {
        if out.exists() {
            std::fs::remove_dir_all(&out)?;
        }
        let waited = tokio::task::spawn_blocking(move || settle(server_pid, SETTLE)).await?;
        if waited >= SETTLE {
            tracing::warn!(?waited, "the server is still busy; exporting anyway");
        } else {
            tracing::info!(?waited, "the server has gone quiet");
        }
        let (exe2, out2, endpoint2) = (exe.clone(), out.clone(), endpoint.clone());
        let (time, client, server) = tokio::task::spawn_blocking(move || {
            let mut peak = server_peak;
            let (time, client) = run_measured(
                Command::new(exe2)
                    .args([
                        "export",
                        "--project",
                        PROJECT,
                        "--server",
                        &endpoint2,
                        "--out",
                    ])
                    .arg(&out2)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
                "the export",
                || peak = peak.max(rss(server_pid)),
            )?;
            anyhow::Ok((time, client, peak))
        })
        .await??;
        runs.push((time, waited < SETTLE));
        export_peak = export_peak.max(client);
        server_peak = server_peak.max(server);
    }
    let export_runs = runs
        .iter()
        .map(|&(elapsed, quiet)| (Rate { events, elapsed }.per_sec(), quiet))
        .collect();
    let mut times: Vec<Duration> = runs.iter().map(|&(time, _)| time).collect();
    times.sort();
    let export_time = times[times.len() / 2];
    let _ = server.kill();
    let _ = server.wait();
    let out3 = out.clone();
    let public = format!("{key_arg}.pub");
    let (verify_time, verify_peak) = tokio::task::spawn_blocking(move || {
        run_measured(
            Command::new(exe)
                .arg("verify-export")
                .arg(&out3)
                .args(["--pubkey", &public])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "verify-export",
            || {},
        )
    })
    .await??;
    let bytes: u64 = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    Ok(Measured {
        export: Rate {
            events,
            elapsed: export_time,
        },
        export_runs,
        verify: Rate {
            events,
            elapsed: verify_time,
        },
        export_peak,
        verify_peak,
        server_before,
        server_peak,
        bytes,
    })
}

fn memory(backend: &str, m: &Measured) -> String {
    let runs: Vec<String> = m
        .export_runs
        .iter()
        .map(|&(r, quiet)| {
            let busy = if quiet { "" } else { " (server still busy)" };
            format!("{:.1}k{busy}", r / 1000.0)
        })
        .collect();
    format!(
        "{backend}: the {} exports ran at {} ev/s (the table has the median); peak RSS of \
         the export client **{:.0} MiB** (target ≤ 100 MiB), of verify-export **{:.0} MiB**; \
         the server grew by {:.0} MiB while exporting (from {:.0} MiB, mostly the read models \
         of the project); export size {:.0} MiB.",
        runs.len(),
        runs.join(", "),
        mib(m.export_peak),
        mib(m.verify_peak),
        mib(m.server_peak.saturating_sub(m.server_before)),
        mib(m.server_before),
        mib(m.bytes)
    )
}

/// Scratch space per event at the peak of a run, measured at 1M events: the
/// JetStream store, both servers' read models, the embedded log and an
/// export (about 11 KB), with a margin.
const SCRATCH_PER_EVENT: u64 = 12_000;

pub async fn run(args: ExportBenchArgs) -> anyhow::Result<()> {
    super::scratch::ensure_space(
        args.events.saturating_mul(SCRATCH_PER_EVENT),
        &format!("bench export --events {}", args.events),
    )?;
    let machine = Machine::detect();
    let date = machine::now_utc();
    let mut progress = Progress::named("export", if args.cluster { 5 } else { 7 });
    progress.phase(if args.cluster {
        "starting a 3-node nats-server cluster"
    } else {
        "starting nats-server"
    });
    let mut target = Target::open_with(None, args.cluster, args.cluster).await?;
    let url = target.url().to_string();
    let log: Arc<dyn EventLog> = Arc::new(
        target
            .waybill_log("WAYBILL".into(), "waybill".into())
            .await?,
    );
    progress.phase(format!(
        "JetStream: generating {} events in one project",
        args.events
    ));
    generate_project(log.clone(), PROJECT.to_string(), args.events).await?;
    ensure!(
        log.head().await?.0 == args.events,
        "the generated ledger is short"
    );
    progress.phase("raw ordered consumer over the same stream");
    raw_replay(&target, args.events).await?;
    let raw = raw_replay(&target, args.events).await?;
    let scratch = ScratchDir::create("waybill-bench-export-")?;
    progress.phase("JetStream: serve, export, verify-export (child processes)");
    let js = measure(Some(&url), &scratch.path().join("jetstream"), args.events).await?;
    let version = target.version();
    // Its connection would otherwise keep trying the stopped server.
    drop(log);
    target.close().await;

    let embedded = if args.cluster {
        None
    } else {
        progress.phase(format!(
            "embedded: generating {} events in one project",
            args.events
        ));
        let dir = scratch.path().join("embedded");
        {
            let sled = waybill_ledger::SledLog::open(&dir)?;
            generate_project(Arc::new(sled.clone()), PROJECT.to_string(), args.events).await?;
            sled.flush().await?;
        }
        progress.phase("embedded: serve, export, verify-export (child processes)");
        Some(measure(None, &dir, args.events).await?)
    };
    drop(scratch);

    progress.phase("report");
    let label = if args.cluster {
        "JetStream R3"
    } else {
        "JetStream"
    };
    let mut rows = vec![
        Row::new(
            format!("export, {label} (vs the 100k ev/s target)"),
            Value::Rate(js.export.per_sec()),
            Value::Rate(100_000.0),
            Goal::AtLeast(1.0),
        ),
        Row::new(
            format!("export, {label} (vs raw ordered consumer)"),
            Value::Rate(js.export.per_sec()),
            Value::Rate(raw.per_sec()),
            Goal::None,
        ),
    ];
    if let Some(embedded) = &embedded {
        rows.push(Row::new(
            "export, embedded (vs the 100k ev/s target)",
            Value::Rate(embedded.export.per_sec()),
            Value::Rate(100_000.0),
            Goal::AtLeast(1.0),
        ));
    }
    rows.push(Row::new(
        format!("verify-export, {label} export (offline)"),
        Value::Rate(js.verify.per_sec()),
        Value::Rate(raw.per_sec()),
        Goal::None,
    ));
    if let Some(embedded) = &embedded {
        rows.push(Row::new(
            "verify-export, embedded export (offline)",
            Value::Rate(embedded.verify.per_sec()),
            Value::Rate(raw.per_sec()),
            Goal::None,
        ));
    }
    let table = report::render(&rows);
    let mut memory = memory(label, &js);
    if let Some(embedded) = &embedded {
        memory = format!("{memory}\n\n{}", self::memory("Embedded", embedded));
    }
    println!(
        "waybill bench export: nats-server {version}, {} events in one project\nmachine: \
         {machine}\n\n{table}\n{memory}",
        args.events,
    );
    if let Some(path) = &args.write {
        let (flag, layout, section) = if args.cluster {
            (
                " --cluster",
                format!("{}; no embedded half", super::commands::layout(true)),
                "export-r3",
            )
        } else {
            (
                "",
                format!(
                    "{}; and the embedded (sled) backend",
                    super::commands::layout(false)
                ),
                "export",
            )
        };
        let body = format!(
            "## Compliance export (`waybill bench export{flag}`)

- Command: `cargo run --release -- bench export{flag} --events {events} --write {file}`
- Date: {date}
- Machine: {machine}
- Server: nats-server {version}, spawned on loopback, {layout}
- Ledger: {events} generated events in one project (per freight: discovery,
  promotion into dev, a passing check, promotion into staging){each}

{table}
{memory}

`waybill export` runs as a child process against a `waybill serve` child
process whose read models have caught up and which has then gone quiet (under
5% of a core for a second, then `sync`, so that the export does not share the
machine with the server's catch-up or the writeback of its read models). It
runs {runs} times against the same server, each into a fresh directory after
the server has gone quiet again, or after {settle} s if it has not (such a
run is marked `(server still busy)`: sled may still be writing back pages);
the table has the median (one run moves by about ±15% on this machine). The
time is the whole command (ask for a checkpoint, stream the records, the multi-leaf proof, the promotion
records and the signed manifest, write and fsync the files). `verify-export`
then checks the export offline: manifest and checkpoint signatures, file
digests, every record's chain link and fields, the Merkle root from the
records and the proof, and the promotions. The raw column is an ordered
consumer reading the same JetStream stream in the bench process.
",
            events = args.events,
            runs = EXPORT_RUNS,
            settle = SETTLE.as_secs(),
            file = path.display(),
            each = if args.cluster {
                ""
            } else {
                ", once on each backend"
            },
        );
        doc::write_section(path, section, &body)?;
    }
    Ok(())
}
