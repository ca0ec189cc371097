//! Key layout of the projection store: one sled tree `views`, so that every
//! batch of views, indexes and the checkpoint is atomic; the snapshots (`n`,
//! `s`) live in the tree `snapshots`, written after the views of their batch.
//!
//! | key                               | value                                   |
//! |-----------------------------------|-----------------------------------------|
//! | `c`                               | last applied position (8, big-endian)   |
//! | `n`                               | position the snapshots reflect          |
//! | `s` project                       | project state snapshot (JSON)           |
//! | `h` bucket(8)                     | the positions of a bucket of 4,096, and |
//! |                                   | their projects (see `postings`)         |
//! | `x` `p` project 0x00 pos(8)       | latest event time of the project up to  |
//! |                                   | pos and the event's time (8 each:       |
//! |                                   | nanoseconds, sign bit flipped), then    |
//! |                                   | the history entry (protobuf)            |
//! | `x` `a`/`t` value 0x00 bucket(8)  | actor / event type index: positions     |
//! |                                   | and their projects (see `postings`)     |
//! | `x` `s`/`f` value 0x00 bucket(8)  | project/stage, project/freight index:   |
//! |                                   | positions (see `postings`)              |
//! | `g` project 0x00 pos(8)           | stage list in force from pos (protobuf   |
//! |                                   | `ListStagesReply`, stage names only)     |
//! | `w` project 0x00 stage 0x00 pos(8)| the stage as `ListStages` showed it from |
//! |                                   | pos (protobuf `Stage`)                   |
//! | `V`                               | store format version (8, big-endian)     |
//!
//! Index kinds: `a` actor, `p` project, `s` project/stage, `f` project/freight,
//! `t` event type.

use waybill_ledger::Position;

pub const CHECKPOINT: &[u8] = b"c";
pub const SNAPSHOT_AT: &[u8] = b"n";
pub const FORMAT: &[u8] = b"V";

/// The layout written by this version; a store written by an older one is
/// rebuilt from the log.
pub const FORMAT_VERSION: u64 = 5;

pub fn pos(p: Position) -> [u8; 8] {
    p.0.to_be_bytes()
}

pub fn decode_pos(v: &[u8]) -> Option<Position> {
    Some(Position(u64::from_be_bytes(v.get(..8)?.try_into().ok()?)))
}

pub fn snapshot(project: &str) -> Vec<u8> {
    let mut k = vec![b's'];
    k.extend_from_slice(project.as_bytes());
    k
}

/// Prefix of the posting lists of the whole log.
pub const HISTORY: &[u8] = b"h";

/// Index kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Actor,
    Project,
    Stage,
    Freight,
    Type,
}

impl Index {
    fn byte(self) -> u8 {
        match self {
            Index::Actor => b'a',
            Index::Project => b'p',
            Index::Stage => b's',
            Index::Freight => b'f',
            Index::Type => b't',
        }
    }
}

/// The prefix of index `kind` for `value` (ends with the 0x00 separator).
pub fn index_prefix(kind: Index, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(value.len() + 3);
    k.push(b'x');
    k.push(kind.byte());
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k
}

pub fn index(kind: Index, value: &str, p: Position) -> Vec<u8> {
    let mut k = index_prefix(kind, value);
    k.extend_from_slice(&pos(p));
    k
}

/// The position at the end of an index key.
pub fn index_pos(key: &[u8]) -> Option<Position> {
    decode_pos(key.get(key.len().checked_sub(8)?..)?)
}

fn scoped(tag: u8, project: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(project.len() + 26);
    k.push(tag);
    k.extend_from_slice(project.as_bytes());
    k.push(0);
    k
}

/// A time as 8 bytes that sort in time order (nanoseconds since the epoch,
/// sign bit flipped; clamped to what 64 bits hold).
pub fn time(t: chrono::DateTime<chrono::Utc>) -> [u8; 8] {
    let nanos = t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    });
    ((nanos as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn layout_prefix(project: &str) -> Vec<u8> {
    scoped(b'g', project)
}

/// The stage list in force from `p`.
pub fn layout(project: &str, p: Position) -> Vec<u8> {
    let mut k = layout_prefix(project);
    k.extend_from_slice(&pos(p));
    k
}

pub fn stage_version_prefix(project: &str, stage: &str) -> Vec<u8> {
    let mut k = scoped(b'w', project);
    k.extend_from_slice(stage.as_bytes());
    k.push(0);
    k
}

/// A stage's view from `p`.
pub fn stage_version(project: &str, stage: &str, p: Position) -> Vec<u8> {
    let mut k = stage_version_prefix(project, stage);
    k.extend_from_slice(&pos(p));
    k
}
