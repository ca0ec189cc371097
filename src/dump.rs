//! `waybill dump`: raw records as JSON lines, so that an auditor can check the
//! chain with their own tool (docs/ledger-format.md).

use std::io::Write;

use futures::StreamExt;
use serde::Serialize;
use waybill_ledger::{LedgerError, Position, ProjectName};

use crate::cli::DumpArgs;
use crate::config::FileConfig;
use crate::open::open_existing;

/// One line of the dump.
#[derive(Debug, Serialize)]
struct DumpLine<'a> {
    position: u64,
    project: &'a str,
    project_seq: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    /// The canonical record bytes, hex.
    record: String,
    /// SHA-256(prev_hash ‖ record), hex, as Waybill computes it.
    hash: String,
    /// The hash stored beside the record (NATS header `Waybill-Hash`, or the
    /// embedded store's prefix), hex; differs from `hash` if the record was altered.
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_hash: Option<String>,
}

pub async fn run(args: DumpArgs, file: &FileConfig) -> anyhow::Result<()> {
    let project = args.project.map(ProjectName::log_project).transpose()?;
    let log = open_existing(&args.log, file, None).await?;
    let handle = log.log();
    if let Some(p) = &project {
        if handle.last_position(p).await? == Position::ZERO {
            log.close().await;
            // An empty dump would look like a project without records.
            anyhow::bail!("project {p} has no events in this log: nothing to dump");
        }
    }
    let mut events = match &project {
        Some(p) => handle.read_project(p, Position(args.from)).await?,
        None => handle.read_all(Position(args.from)).await?,
    };
    // On a terminal, how far the dump got: the records go to stdout (a
    // file or a pipe), the bar to stderr.
    let bar = crate::progress::terminal_bar(
        handle.head().await?.0,
        "dumping {bar:40} position {pos}/{len} ({per_sec}, eta {eta})",
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while let Some(item) = events.next().await {
        let ev = match item {
            Ok(ev) => ev,
            // In no chain, so not a line: said on stderr, beside the bar.
            Err(e @ LedgerError::Foreign(_)) => {
                bar.suspend(|| eprintln!("not dumped: {e} (`waybill verify` reports it)"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        bar.set_position(ev.position.0);
        let event_type = ev.event.payload.event_type().name();
        let line = DumpLine {
            position: ev.position.0,
            project: &ev.event.project,
            project_seq: ev.event.project_seq,
            event_type,
            record: hex::encode(&ev.bytes),
            hash: ev.hash.to_hex(),
            stored_hash: ev.stored_hash.map(|h| h.to_hex()),
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    drop(out);
    bar.finish_and_clear();
    log.close().await;
    Ok(())
}
