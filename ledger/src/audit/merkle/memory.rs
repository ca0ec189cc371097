//! An in-memory tree holding every perfect node: for tests and small trees.

use std::convert::Infallible;

use super::frontier::Frontier;
use super::hash::{leaf_hash, Hash};
use super::tree::Nodes;

/// An in-memory tree holding every perfect node, implementing [`Nodes`].
///
/// It serves the root and proofs of every size up to its own. It never fails
/// (`Error = Infallible`) and panics instead when asked for a node it does not
/// hold, which only a size larger than [`MemoryTree::size`] can cause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryTree {
    /// `levels[l][i]` is the node `(l, i)`.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// The tree of these leaves (raw data, hashed with [`leaf_hash`]).
    pub fn from_leaves(leaves: &[Vec<u8>]) -> MemoryTree {
        let mut tree = MemoryTree::new();
        for leaf in leaves {
            tree.push_leaf(leaf);
        }
        tree
    }

    /// Appends a leaf's data.
    pub fn push_leaf(&mut self, data: &[u8]) {
        self.push_hash(leaf_hash(data));
    }

    /// Appends a leaf already hashed with [`leaf_hash`].
    pub fn push_hash(&mut self, leaf: Hash) {
        for (level, _index, hash) in self.frontier.push(leaf) {
            let level = usize::from(level);
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            // Nodes complete left to right, so `_index` is the level's length.
            self.levels[level].push(hash);
        }
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The frontier of the whole tree.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }
}

impl Nodes for MemoryTree {
    type Error = Infallible;

    /// # Panics
    ///
    /// If the node is not complete in this tree.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Infallible> {
        let found = self
            .levels
            .get(usize::from(level))
            .and_then(|nodes| nodes.get(usize::try_from(index).ok()?));
        match found {
            Some(hash) => Ok(*hash),
            None => panic!(
                "MemoryTree of {} leaves has no node at level {level}, index {index}",
                self.size()
            ),
        }
    }
}
