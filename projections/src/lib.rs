//! Waybill's read side: projections of the log into sled read models.
//!
//! - [`runner`]: [`Projections`], which tails the log, applies each event to
//!   the project states (the same `evolve` as the command side) and writes
//!   history, indexes and the checkpoint in one atomic batch; queries read
//!   the current states and wait for a `min_position`.
//! - [`models`]: the read models of freight, promotions, stages and
//!   pipelines in sled, and the working set each project keeps in memory.
//! - [`store`]: the sled store: read models, history, indexes, checkpoint.
//! - [`history`]: one item per event: who, when, what, why, policy version,
//!   position and hash.
//! - [`keys`]: the key layout.
//! - [`known`]: which freight the read models may hold (a Bloom filter), so
//!   that a discovery seldom asks sled.
//! - [`timeline`]: every version of every stage view, for `StateAt`.
//! - [`origin`]: whether a store was built from the log it is opened with.
//! - [`service`]: the query gRPC service (`min_position` read-your-writes).
//! - [`audit`]: the Merkle tree of the log, signed checkpoints, proofs,
//!   compliance exports and the audit gRPC service.

pub mod audit;
pub mod error;
pub mod history;
pub mod keys;
pub mod known;
pub mod lookup;
pub mod models;
pub mod origin;
pub mod postings;
pub mod runner;
pub mod service;
pub mod store;
pub mod timeline;

pub use error::ProjectionError;
pub use history::HistoryItem;
pub use runner::{Projections, SharedState};
pub use store::{HistoryFilter, ProjectionStore};
