//! The command service's store of what its cached project states leave out.
//!
//! A cached [`ProjectState`] keeps in memory only its working set (see
//! [`waybill_ledger::domain::working_set`]): the pipeline and stages, the
//! freight the stages run, the active promotions, and the records used most
//! recently. The rest (older freight, finished promotions, aliases and
//! idempotency keys) is moved here by [`ProjectCold::spill`] and loaded back
//! before a command or an event reads it ([`load_for_command`],
//! [`waybill_ledger::domain::working_set::load_for_event`]). So a project's
//! memory does not grow with its history.
//!
//! The store is a cache of the log, never read by anything else: a project's
//! records are cleared whenever its state is folded again from the start.
//! It outlives the process only through a clean shutdown: then
//! [`ColdStore::seal`] writes each cached project's state beside its records
//! (with the chain hash of the last event it applied) and marks the store
//! clean. The next [`ColdStore::open`] keeps a clean store, and unmarks it
//! before anything else is written, so a store a killed process left is
//! wiped. A state dropped from the command service's cache is saved the
//! same way (`ProjectCold::hibernate`), unless its project was folded
//! again meanwhile. A project's state is taken back
//! ([`ProjectCold::take_snapshot`]) only if the log still holds that event
//! with that hash, and then caught up from there instead of folded from the
//! start.
//!
//! - `kv`: the redb table of records;
//! - `store`: the store of every project, its moves and its clean shutdown;
//! - `project`: one project's records, and the moves out of its state;
//! - `load`: what a command reads, loaded back before it is decided.

mod kv;
mod load;
mod project;
mod store;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use waybill_ledger::domain::working_set::{self, Cold};
use waybill_ledger::domain::{
    ambiguous_start, available_to, freight_id, is_id_prefix, is_promotion_id_prefix, CommandKey,
    CommandOutcome, Freight, ProjectState, Promotion, PromotionStatus, StageDef,
};
use waybill_ledger::{ChainHash, Position};

use super::CommandError;
use crate::command::{Command, FreightSelector};
use crate::decide::rollback_warehouse;
use crate::rejection::Rejection;

use kv::{backwards, reopen_clean, store_error, Kv};
pub use load::{load_auto_candidates, load_for_command, whole_freight_id, whole_promotion_id};
pub use project::{ProjectCold, Spill};
use store::Moves;
pub use store::{ColdStore, SaveTicket};

/// Freight, promotions and aliases a project keeps in memory (beyond the
/// freight its stages run and its active promotions) before older ones are
/// moved out: about 0.5 MB per project.
pub const HOT: usize = 256;

/// Freight or finished promotions a move takes out at least: the oldest
/// beyond `HOT - MOVE` (aliases and idempotency keys go all at once). A
/// move runs beside the commands (see `CommandHandler::spill_later`) but
/// takes CPU from them; small, frequent moves lengthen fewer commands than
/// large, rare ones (1-client p99 about 430 µs against 730 when a move took
/// all but the 16 newest freight).
pub const MOVE: usize = 32;

/// Idempotency keys a project keeps in memory before they are moved out.
pub const HOT_COMMANDS: usize = 1024;

/// redb's page cache for the store.
const CACHE_BYTES: usize = 16 << 20;

/// Time between two durable commits: redb keeps what a non-durable commit
/// freed in memory until a durable commit (an fsync) writes it out.
const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The store's one table: byte keys (layout in [`key`]) to byte values.
const RECORDS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("records");

const FREIGHT: u8 = b'f';
const PROMOTION: u8 = b'p';
const ALIAS: u8 = b'a';
const DISCOVERY: u8 = b'd';
const COMMAND: u8 = b'c';
const SUCCEEDED: u8 = b's';
/// A project's state at a clean shutdown (see [`Snapshot`]).
const SNAPSHOT: u8 = b'n';
const KINDS: [u8; 7] = [
    FREIGHT, PROMOTION, ALIAS, DISCOVERY, COMMAND, SUCCEEDED, SNAPSHOT,
];

/// Present only in a store sealed by a clean shutdown, and removed (durably)
/// when the store is opened again.
const CLEAN: &[u8] = b"!clean";

/// The file of the store's database in its directory.
const FILE: &str = "records.redb";

/// A project's cached state as [`ColdStore::seal`] wrote it, and the chain
/// hash of the event at `state.position` (what it was folded up to).
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot<S> {
    /// [`SNAPSHOT_FORMAT`] of the process that wrote it.
    format: String,
    hash: String,
    state: S,
}

/// Which releases read each other's saved states: this crate's version
/// (a state saved by another release is folded again, as a field added
/// with a default would not hold what the events say), and a number to
/// raise when `ProjectState` changes meaning within one.
const SNAPSHOT_FORMAT: &str = concat!(env!("CARGO_PKG_VERSION"), "/4");

/// A key and its value.
type Entry = (Vec<u8>, Vec<u8>);

/// Keys to set (`Some`) or remove (`None`) in one write.
pub type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

impl From<serde_json::Error> for CommandError {
    fn from(e: serde_json::Error) -> Self {
        CommandError::Internal(format!("command state store: {e}"))
    }
}

/// `kind`, the project, a zero byte, then `rest` (names never hold a zero
/// byte, so one project's keys never prefix another's).
fn key(kind: u8, project: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + project.len() + rest.len());
    k.push(kind);
    k.extend_from_slice(project.as_bytes());
    k.push(0);
    k.extend_from_slice(rest);
    k
}

/// A discovery time, ordered as its bytes.
fn time_key(t: DateTime<Utc>) -> [u8; 12] {
    let mut out = [0u8; 12];
    let secs = (t.timestamp() as u64) ^ (1 << 63);
    out[..8].copy_from_slice(&secs.to_be_bytes());
    out[8..].copy_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
    out
}

fn text(v: &[u8]) -> Result<String, CommandError> {
    String::from_utf8(v.to_vec())
        .map_err(|_| CommandError::Internal("command state store: a key is not UTF-8".into()))
}

/// A freight's key suffix under `DISCOVERY`: its discovery time, then id.
fn discovery_key(at: DateTime<Utc>, id: &str) -> Vec<u8> {
    [&time_key(at)[..], id.as_bytes()].concat()
}

#[cfg(test)]
mod tests;
