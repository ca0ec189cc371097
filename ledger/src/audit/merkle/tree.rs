//! Roots and proofs computed from stored perfect subtrees ([`Nodes`]).
//!
//! Every function here follows RFC 9162 §2.1 literally: the tree over leaves
//! `D[lo:hi)` splits at `lo + split_point(hi - lo)`. Any range reached from the
//! root that way is either a perfect, aligned subtree (one [`Nodes::node`]
//! lookup) or a range along the right edge of the tree, which is split again, so
//! computing one subtree root costs at most one lookup per level.

use super::hash::{empty_root, node_hash, perfect_level, split_point, Hash};

/// A source of perfect, aligned subtree hashes.
///
/// `(level, index)` covers leaves `[index << level, (index + 1) << level)`;
/// level 0 holds the leaf hashes ([`leaf_hash`](super::leaf_hash) of the data).
pub trait Nodes {
    /// Why a node could not be read.
    type Error;

    /// The hash of the perfect subtree at `(level, index)`.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// `MTH(D[lo:hi))`: the RFC 6962 root of the leaves `lo..hi`.
///
/// A perfect aligned range is one [`Nodes::node`] lookup; any other range is
/// split at `lo + split_point(hi - lo)`. Ranges produced by the decomposition
/// from the root are always aligned; an unaligned `lo` still gives the right
/// hash, only with more lookups. `hi <= lo` gives [`empty_root`].
pub fn subtree_root<N: Nodes>(nodes: &N, lo: u64, hi: u64) -> Result<Hash, N::Error> {
    if hi <= lo {
        return Ok(empty_root());
    }
    if let Some(level) = perfect_level(lo, hi) {
        return nodes.node(level, lo >> level);
    }
    // Not perfect, so hi - lo >= 3 and the split is strictly inside the range.
    let mid = lo + split_point(hi - lo);
    let left = subtree_root(nodes, lo, mid)?;
    let right = subtree_root(nodes, mid, hi)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree of the first `size` leaves ([`empty_root`] for 0).
pub fn root<N: Nodes>(nodes: &N, size: u64) -> Result<Hash, N::Error> {
    subtree_root(nodes, 0, size)
}

/// The RFC 9162 §2.1.3.1 inclusion proof (`PATH`) of leaf `index` in the tree
/// of `size` leaves, ordered from the leaf's sibling up to the root's child.
///
/// The caller guarantees `index < size`; otherwise the proof is empty (and
/// [`verify_inclusion`](super::verify_inclusion) rejects such an index anyway).
pub fn inclusion_proof<N: Nodes>(nodes: &N, index: u64, size: u64) -> Result<Vec<Hash>, N::Error> {
    let mut proof = Vec::new();
    if index >= size {
        return Ok(proof);
    }
    // Walk down from the root; the siblings come out root first.
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            proof.push(subtree_root(nodes, mid, hi)?);
            hi = mid;
        } else {
            proof.push(subtree_root(nodes, lo, mid)?);
            lo = mid;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// The RFC 9162 §2.1.4.1 consistency proof (`PROOF(m, D[n])`) between the trees
/// of `old` and `new` leaves, for `0 < old <= new`.
///
/// Empty when `old == new`, and also (meaninglessly) when `old == 0` or
/// `old > new`, which [`verify_consistency`](super::verify_consistency) rejects.
pub fn consistency_proof<N: Nodes>(nodes: &N, old: u64, new: u64) -> Result<Vec<Hash>, N::Error> {
    let mut proof = Vec::new();
    if old == 0 || old >= new {
        return Ok(proof);
    }
    // SUBPROOF(m, D[lo:hi), b) unrolled: `tail` collects the hashes appended
    // after the recursive call, outermost first; `known` is RFC's `b`.
    let (mut lo, mut hi, mut known) = (0, new, true);
    let mut tail = Vec::new();
    while old != hi {
        let mid = lo + split_point(hi - lo);
        if old <= mid {
            tail.push(subtree_root(nodes, mid, hi)?);
            hi = mid;
        } else {
            tail.push(subtree_root(nodes, lo, mid)?);
            lo = mid;
            known = false;
        }
    }
    if !known {
        proof.push(subtree_root(nodes, lo, hi)?);
    }
    proof.extend(tail.into_iter().rev());
    Ok(proof)
}
