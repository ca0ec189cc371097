//! The envelope around every event: identity, time, actor, command and
//! correlation ids, and the chain link.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chain::ChainHash;
use crate::event::EventPayload;
use crate::log::Position;

/// The authenticated principal behind an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Who: a user, a token name or a service principal (`svc:auto-promoter`).
    pub principal: String,
    /// How they authenticated: `token`, `jwt`, `service`, `anonymous`, ...
    pub auth_method: String,
}

impl Actor {
    /// A service principal acting on its own (reactors, checkpointer).
    pub fn service(name: &str) -> Actor {
        Actor {
            principal: format!("svc:{name}"),
            auth_method: "service".to_string(),
        }
    }
}

/// What a caller asks the log to append; the log fills in id, time and chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub payload: EventPayload,
    pub actor: Actor,
    /// Idempotency key: the same command id is never appended twice.
    pub command_id: String,
    /// CloudEvents `subject`: what the event is about.
    pub subject: String,
    /// CloudEvents `source`.
    pub source: String,
    pub correlation_id: String,
    pub causation_id: String,
    /// When the decision was made (CloudEvents `time`); the log's clock when `None`.
    pub time: Option<DateTime<Utc>>,
}

impl NewEvent {
    /// An event with empty subject, source and correlation.
    pub fn new(payload: EventPayload, actor: Actor, command_id: impl Into<String>) -> NewEvent {
        NewEvent {
            payload,
            actor,
            command_id: command_id.into(),
            subject: String::new(),
            source: "waybill".to_string(),
            correlation_id: String::new(),
            causation_id: String::new(),
            time: None,
        }
    }
}

/// A decoded event as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// CloudEvents `id` (UUIDv7).
    pub id: Uuid,
    pub project: String,
    /// 1-based index in the project's chain.
    pub project_seq: u64,
    pub prev_hash: ChainHash,
    pub time: DateTime<Utc>,
    pub source: String,
    pub subject: String,
    pub actor: Actor,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: String,
    /// Schema version the payload was written with (before upcasting).
    pub schema_version: u32,
    pub payload: EventPayload,
}

/// An event read back from the log, with its position and the exact bytes stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Global position (the JetStream stream sequence).
    pub position: Position,
    /// `SHA-256(prev_hash ‖ bytes)`, computed from what is stored.
    pub hash: ChainHash,
    /// The hash the backend stored beside the record, if any (a NATS header).
    pub stored_hash: Option<ChainHash>,
    /// The canonical bytes.
    pub bytes: Bytes,
    pub event: Event,
}

/// A message on the log that Waybill did not write: published to the
/// stream's subjects by something else (a stray `nats pub`, a script),
/// without the chain hash header a Waybill record carries, or with one its
/// bytes do not match. It is no event and extends no chain: readers skip it
/// (the Merkle tree, which covers every message of the stream, takes it as
/// a leaf) and `waybill verify` reports it. Only a JetStream log can hold
/// one; a message written by a newer Waybill is not foreign (its hash
/// checks out) and stops a reader that cannot decode it.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignRecord {
    /// Global position (the JetStream stream sequence).
    pub position: Position,
    /// The subject it was published to.
    pub subject: String,
    /// The message's bytes, as stored.
    pub bytes: Bytes,
    /// Why it is not a Waybill record.
    pub reason: String,
}

/// The outcome of a successful append.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub position: Position,
    pub id: Uuid,
    pub hash: ChainHash,
    pub project_seq: u64,
    /// The event as recorded (so the caller can apply it without reading it back).
    pub event: Event,
}

impl Appended {
    /// The appended event as it would be read back (without its bytes).
    pub fn to_stored(&self) -> StoredEvent {
        StoredEvent {
            position: self.position,
            hash: self.hash,
            stored_hash: Some(self.hash),
            bytes: Bytes::new(),
            event: self.event.clone(),
        }
    }
}
