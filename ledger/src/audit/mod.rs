//! Audit primitives: Merkle trees over the log, and signed checkpoints of them.
//! Everything here is pure (no I/O); storage and transport live elsewhere.
//!
//! - [`merkle`]: RFC 6962 / RFC 9162 trees: hashing, roots and inclusion and
//!   consistency proofs over stored subtrees ([`Nodes`]), their verification,
//!   the incremental [`Frontier`] and an in-memory [`MemoryTree`].
//! - [`multiproof`]: Waybill's multi-leaf inclusion proof, streamed in
//!   constant memory; its module docs are its specification.
//! - [`keys`]: Ed25519 signer and verifier keys in the C2SP signed-note (Go
//!   `sumdb/note`) text formats.
//! - [`note`]: signed notes: parsing, signature checks, [`NoteError`].
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies, signed as notes.

pub mod checkpoint;
pub mod keys;
pub mod merkle;
pub mod multiproof;
pub mod note;
#[cfg(test)]
mod tests;

pub use checkpoint::Checkpoint;
pub use keys::{SignerKey, VerifierKey};
pub use merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root, split_point,
    subtree_root, verify_consistency, verify_inclusion, Frontier, Hash, MemoryTree, Nodes,
    ProofError,
};
pub use multiproof::{multi_proof, multi_root, MultiProofError};
pub use note::{NoteError, NoteSignature, SignedNote};
