//! Key layout of the embedded store: one sled tree, so that every append is
//! one atomic batch (docs/ledger-format.md, "Embedded backend").
//!
//! | key                              | value                              |
//! |----------------------------------|------------------------------------|
//! | `e` pos(8)                       | hash(32) ‖ record bytes            |
//! | `e` pos(8), a foreign message    | 0xff(32) ‖ subject length(2) ‖ subject ‖ its bytes |
//! | `i` project 0x00 pos(8)          | empty (per-project index)          |
//! | `p` project                      | pos(8) ‖ hash(32) ‖ seq(8) (head)  |
//! | `d` command id                   | pos(8) (idempotency)               |
//! | `h`                              | pos(8) (global head)               |
//!
//! Integers are big-endian so that keys sort in position order.

use crate::chain::{ChainHash, ChainHead};
use crate::log::Position;

pub(crate) const HEAD: &[u8] = b"h";

/// What an `e` value starts with in place of a hash when it holds a message
/// Waybill did not write, copied from a JetStream log (no SHA-256 is this).
pub(crate) const FOREIGN: [u8; 32] = [0xff; 32];

/// The `e` value of a foreign message.
pub(crate) fn encode_foreign(subject: &str, bytes: &[u8]) -> Vec<u8> {
    let subject = &subject.as_bytes()[..subject.len().min(u16::MAX as usize)];
    let mut value = Vec::with_capacity(34 + subject.len() + bytes.len());
    value.extend_from_slice(&FOREIGN);
    value.extend_from_slice(&(subject.len() as u16).to_be_bytes());
    value.extend_from_slice(subject);
    value.extend_from_slice(bytes);
    value
}

/// The subject and bytes of a foreign message's `e` value (`None`: not one).
pub(crate) fn decode_foreign(value: &[u8]) -> Option<(String, &[u8])> {
    let rest = value.strip_prefix(&FOREIGN[..])?;
    let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let subject = rest.get(2..2 + len)?;
    Some((
        String::from_utf8_lossy(subject).into_owned(),
        &rest[2 + len..],
    ))
}

pub(crate) fn event(pos: Position) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = b'e';
    key[1..].copy_from_slice(&pos.0.to_be_bytes());
    key
}

pub(crate) fn event_pos(key: &[u8]) -> Option<Position> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(Position(u64::from_be_bytes(bytes)))
}

pub(crate) fn index_prefix(project: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(project.len() + 2);
    key.push(b'i');
    key.extend_from_slice(project.as_bytes());
    key.push(0);
    key
}

pub(crate) fn index(project: &str, pos: Position) -> Vec<u8> {
    let mut key = index_prefix(project);
    key.extend_from_slice(&pos.0.to_be_bytes());
    key
}

pub(crate) fn index_pos(key: &[u8]) -> Option<Position> {
    let bytes: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(Position(u64::from_be_bytes(bytes)))
}

pub(crate) fn project(project: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(project.len() + 1);
    key.push(b'p');
    key.extend_from_slice(project.as_bytes());
    key
}

pub(crate) fn dedup(command_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(command_id.len() + 1);
    key.push(b'd');
    key.extend_from_slice(command_id.as_bytes());
    key
}

pub(crate) fn encode_pos(pos: Position) -> [u8; 8] {
    pos.0.to_be_bytes()
}

pub(crate) fn decode_pos(value: &[u8]) -> Option<Position> {
    Some(Position(u64::from_be_bytes(
        value.get(..8)?.try_into().ok()?,
    )))
}

pub(crate) fn encode_head(head: &ChainHead) -> [u8; 48] {
    let mut value = [0u8; 48];
    value[..8].copy_from_slice(&head.position.0.to_be_bytes());
    value[8..40].copy_from_slice(&head.hash.0);
    value[40..].copy_from_slice(&head.seq.to_be_bytes());
    value
}

pub(crate) fn decode_head(value: &[u8]) -> Option<ChainHead> {
    if value.len() != 48 {
        return None;
    }
    Some(ChainHead {
        position: decode_pos(&value[..8])?,
        hash: ChainHash::from_slice(&value[8..40])?,
        seq: u64::from_be_bytes(value[40..].try_into().ok()?),
    })
}
