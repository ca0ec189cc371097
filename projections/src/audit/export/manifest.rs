//! The files of an export and what its manifest states (docs/ledger-format.md §13).

use serde::{Deserialize, Serialize};

/// Format identifier written in every manifest: 2 adds the policies file.
pub const FORMAT: &str = "waybill-export/2";
/// The format before the policies file, which verifiers still read.
pub const FORMAT_1: &str = "waybill-export/1";
/// The raw records, one JSON object per line, in position order.
pub const EVENTS_FILE: &str = "events.jsonl";
/// The multi-leaf inclusion proof of the records: one hex hash per line.
pub const PROOF_FILE: &str = "proof.txt";
/// The signed checkpoint the proof leads to.
pub const CHECKPOINT_FILE: &str = "checkpoint.txt";
/// What the export states, with every file's digest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The signed note over the manifest's SHA-256.
pub const MANIFEST_SIG_FILE: &str = "manifest.sig";
/// First line of the note in `manifest.sig`.
pub const MANIFEST_NOTE_TITLE: &str = "waybill export manifest";
/// The multi-leaf proof scheme (docs/ledger-format.md §12.4).
pub const PROOF_KIND: &str = "waybill-multileaf-v1";

/// The promotions file for a format.
pub fn promotions_file(csv: bool) -> &'static str {
    if csv {
        "promotions.csv"
    } else {
        "promotions.jsonl"
    }
}

/// The text signed in `manifest.sig`.
pub fn manifest_note(manifest_sha256: &str) -> String {
    format!("{MANIFEST_NOTE_TITLE}\nsha256 {manifest_sha256}\n")
}

/// One line of `events.jsonl`. `record` (base64 of the canonical bytes) is
/// authoritative; the other fields are copies for readers, and a verifier
/// checks they agree with it. Read as `EventLine` (owned strings); the
/// exporter writes `EventLine<&str>`, borrowing from the record it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLine<S = String> {
    pub position: u64,
    pub project: S,
    pub project_seq: u64,
    #[serde(rename = "type")]
    pub event_type: S,
    pub time: S,
    pub actor: S,
    pub prev_hash: S,
    pub hash: S,
    pub record: S,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub project: String,
    /// The requested time range (RFC 3339; empty: open).
    pub from: String,
    pub to: String,
    pub created_at: String,
    /// The verifier key of the server that signed the checkpoint and the manifest.
    pub public_key: String,
    pub events: EventsSummary,
    pub promotions: PromotionsSummary,
    /// The policies file (format 2; absent in format 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<PoliciesSummary>,
    pub checkpoint: CheckpointSummary,
    pub proof: ProofSummary,
    pub files: Vec<FileEntry>,
}

/// Which records `events.jsonl` holds: the project's records
/// `first_seq..=last_seq`, without a gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSummary {
    pub count: u64,
    /// Positions and project sequence numbers of the first and last record (0 when empty).
    pub first_position: u64,
    pub last_position: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Chain hash before the first record (the previous record's hash, or
    /// 64 zeros when the export starts at the project's first record).
    pub prev_hash: String,
    /// Chain hash of the last record (= `prev_hash` when empty).
    pub head_hash: String,
    /// The project's head when the export was taken: position, sequence, hash.
    pub project_head_position: u64,
    pub project_head_seq: u64,
    pub project_head_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionsSummary {
    pub count: u64,
    pub file: String,
    /// `jsonl` or `csv`.
    pub format: String,
    /// The position of the read model the records were taken from (their
    /// status may reflect events after `events.last_position`).
    pub as_of_position: u64,
}

/// The pipelines applied among the exported records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesSummary {
    pub count: u64,
    pub file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSummary {
    pub origin: String,
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    /// Position of its `CheckpointSigned` event.
    pub position: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofSummary {
    pub kind: String,
    pub nodes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}
