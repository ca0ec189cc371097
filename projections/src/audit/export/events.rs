//! `events.jsonl`: the project's raw records, read from the log by one
//! task and formatted, hashed and sent by a blocking thread beside it.

use std::sync::Arc;

use base64::Engine;
use futures::StreamExt;
use tokio::sync::mpsc;
use waybill_ledger::{ChainHash, EventLog, LedgerError, Position, StoredEvent};

use super::out::{send, send_all, FileOut};
use super::policies::Policies;
use super::{
    time, EventLine, EventsSummary, ExportError, ExportItem, ExportSpec, FileEntry, EVENTS_FILE,
};

/// Leaf indices handed to the proof builder at a time.
const INDEX_BATCH: usize = 1024;
/// Records per batch handed from the reader to the line writer, and
/// batches in flight between them.
const LINE_BATCH: usize = 256;
const LINE_BATCHES: usize = 4;
/// Records between two progress reports.
const PROGRESS_EVERY: u64 = 4096;

/// `bytes` in lowercase hex, written into `out` (no allocation).
fn hex_str<'a>(bytes: &[u8; 32], out: &'a mut [u8; 64]) -> &'a str {
    // Cannot fail: `out` is exactly twice as long as `bytes`.
    let _ = hex::encode_to_slice(bytes, out);
    std::str::from_utf8(out).unwrap_or_default()
}

/// Writes the records of the project up to `head` (within the spec's time
/// range) as `events.jsonl`, and feeds their leaf indices to the proof.
///
/// Two stages, so that an export uses both cores: this task reads the log
/// (the log client's parsing, decoding, the chain check) and keeps the
/// summary; a blocking thread formats, hashes and sends the lines
/// ([`write_lines`]). With one task doing both, the records' half of a
/// 1M-event export ran on one core while the other idled once the
/// promotions were written.
pub(super) async fn write_events(
    log: &Arc<dyn EventLog>,
    spec: &ExportSpec,
    head: &waybill_ledger::ChainHead,
    tx: &mpsc::Sender<ExportItem>,
    indices: &std::sync::mpsc::SyncSender<Vec<u64>>,
) -> Result<(FileEntry, EventsSummary, Policies), ExportError> {
    let (batches, received) = mpsc::channel::<Vec<StoredEvent>>(LINE_BATCHES);
    let lines = {
        let (tx, indices) = (tx.clone(), indices.clone());
        tokio::task::spawn_blocking(move || write_lines(received, &tx, &indices))
    };
    let read = read_events(log, spec, head, tx, batches).await;
    // The line writer ends once the reader has dropped its sender.
    let out = lines
        .await
        .map_err(|e| ExportError::Internal(e.to_string()))?;
    let ((summary, policies), out) = match (read, out) {
        (Ok(read), Ok(out)) => (read, out),
        // The line writer stops when the export is cancelled (or the proof
        // builder stops), and the reader then cannot hand it more records:
        // its error says why.
        (_, Err(e)) | (Err(e), _) => return Err(e),
    };
    send(
        tx,
        ExportItem::Progress {
            done: head.seq,
            total: head.seq,
        },
    )
    .await?;
    let (items, entry) = out.finish();
    send_all(tx, items).await?;
    Ok((entry, summary, policies))
}

