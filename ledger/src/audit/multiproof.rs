//! Waybill's multi-leaf inclusion proof: one proof that several leaves are in
//! an RFC 6962 tree, produced and checked in constant memory.
//!
//! # Definition
//!
//! Let `size >= 1` be the tree size, `D[lo:hi)` the leaves `lo..hi`, `MTH` the
//! RFC 6962 tree hash (RFC 9162 §2.1.1) and `k(n)` the largest power of two
//! strictly smaller than `n` ([`split_point`]). The *selection* `S` is a
//! non-empty set of leaf indices, each smaller than `size`, always listed in
//! strictly increasing order.
//!
//! The proof for the range `[lo, hi)` is the sequence of hashes `P(lo, hi)`:
//!
//! 1. if no index of `S` lies in `[lo, hi)`: the single hash `MTH(D[lo:hi))`;
//! 2. otherwise, if `hi - lo = 1`: nothing (the range is a selected leaf, whose
//!    data the verifier has);
//! 3. otherwise `P(lo, lo + k) || P(lo + k, hi)` with `k = k(hi - lo)`.
//!
//! The multi-leaf proof is `P(0, size)`. Its hashes are thus ordered left to
//! right by the leaves they cover. Its length depends on `size` and `S` only.
//! For a single leaf it holds the same hashes as the RFC 9162 §2.1.3.1
//! inclusion proof, in left-to-right rather than bottom-up order; for `S` =
//! every leaf it is empty.
//!
//! The verifier is given `size`, the selected leaves as `(index, leaf_hash)`
//! pairs in increasing index order, and the proof. It computes `R(0, size)`:
//!
//! 1. if no selected index lies in `[lo, hi)`: the next proof hash (failing if
//!    the proof is exhausted);
//! 2. otherwise, if `hi - lo = 1`: the given leaf hash of index `lo`;
//! 3. otherwise `HASH(0x01 || R(lo, lo + k) || R(lo + k, hi))`.
//!
//! It fails if the indices are not strictly increasing, an index is `>= size`,
//! no leaf is given, or proof hashes are left over; otherwise `R(0, size)` is
//! the root the proof leads to, which the caller compares with a trusted root
//! of the same `size` (from the same signed checkpoint). As with RFC 9162
//! proofs, a match means (barring SHA-256 collisions) that each given hash is
//! the tree's leaf at its index: the walk is the same recursion as `MTH`, with
//! every unselected subtree replaced by its claimed hash.
//!
//! # Streaming
//!
//! Both sides read the indices (or leaves) one at a time with one item of
//! look-ahead, emit or read proof hashes in order, and recurse at most once
//! per tree level (at most 64 deep), so memory does not grow with the number of
//! leaves. On error the prover may already have emitted part of a proof; the
//! caller discards it.

use std::convert::Infallible;

use super::merkle::{node_hash, split_point, subtree_root, Hash, Nodes};

/// Why a multi-leaf proof could not be made or checked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultiProofError<E> {
    /// Reading a stored node failed (prover only).
    #[error("reading a tree node failed: {0}")]
    Nodes(E),
    /// The indices are not strictly increasing (a repeat counts).
    #[error("leaf indices must be strictly increasing: {index} follows {previous}")]
    NotIncreasing {
        /// The index before.
        previous: u64,
        /// The offending index.
        index: u64,
    },
    /// An index is not in the tree.
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    OutOfRange {
        /// The offending index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// No leaf was selected (a proof of nothing proves nothing). A tree of size
    /// 0 has no leaves to select, so it always fails, with this or `OutOfRange`.
    #[error("no leaves selected: a multi-leaf proof needs at least one leaf")]
    NoLeaves,
    /// The proof ran out of hashes before the root was reached.
    #[error("the proof has too few hashes for these leaves and tree size")]
    ProofTooShort,
    /// Hashes were left over after the root was reached.
    #[error("the proof has {extra} more hashes than these leaves and tree size need")]
    ProofTooLong {
        /// How many hashes were left over.
        extra: usize,
    },
}

/// Writes the multi-leaf proof of the leaves at `indices` (strictly
/// increasing, each `< size`) in the tree of `size` leaves, one hash at a time
/// through `emit`, left to right. See the [module docs](self) for the
/// definition.
pub fn multi_proof<N: Nodes, I: Iterator<Item = u64>>(
    nodes: &N,
    size: u64,
    indices: I,
    mut emit: impl FnMut(Hash),
) -> Result<(), MultiProofError<N::Error>> {
    let mut selection = Selection::new(indices.map(|index| (index, ())), size);
    if selection.peek()?.is_none() {
        return Err(MultiProofError::NoLeaves);
    }
    prove(nodes, &mut selection, 0, size, &mut emit)?;
    selection.finish()
}

