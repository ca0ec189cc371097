//! `waybill debug`: helpers for the crash tests (hidden from `--help`).

use std::io::Write;

use clap::{Args, Subcommand};
use waybill_ledger::event::PromotionApproved;
use waybill_ledger::{Actor, EventPayload, LedgerError, NewEvent, ProjectName};

use crate::cli::LogArgs;
use crate::config::FileConfig;
use crate::open::open;

#[derive(Debug, Args)]
pub struct DebugArgs {
    #[command(subcommand)]
    command: DebugCommand,
}

#[derive(Debug, Subcommand)]
enum DebugCommand {
    /// Append events as fast as possible, printing `ack <position> <command id>`
    /// to stdout (flushed) after each acknowledgement.
    AppendBurst {
        #[command(flatten)]
        log: LogArgs,
        /// Events per writer.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Concurrent writers, each on its own project `burst-<n>`.
        #[arg(long, default_value_t = 4)]
        writers: u64,
        /// Prefix of command ids (so separate runs do not collide).
        #[arg(long, default_value = "burst")]
        tag: String,
    },
}

pub async fn run(args: DebugArgs, file: &FileConfig) -> anyhow::Result<()> {
    match args.command {
        DebugCommand::AppendBurst {
            log,
            count,
            writers,
            tag,
        } => {
            let open = open(&log, file).await?;
            let log = open.log();
            let mut tasks = Vec::new();
            for w in 0..writers {
                let log = log.clone();
                let tag = tag.clone();
                tasks.push(tokio::spawn(async move {
                    let project = ProjectName::project(format!("burst-{w}"))?;
                    let mut head = log.last_position(&project).await?;
                    let mut i = 0;
                    while i < count {
                        let command_id = format!("{tag}-{w}-{i}");
                        let event = NewEvent::new(
                            EventPayload::PromotionApproved(PromotionApproved {
                                promotion_id: format!("promo-{w}"),
                                comment: format!("burst {i}"),
                            }),
                            Actor::service("burst"),
                            command_id.clone(),
                        );
                        match log.append(&project, head, event).await {
                            Ok(a) => {
                                head = a.position;
                                i += 1;
                                let mut out = std::io::stdout().lock();
                                writeln!(out, "ack {} {command_id}", a.position)?;
                                out.flush()?;
                            }
                            Err(LedgerError::Conflict { actual }) => head = actual,
                            Err(e) => return Err(anyhow::Error::from(e)),
                        }
                    }
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            open.close().await;
            Ok(())
        }
    }
}
