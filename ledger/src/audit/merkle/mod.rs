//! RFC 6962 / RFC 9162 §2.1 Merkle trees.
//!
//! - Hashing: [`leaf_hash`], [`node_hash`], [`empty_root`] and
//!   [`split_point`], the rule that shapes the tree.
//! - [`Nodes`]: where stored perfect subtrees come from; [`subtree_root`],
//!   [`root`], [`inclusion_proof`] and [`consistency_proof`] read them.
//! - [`verify_inclusion`] and [`verify_consistency`]: the client side, from the
//!   RFC's algorithms, failing with a [`ProofError`].
//! - [`Frontier`]: the right edge of a growing tree; appending returns the
//!   nodes to store.
//! - [`MemoryTree`]: every node in memory, for tests and small trees.

mod frontier;
mod hash;
mod memory;
mod tree;
mod verify;

pub use frontier::Frontier;
pub use hash::{empty_root, leaf_hash, node_hash, split_point, Hash};
pub use memory::MemoryTree;
pub use tree::{consistency_proof, inclusion_proof, root, subtree_root, Nodes};
pub use verify::{verify_consistency, verify_inclusion, ProofError};
