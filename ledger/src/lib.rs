//! Waybill's ledger: the immutable, hash-chained event log everything else is
//! built on (DESIGN §2).
//!
//! - [`event`]: the domain events (payloads, types, schema versions), their
//!   protobuf codec and the upcasting hook.
//! - [`envelope`]: what surrounds every event (id, time, actor, command and
//!   correlation ids) and what the log hands back ([`StoredEvent`]).
//! - [`chain`]: the per-project SHA-256 hash chain.
//! - [`log`]: the [`EventLog`] trait, one interface for both backends.
//! - [`jetstream`]: the NATS JetStream backend (production).
//! - [`embedded`]: the sled backend (the default on a single machine).
//! - [`verify`]: walking the log and reporting the first broken link.
//! - [`domain`]: pipeline definitions, project state and `evolve`, the
//!   availability predicate, freight ids.
//! - [`name`]: validated project, stage, warehouse and check names.
//! - [`audit`]: RFC 6962 Merkle trees, multi-leaf proofs and C2SP signed
//!   checkpoints (pure, no I/O).
//! - `testing` (feature `test-harness`): spawns real nats-server processes.

pub mod audit;
pub mod chain;
pub mod domain;
pub mod embedded;
pub mod envelope;
pub mod error;
pub mod event;
pub mod jetstream;
pub mod log;
pub mod name;
#[cfg(feature = "test-harness")]
pub mod testing;
pub mod verify;

pub use chain::{ChainHash, ChainHead};
pub use embedded::SledLog;
pub use envelope::{Actor, Appended, Event, ForeignRecord, NewEvent, StoredEvent};
pub use error::LedgerError;
pub use event::{EventPayload, EventType};
pub use jetstream::{JetStreamLog, JetStreamOptions};
pub use log::{EventLog, EventStream, Position};
pub use name::{Name, ProjectName};
pub use verify::{verify_log, ChainBreak, ChainVerifier, VerifyReport};
