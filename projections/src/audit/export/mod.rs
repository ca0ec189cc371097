//! Compliance exports: a project's raw records in a time range, one record
//! per promotion, one per pipeline applied, the signed checkpoint, a multi-leaf inclusion proof of
//! every record under it, and a signed manifest with every file's SHA-256.
//!
//! Everything streams: records are read from the log and sent as they come,
//! the proof is computed beside them in a blocking thread from the stored
//! tree, so memory does not grow with the export.

mod events;
mod manifest;
mod out;
mod policies;
mod promotions;
mod records;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::mpsc;
use waybill_ledger::audit::{multi_proof, root, Checkpoint};
use waybill_ledger::{EventLog, ProjectName};

use events::write_events;
pub use manifest::*;
use out::{send_all, FileOut};
pub use policies::{Policies, PolicyRecord, POLICIES_FILE};
use promotions::spawn_promotions;
pub use records::*;

use super::runner::Transparency;
use crate::runner::Projections;

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
            "this server signs no checkpoints (`--no-checkpoints`, or `checkpoints = \
             false` under [audit] in its config file), so it cannot sign an export: take \
             it from a server that signs them"
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
    let transparent = &transparency;
    let covering = |size: u64| async move {
        transparent
            .checkpoint_covering(size, CHECKPOINT_WAIT)
            .await
            .ok_or_else(|| {
                ExportError::Unavailable(format!(
                    "no checkpoint covers position {} yet; retry",
                    head.position
                ))
            })
    };
    let mut checkpoint = covering(head.position.0).await?;
    let verifier = signer.verifier();
    if Checkpoint::open(&checkpoint.note, &verifier).is_err() {
        // Signed by another key: one this server's key replaced (a
        // rotation), or another process's. Nothing may have been appended
        // since, so none of ours would come by itself: ask for one over the
        // tree as it stands, which holds that checkpoint's own record.
        let tree = transparency.size().max(checkpoint.size + 1);
        checkpoint = covering(tree).await?;
    }
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
    let (events_entry, events, policies) = summary?;
    let mut out = FileOut::new(POLICIES_FILE);
    let mut chunks = Vec::new();
    for record in &policies.records {
        let chunk = out
            .write_with(|buf| {
                serde_json::to_writer(&mut *buf, record)?;
                buf.push(b'\n');
                Ok(())
            })
            .map_err(|e: serde_json::Error| ExportError::Internal(e.to_string()))?;
        chunks.extend(chunk);
    }
    let (items, policies_entry) = out.finish();
    chunks.extend(items);
    send_all(&tx, chunks).await?;

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
        policies: Some(PoliciesSummary {
            count: policies.records.len() as u64,
            file: POLICIES_FILE.to_string(),
        }),
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
            policies_entry,
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
