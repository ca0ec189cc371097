//! The right edge of a growing tree: enough to append leaves and compute the
//! root without reading anything back.

use super::hash::{empty_root, node_hash, Hash};
use super::tree::Nodes;

/// Incremental builder: the right edge ("frontier") of a growing tree.
///
/// A tree of `size` leaves is, left to right, one perfect subtree per set bit
/// of `size`, largest first. The frontier holds the roots of those subtrees
/// (at most 64), so appending a leaf and computing the root need no storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees along the right edge, largest (leftmost)
    /// first; entry `i` is at the level of the `i`-th highest set bit of `size`.
    edge: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf (already hashed with [`leaf_hash`](super::leaf_hash)) and
    /// returns every perfect node it completes, as `(level, index, hash)`,
    /// starting with `(0, old_size, leaf)` and going up. The caller stores them
    /// so that they can serve [`Nodes`].
    ///
    /// A tree never reaches 2^64 leaves; appending to one that has
    /// `u64::MAX` leaves overflows the size.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let old = self.size;
        let mut completed = vec![(0, old, leaf)];
        let mut hash = leaf;
        let mut level = 0u8;
        // Each trailing one bit of the old size is a perfect subtree of the same
        // level as the one just completed, immediately to its left: merge them.
        while (old >> level) & 1 == 1 {
            let Some(left) = self.edge.pop() else {
                // The edge holds one entry per set bit of the size, so there is
                // a left sibling for every trailing one bit.
                unreachable!("frontier edge shorter than the popcount of its size");
            };
            hash = node_hash(&left, &hash);
            level += 1;
            completed.push((level, old >> level, hash));
        }
        self.edge.push(hash);
        self.size = old + 1;
        completed
    }

    /// The root of the tree as it is now ([`empty_root`] when empty).
    pub fn root(&self) -> Hash {
        let mut hashes = self.edge.iter().rev();
        let Some(last) = hashes.next() else {
            return empty_root();
        };
        // RFC 6962: MTH = node(perfect left subtree, MTH(rest)), so fold from
        // the smallest subtree on the right towards the largest on the left.
        hashes.fold(*last, |right, left| node_hash(left, &right))
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes: one
    /// lookup per set bit of `size`.
    pub fn load<N: Nodes>(nodes: &N, size: u64) -> Result<Frontier, N::Error> {
        let mut edge = Vec::with_capacity(size.count_ones() as usize);
        let mut lo = 0u64;
        for level in (0..64u8).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                edge.push(nodes.node(level, lo >> level)?);
                lo += width;
            }
        }
        Ok(Frontier { size, edge })
    }
}
