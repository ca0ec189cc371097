//! Compliance exports: a project's raw records in a time range, one record
//! per promotion, the signed checkpoint, a multi-leaf inclusion proof of
//! every record under it, and a signed manifest with every file's SHA-256.
//!
//! Everything streams: records are read from the log and sent as they come,
//! the proof is computed beside them in a blocking thread from the stored
//! tree, so memory does not grow with the export.

mod manifest;
mod records;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use waybill_ledger::audit::{multi_proof, root, Checkpoint};
use waybill_ledger::domain::Freight;
use waybill_ledger::{ChainHash, EventLog, Position, ProjectName, StoredEvent};

pub use manifest::*;
pub use records::*;

use super::runner::Transparency;
use crate::models;
use crate::runner::Projections;
use crate::store::ProjectionStore;

/// Bytes buffered per file before a chunk is sent.
const CHUNK_BYTES: usize = 256 * 1024;
/// Leaf indices handed to the proof builder at a time.
const INDEX_BATCH: usize = 1024;
/// Records per batch handed from the reader to the line writer, and
/// batches in flight between them.
const LINE_BATCH: usize = 256;
const LINE_BATCHES: usize = 4;
/// Records between two progress reports.
const PROGRESS_EVERY: u64 = 4096;
/// How long an export waits for a checkpoint covering the project's head.
pub const CHECKPOINT_WAIT: Duration = Duration::from_secs(30);
/// How long an export waits for the read models to reach the project's head.
const PROJECTION_WAIT: Duration = Duration::from_secs(30);

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    pub project: ProjectName,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub csv: bool,
}

/// One piece of the export stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportItem {
    /// Bytes to append to `file`.
    Data { file: &'static str, bytes: Vec<u8> },
    /// `file` is complete.
    Done {
        file: &'static str,
        sha256: String,
        bytes: u64,
    },
    /// Records read so far of the project's `total`.
    Progress { done: u64, total: u64 },
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    /// The receiver went away.
    #[error("the export was cancelled")]
    Cancelled,
}

impl From<waybill_ledger::LedgerError> for ExportError {
    fn from(e: waybill_ledger::LedgerError) -> Self {
        match e {
            waybill_ledger::LedgerError::Unavailable(m) => ExportError::Unavailable(m),
            other => ExportError::Internal(other.to_string()),
        }
    }
}

/// A file being written: buffered, hashed, sent in chunks.
struct FileOut {
    name: &'static str,
    buf: Vec<u8>,
    hasher: Sha256,
    bytes: u64,
}

