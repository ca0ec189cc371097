//! `waybill bench`: Waybill measured against raw JetStream in the same run,
//! against the same server, so that the ratios hold on any machine.
//!
//! - [`log`]: `bench log`, the event log's append latency, throughput and replay.
//! - [`commands`]: `bench commands`, `RequestPromotion` end to end over gRPC.
//! - `queries`: `bench queries`, the read side on a generated ledger.
//! - `export`: `bench export`, a compliance export and its verification.
//! - `process`: child processes with their peak RSS.
//! - `measure`: the phases of `bench log`; `raw`: the raw JetStream baseline;
//!   `ledger`: the same workloads through the `EventLog` trait (JetStream and sled).
//! - `server`: the spawned or existing nats-server; `sample`: the typical event.
//! - `stats`, `report`: percentiles and rates, the results table.
//! - `doc`: the marked sections of `docs/BENCHMARKS.md`; `machine`: what ran it.

mod commands;
mod doc;
mod export;
mod generate;
mod in_process;
mod ledger;
mod log;
mod machine;
mod measure;
mod process;
mod queries;
mod raw;
mod report;
mod sample;
mod scratch;
mod server;
mod stats;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The event log: append latency, throughput with many writers, full replay.
    Log(log::LogBenchArgs),
    /// Commands over gRPC: RequestPromotion latency and throughput.
    Commands(commands::CommandsBenchArgs),
    /// The read side on a generated ledger: rebuild, queries, lag, RSS.
    Queries(queries::QueriesBenchArgs),
    /// A compliance export of a 1M-event project, and its offline verification.
    Export(export::ExportBenchArgs),
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Log(args) => log::run(args).await,
        BenchCommand::Commands(args) => commands::run(args).await,
        BenchCommand::Queries(args) => queries::run(args).await,
        BenchCommand::Export(args) => export::run(args).await,
    }
}
