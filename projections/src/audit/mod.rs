//! The transparency side of the read models (DESIGN §2, docs/ledger-format.md §12–§14).
//!
//! - [`store`]: the RFC 6962 Merkle tree of the whole log and the
//!   checkpoints found in it, in sled.
//! - [`runner`]: [`Transparency`], which keeps the tree current and signs
//!   checkpoints into the log.
//! - [`export`]: compliance exports (records, promotions, proof, manifest).
//! - [`service`]: the audit gRPC service.

pub mod export;
pub mod runner;
pub mod service;
pub mod store;

pub use runner::{CheckpointPolicy, Transparency};
pub use service::AuditGrpc;
pub use store::{MerkleStore, StoredCheckpoint};
