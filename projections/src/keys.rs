//! Key layout of the projection store: one sled tree `views`, so that every
//! batch of views, indexes and the checkpoint is atomic; the snapshots (`n`,
//! `s`) live in the tree `snapshots`, written after the views of their batch.
//!
//! | key                               | value                                   |
//! |-----------------------------------|-----------------------------------------|
//! | `c`                               | last applied position (8, big-endian)   |
//! | `n`                               | position the snapshots reflect          |
//! | `s` project                       | project state snapshot (JSON)           |
//! | `h` pos(8)                        | history item (JSON)                     |
//! | `x` kind value 0x00 pos(8)        | index of history by kind: empty, except  |
//! |                                   | the project index, which holds the item  |
//!
//! Index kinds: `a` actor, `p` project, `s` project/stage, `f` project/freight,
//! `t` event type.

use waybill_ledger::Position;

pub const CHECKPOINT: &[u8] = b"c";
pub const SNAPSHOT_AT: &[u8] = b"n";

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

pub fn history(p: Position) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'h';
    k[1..].copy_from_slice(&pos(p));
    k
}

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