/// Reads the records [`write_events`] exports and hands them to the line
/// writer in batches; returns their summary and the pipelines applied
/// among them.
async fn read_events(
    log: &Arc<dyn EventLog>,
    spec: &ExportSpec,
    head: &waybill_ledger::ChainHead,
    tx: &mpsc::Sender<ExportItem>,
    batches: mpsc::Sender<Vec<StoredEvent>>,
) -> Result<(EventsSummary, Policies), ExportError> {
    let mut policies = Policies::default();
    let mut summary = EventsSummary {
        count: 0,
        first_position: 0,
        last_position: 0,
        first_seq: 0,
        last_seq: 0,
        prev_hash: ChainHash::GENESIS.to_hex(),
        head_hash: ChainHash::GENESIS.to_hex(),
        project_head_position: head.position.0,
        project_head_seq: head.seq,
        project_head_hash: head.hash.to_hex(),
    };
    let mut before = ChainHash::GENESIS;
    let mut last = ChainHash::GENESIS;
    let mut records = log.read_project(&spec.project, Position(1)).await?;
    let mut read_count = 0u64;
    let mut batch = Vec::with_capacity(LINE_BATCH);
    // A closed channel: the line writer stopped, and says why.
    let stopped = || ExportError::Internal("the line writer stopped".into());
    while let Some(ev) = records.next().await {
        let ev = match ev {
            // In no chain: `waybill verify` reports it.
            Err(LedgerError::Foreign(_)) => continue,
            ev => ev?,
        };
        if ev.position > head.position {
            break;
        }
        read_count += 1;
        if read_count.is_multiple_of(PROGRESS_EVERY) {
            send(
                tx,
                ExportItem::Progress {
                    done: read_count,
                    total: head.seq,
                },
            )
            .await?;
        }
        let started = summary.count > 0;
        if !started && spec.from.is_some_and(|from| ev.event.time < from) {
            before = ev.hash;
            policies.saw(ev.position, &ev.event, false);
            continue;
        }
        if spec.to.is_some_and(|to| ev.event.time >= to) {
            break;
        }
        if !started {
            summary.first_position = ev.position.0;
            summary.first_seq = ev.event.project_seq;
            summary.prev_hash = before.to_hex();
        }
        summary.count += 1;
        summary.last_position = ev.position.0;
        summary.last_seq = ev.event.project_seq;
        last = ev.hash;
        policies.saw(ev.position, &ev.event, true);
        batch.push(ev);
        if batch.len() == LINE_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(LINE_BATCH));
            batches.send(full).await.map_err(|_| stopped())?;
        }
    }
    if !batch.is_empty() {
        batches.send(batch).await.map_err(|_| stopped())?;
    }
    if summary.count == 0 {
        summary.prev_hash = before.to_hex();
        last = before;
    }
    summary.head_hash = last.to_hex();
    Ok((summary, policies))
}

/// Formats, hashes and sends the lines of `events.jsonl`, and feeds the
/// records' leaf indices to the proof, on the calling (blocking) thread.
/// Returns the file, not finished: only a complete read finishes it.
fn write_lines(
    mut received: mpsc::Receiver<Vec<StoredEvent>>,
    tx: &mpsc::Sender<ExportItem>,
    indices: &std::sync::mpsc::SyncSender<Vec<u64>>,
) -> Result<FileOut, ExportError> {
    let mut out = FileOut::new(EVENTS_FILE);
    let mut leaves = Vec::with_capacity(INDEX_BATCH);
    let b64 = base64::engine::general_purpose::STANDARD;
    // Reused for every record's base64.
    let mut record = String::new();
    let proof_stopped = || ExportError::Internal("the proof builder stopped".into());
    while let Some(events) = received.blocking_recv() {
        for ev in &events {
            let (mut prev_hex, mut hash_hex) = ([0u8; 64], [0u8; 64]);
            record.clear();
            b64.encode_string(&ev.bytes, &mut record);
            let time = time(ev.event.time);
            let line = EventLine {
                position: ev.position.0,
                project: ev.event.project.as_str(),
                project_seq: ev.event.project_seq,
                event_type: ev.event.payload.event_type().ce_type(),
                time: time.as_str(),
                actor: ev.event.actor.principal.as_str(),
                prev_hash: hex_str(&ev.event.prev_hash.0, &mut prev_hex),
                hash: hex_str(&ev.hash.0, &mut hash_hex),
                record: record.as_str(),
            };
            let chunk = out
                .write_with(|buf| {
                    serde_json::to_writer(&mut *buf, &line)?;
                    buf.push(b'\n');
                    Ok(())
                })
                .map_err(|e: serde_json::Error| ExportError::Internal(e.to_string()))?;
            if let Some(chunk) = chunk {
                tx.blocking_send(chunk)
                    .map_err(|_| ExportError::Cancelled)?;
            }
            leaves.push(ev.position.0 - 1);
            if leaves.len() == INDEX_BATCH {
                let full = std::mem::replace(&mut leaves, Vec::with_capacity(INDEX_BATCH));
                indices.send(full).map_err(|_| proof_stopped())?;
            }
        }
    }
    if !leaves.is_empty() {
        indices.send(leaves).map_err(|_| proof_stopped())?;
    }
    Ok(out)
}