impl FileOut {
    fn new(name: &'static str) -> FileOut {
        FileOut {
            name,
            buf: Vec::with_capacity(CHUNK_BYTES + 1024),
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Appends `data`; returns a chunk to send once enough is buffered.
    fn write(&mut self, data: &[u8]) -> Option<ExportItem> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.buf.extend_from_slice(data);
        (self.buf.len() >= CHUNK_BYTES).then(|| self.take())
    }

    /// Appends what `f` writes into the buffer (no copy through a line of
    /// its own); returns a chunk to send once enough is buffered.
    fn write_with<E>(
        &mut self,
        f: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Option<ExportItem>, E> {
        let start = self.buf.len();
        if let Err(e) = f(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let added = &self.buf[start..];
        self.hasher.update(added);
        self.bytes += added.len() as u64;
        Ok((self.buf.len() >= CHUNK_BYTES).then(|| self.take()))
    }

    fn take(&mut self) -> ExportItem {
        ExportItem::Data {
            file: self.name,
            bytes: std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + 1024)),
        }
    }

    /// The last chunk, the completion item and the manifest entry.
    fn finish(mut self) -> (Vec<ExportItem>, FileEntry) {
        let sha256 = hex::encode(self.hasher.finalize_reset());
        let mut items = Vec::new();
        if !self.buf.is_empty() {
            items.push(self.take());
        }
        items.push(ExportItem::Done {
            file: self.name,
            sha256: sha256.clone(),
            bytes: self.bytes,
        });
        let entry = FileEntry {
            name: self.name.to_string(),
            sha256,
            bytes: self.bytes,
        };
        (items, entry)
    }
}

async fn send(tx: &mpsc::Sender<ExportItem>, item: ExportItem) -> Result<(), ExportError> {
    tx.send(item).await.map_err(|_| ExportError::Cancelled)
}

async fn send_all(
    tx: &mpsc::Sender<ExportItem>,
    items: Vec<ExportItem>,
) -> Result<(), ExportError> {
    for item in items {
        send(tx, item).await?;
    }
    Ok(())
}

/// `bytes` in lowercase hex, written into `out` (no allocation).
fn hex_str<'a>(bytes: &[u8; 32], out: &'a mut [u8; 64]) -> &'a str {
    // Cannot fail: `out` is exactly twice as long as `bytes`.
    let _ = hex::encode_to_slice(bytes, out);
    std::str::from_utf8(out).unwrap_or_default()
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Produces the export described by `spec` into `tx`.
pub async fn export(
    log: Arc<dyn EventLog>,
    projections: Projections,
    transparency: Transparency,
    spec: ExportSpec,
    tx: mpsc::Sender<ExportItem>,
) -> Result<(), ExportError> {
    let signer = transparency.signer().ok_or_else(|| {
        ExportError::Precondition(
            "this server has no signing key, so it cannot sign an export \
             (give `waybill serve` a key made by `waybill keygen`)"
                .into(),
        )
    })?;
    let project = &spec.project;
    let head = log.project_head(project).await?;
    if head.seq == 0 {
        return Err(ExportError::NotFound(format!(
            "no project {:?}",
            project.as_str()
        )));
    }
    // A checkpoint that covers every record the export can hold.
    let checkpoint = transparency
        .checkpoint_covering(head.position.0, CHECKPOINT_WAIT)
        .await
        .ok_or_else(|| {
            ExportError::Unavailable(format!(
                "no checkpoint covers position {} yet; retry",
                head.position
            ))
        })?;
    let verifier = signer.verifier();
    let signed = Checkpoint::open(&checkpoint.note, &verifier).map_err(|e| {
        ExportError::Precondition(format!(
            "the latest checkpoint (tree size {}) is not signed by this server's key {}: {e}",
            checkpoint.size,
            verifier.encode()
        ))
    })?;
    let size = signed.size;
    let store = transparency.store().clone();
    let ours = tokio::task::spawn_blocking(move || root(&store, size))
        .await
        .map_err(|e| ExportError::Internal(e.to_string()))?
        .map_err(|e| ExportError::Internal(e.to_string()))?;
    if ours != signed.root {
        return Err(ExportError::Internal(format!(
            "the checkpoint of tree size {size} does not match this server's Merkle tree"
        )));
    }
    projections
        .wait_for(head.position, PROJECTION_WAIT)
        .await
        .map_err(|at| {
            ExportError::Unavailable(format!(
                "the read models reflect position {at}, not yet {}; retry",
                head.position
            ))
        })?;

    // The proof runs beside the records, fed their leaf indices in order.
    let (indices, proof_rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(16);
    let proof_tx = tx.clone();
    let store = transparency.store().clone();
    let proof = tokio::task::spawn_blocking(move || {
        let mut out = FileOut::new(PROOF_FILE);
        let mut nodes = 0u64;
        let mut leaves = proof_rx.into_iter().flatten().peekable();
        let result = if leaves.peek().is_none() {
            Ok(())
        } else {
            multi_proof(&store, size, leaves, |h| {
                nodes += 1;
                let mut line = hex::encode(h);
                line.push('\n');
                if let Some(chunk) = out.write(line.as_bytes()) {
                    // A closed channel means the export was cancelled; the
                    // record side notices too.
                    let _ = proof_tx.blocking_send(chunk);
                }
            })
            .map_err(|e| e.to_string())
        };
        let (items, entry) = out.finish();
        for item in items {
            let _ = proof_tx.blocking_send(item);
        }
        result.map(|()| (entry, nodes))
    });

    // Without a time range the records are all of the project's up to its
    // head, so the promotions file can be written beside them; with one, it
    // waits for the records to say which positions they span.
    let early = (spec.from.is_none() && spec.to.is_none())
        .then(|| spawn_promotions(&projections, &spec, 1..=head.position.0, &tx));
    let summary = write_events(&log, &spec, &head, &tx, &indices).await;
    drop(indices);
    let (proof_entry, proof_nodes) = proof
        .await
        .map_err(|e| ExportError::Internal(e.to_string()))?
        .map_err(|e| ExportError::Internal(format!("building the inclusion proof: {e}")))?;
    let (events_entry, events) = summary?;

    let promotions = match early {
        Some(written) => written,
        // No records, no promotions: position 0 holds no record.
        None if events.count == 0 => spawn_promotions(&projections, &spec, 0..=0, &tx),
        None => spawn_promotions(
            &projections,
            &spec,
            events.first_position..=events.last_position,
            &tx,
        ),
    };
    let (promotions_entry, promotions) = promotions
        .await
        .map_err(|e| ExportError::Internal(e.to_string()))??;

    let mut out = FileOut::new(CHECKPOINT_FILE);
    let first = out.write(checkpoint.note.as_bytes());
    let (items, checkpoint_entry) = out.finish();
    send_all(&tx, first.into_iter().chain(items).collect()).await?;

    let manifest = Manifest {
        format: FORMAT.to_string(),
        project: project.as_str().to_string(),
        from: spec.from.map(time).unwrap_or_default(),
        to: spec.to.map(time).unwrap_or_default(),
        created_at: time(Utc::now()),
        public_key: verifier.encode(),
        events,
        promotions: PromotionsSummary {
            count: promotions,
            file: promotions_file(spec.csv).to_string(),
            format: if spec.csv { "csv" } else { "jsonl" }.to_string(),
            as_of_position: projections.applied().0,
        },
        checkpoint: CheckpointSummary {
            origin: signed.origin.clone(),
            size,
            root: hex::encode(signed.root),
            position: checkpoint.position,
        },
        proof: ProofSummary {
            kind: PROOF_KIND.to_string(),
            nodes: proof_nodes,
        },
        files: vec![
            events_entry,
            proof_entry,
            promotions_entry,
            checkpoint_entry,
        ],
    };
    let mut json =
        serde_json::to_vec_pretty(&manifest).map_err(|e| ExportError::Internal(e.to_string()))?;
    json.push(b'\n');
    let mut out = FileOut::new(MANIFEST_FILE);
    let first = out.write(&json);
    let (items, manifest_entry) = out.finish();
    send_all(&tx, first.into_iter().chain(items).collect()).await?;

    let note = signer
        .sign(&manifest_note(&manifest_entry.sha256))
        .map_err(|e| ExportError::Internal(e.to_string()))?;
    let mut out = FileOut::new(MANIFEST_SIG_FILE);
    let first = out.write(note.as_bytes());
    let (items, _) = out.finish();
    send_all(&tx, first.into_iter().chain(items).collect()).await?;
    Ok(())
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
async fn write_events(
    log: &Arc<dyn EventLog>,
    spec: &ExportSpec,
    head: &waybill_ledger::ChainHead,
    tx: &mpsc::Sender<ExportItem>,
    indices: &std::sync::mpsc::SyncSender<Vec<u64>>,
) -> Result<(FileEntry, EventsSummary), ExportError> {
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
    let (summary, out) = match (read, out) {
        (Ok(summary), Ok(out)) => (summary, out),
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
    Ok((entry, summary))
}

/// Reads the records [`write_events`] exports and hands them to the line
/// writer in batches; returns their summary.
async fn read_events(
    log: &Arc<dyn EventLog>,
    spec: &ExportSpec,
    head: &waybill_ledger::ChainHead,
    tx: &mpsc::Sender<ExportItem>,
    batches: mpsc::Sender<Vec<StoredEvent>>,
) -> Result<EventsSummary, ExportError> {
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
        let ev = ev?;
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
    Ok(summary)
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

/// Writes one record per promotion requested at a position in `range` (the
/// exported records'), in the order of their requests, from the promotions
/// read model, on the calling (blocking) thread.
fn write_promotions(
    store: &ProjectionStore,
    project: &str,
    csv: bool,
    range: std::ops::RangeInclusive<u64>,
    tx: &mpsc::Sender<ExportItem>,
) -> Result<(FileEntry, u64), ExportError> {
    let send = |item| tx.blocking_send(item).map_err(|_| ExportError::Cancelled);
    let storage = |e: crate::ProjectionError| ExportError::Internal(e.to_string());
    let mut out = FileOut::new(promotions_file(csv));
    if csv {
        if let Some(chunk) = out.write(&csv_line(PromotionRecord::CSV_HEADER)?) {
            send(chunk)?;
        }
    }
    let tree = store.views();
    let after = Position(range.start().saturating_sub(1));
    // Promotions of one freight tend to come together: look its freight up once.
    let mut last: Option<(String, Option<Freight>)> = None;
    let mut count = 0u64;
    for p in models::promotions_after(tree, project, after) {
        let p = p.map_err(storage)?;
        if p.requested.0 > *range.end() {
            break;
        }
        if last.as_ref().is_none_or(|(id, _)| *id != p.freight) {
            let f = models::freight(tree, project, &p.freight).map_err(storage)?;
            last = Some((p.freight.clone(), f));
        }
        let freight = last.as_ref().and_then(|(_, f)| f.as_ref());
        let record = PromotionRecord::with_freight(project, &p, freight);
        count += 1;
        let chunk = if csv {
            out.write(&csv_line(record.csv_row())?)
        } else {
            out.write_with(|buf| {
                serde_json::to_writer(&mut *buf, &record)?;
                buf.push(b'\n');
                Ok(())
            })
            .map_err(|e: serde_json::Error| ExportError::Internal(e.to_string()))?
        };
        if let Some(chunk) = chunk {
            send(chunk)?;
        }
    }
    let (items, entry) = out.finish();
    for item in items {
        send(item)?;
    }
    Ok((entry, count))
}

/// [`write_promotions`] on the blocking pool.
fn spawn_promotions(
    projections: &Projections,
    spec: &ExportSpec,
    range: std::ops::RangeInclusive<u64>,
    tx: &mpsc::Sender<ExportItem>,
) -> tokio::task::JoinHandle<Result<(FileEntry, u64), ExportError>> {
    let store = projections.store().clone();
    let project = spec.project.as_str().to_string();
    let (csv, tx) = (spec.csv, tx.clone());
    tokio::task::spawn_blocking(move || write_promotions(&store, &project, csv, range, &tx))
}

/// One CSV line (RFC 4180 quoting).
fn csv_line<I, T>(fields: I) -> Result<Vec<u8>, ExportError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(fields)
        .map_err(|e| ExportError::Internal(e.to_string()))?;
    w.into_inner()
        .map_err(|e| ExportError::Internal(e.to_string()))
}