/// Computes the root that a multi-leaf proof leads to, from the selected
/// leaves as `(index, leaf_hash)` in strictly increasing index order and the
/// proof hashes in order. The caller compares it with the trusted root of
/// `size`. Reads (and counts) every remaining proof hash to report
/// [`MultiProofError::ProofTooLong`].
pub fn multi_root<L: Iterator<Item = (u64, Hash)>, P: Iterator<Item = Hash>>(
    size: u64,
    leaves: L,
    mut proof: P,
) -> Result<Hash, MultiProofError<Infallible>> {
    let mut selection = Selection::new(leaves, size);
    if selection.peek()?.is_none() {
        return Err(MultiProofError::NoLeaves);
    }
    let root = rebuild(&mut selection, &mut proof, 0, size)?;
    selection.finish()?;
    match proof.count() {
        0 => Ok(root),
        extra => Err(MultiProofError::ProofTooLong { extra }),
    }
}

fn prove<N: Nodes, I: Iterator<Item = (u64, ())>>(
    nodes: &N,
    selection: &mut Selection<I, ()>,
    lo: u64,
    hi: u64,
    emit: &mut impl FnMut(Hash),
) -> Result<(), MultiProofError<N::Error>> {
    match selection.peek()? {
        Some(index) if index < hi => {
            if hi - lo == 1 {
                selection.take();
            } else {
                let mid = lo + split_point(hi - lo);
                prove(nodes, selection, lo, mid, emit)?;
                prove(nodes, selection, mid, hi, emit)?;
            }
        }
        _ => emit(subtree_root(nodes, lo, hi).map_err(MultiProofError::Nodes)?),
    }
    Ok(())
}

fn rebuild<L: Iterator<Item = (u64, Hash)>, P: Iterator<Item = Hash>>(
    selection: &mut Selection<L, Hash>,
    proof: &mut P,
    lo: u64,
    hi: u64,
) -> Result<Hash, MultiProofError<Infallible>> {
    match selection.peek()? {
        Some(index) if index < hi => {
            if hi - lo == 1 {
                // Every index below `lo` was consumed or rejected as not
                // increasing, so `index == lo`.
                debug_assert_eq!(index, lo);
                let (_, leaf) = selection.take().ok_or(MultiProofError::NoLeaves)?;
                Ok(leaf)
            } else {
                let mid = lo + split_point(hi - lo);
                let left = rebuild(selection, proof, lo, mid)?;
                let right = rebuild(selection, proof, mid, hi)?;
                Ok(node_hash(&left, &right))
            }
        }
        _ => proof.next().ok_or(MultiProofError::ProofTooShort),
    }
}

/// The selected leaves with one item of look-ahead, checked as they are read.
struct Selection<I, T> {
    items: I,
    peeked: Option<(u64, T)>,
    previous: Option<u64>,
    size: u64,
}

impl<I: Iterator<Item = (u64, T)>, T> Selection<I, T> {
    fn new(items: I, size: u64) -> Self {
        Selection {
            items,
            peeked: None,
            previous: None,
            size,
        }
    }

    /// The next selected index, reading and checking it if needed.
    fn peek<E>(&mut self) -> Result<Option<u64>, MultiProofError<E>> {
        if self.peeked.is_none() {
            if let Some((index, item)) = self.items.next() {
                if let Some(previous) = self.previous.filter(|&previous| index <= previous) {
                    return Err(MultiProofError::NotIncreasing { previous, index });
                }
                if index >= self.size {
                    return Err(MultiProofError::OutOfRange {
                        index,
                        size: self.size,
                    });
                }
                self.previous = Some(index);
                self.peeked = Some((index, item));
            }
        }
        Ok(self.peeked.as_ref().map(|(index, _)| *index))
    }

    fn take(&mut self) -> Option<(u64, T)> {
        self.peeked.take()
    }

    /// After the walk: every index below `size` was consumed, so anything
    /// left is out of order or out of range (and `peek` reports which).
    fn finish<E>(&mut self) -> Result<(), MultiProofError<E>> {
        match self.peek()? {
            None => Ok(()),
            Some(index) => Err(MultiProofError::OutOfRange {
                index,
                size: self.size,
            }),
        }
    }
}
