//! Proof verification, as RFC 9162 §2.1.3.2 and §2.1.4.2 spell it out.
//!
//! The verifiers are written from the RFC's bit-level algorithms, not from the
//! recursive definitions the provers in [`tree`](super::tree) use, so the two
//! sides check each other in the tests.
//!
//! A proof checks a *triple*: the tree size is bound only through the root.
//! Callers must take the size and the root from the same signed checkpoint.

use super::hash::{node_hash, split_point, Hash};

/// Why a proof was rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not in the tree.
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange {
        /// The leaf index asked about.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// No consistency proof exists between these sizes (this module requires
    /// `0 < old <= new`).
    #[error("no consistency proof from tree size {old} to tree size {new}: need 0 < old <= new")]
    InvalidSizes {
        /// The older tree size.
        old: u64,
        /// The newer tree size.
        new: u64,
    },
    /// The proof does not have the number of hashes these sizes call for.
    #[error("proof has {got} hashes, a proof for these sizes has {expected}")]
    WrongLength {
        /// How many hashes the proof must have.
        expected: usize,
        /// How many it has.
        got: usize,
    },
    /// The proof leads to another root than the given (newer) root.
    #[error("proof leads to root {computed}, not the expected root {expected}")]
    RootMismatch {
        /// The given root, hex.
        expected: String,
        /// The root the proof leads to, hex.
        computed: String,
    },
    /// A consistency proof leads to another old root than the given one.
    #[error("proof leads to old root {computed}, not the expected old root {expected}")]
    OldRootMismatch {
        /// The given old root, hex.
        expected: String,
        /// The old root the proof leads to, hex.
        computed: String,
    },
    /// Two roots given for the same tree size differ: one of them is not the
    /// log's, or the log forked.
    #[error("tree size {size} has two different roots: {old_root} and {new_root}")]
    EqualSizesDifferentRoots {
        /// The tree size of both roots.
        size: u64,
        /// The given old root, hex.
        old_root: String,
        /// The given new root, hex.
        new_root: String,
    },
}

/// Verifies that `leaf` (a [`leaf_hash`](super::leaf_hash)) is leaf `index` of
/// the tree of `size` leaves with root `root`, given its RFC 9162 §2.1.3.1
/// inclusion proof.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_len(index, size);
    let wrong_length = ProofError::WrongLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    // RFC 9162 §2.1.3.2, steps 2 to 5.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(wrong_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_length);
    }
    check_root(&r, root, false)
}

/// Verifies that the tree of `new` leaves with root `new_root` extends the
/// tree of `old` leaves with root `old_root`, given the RFC 9162 §2.1.4.1
/// consistency proof.
///
/// Sizes must satisfy `0 < old <= new`. `old == new` needs an empty proof and
/// equal roots. `old == 0` is rejected ([`ProofError::InvalidSizes`], as RFC
/// 9162 defines proofs for `0 < m` only): every tree extends the empty tree,
/// so a verifier holding a size-0 checkpoint needs no proof at all.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::InvalidSizes { old, new });
    }
    let expected = consistency_len(old, new);
    let wrong_length = ProofError::WrongLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    if old == new {
        if old_root != new_root {
            return Err(ProofError::EqualSizesDifferentRoots {
                size: old,
                old_root: hex::encode(old_root),
                new_root: hex::encode(new_root),
            });
        }
        return Ok(());
    }
    // RFC 9162 §2.1.4.2: a power-of-two old tree is itself a node of the new
    // tree, so its root is prepended to the path.
    let (first, rest) = if old.is_power_of_two() {
        (old_root, proof)
    } else {
        proof.split_first().ok_or(wrong_length.clone())?
    };
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return Err(wrong_length);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_length);
    }
    check_root(&fr, old_root, true)?;
    check_root(&sr, new_root, false)
}

fn check_root(computed: &Hash, expected: &Hash, old: bool) -> Result<(), ProofError> {
    if computed == expected {
        return Ok(());
    }
    let (expected, computed) = (hex::encode(expected), hex::encode(computed));
    Err(if old {
        ProofError::OldRootMismatch { expected, computed }
    } else {
        ProofError::RootMismatch { expected, computed }
    })
}

/// Length of the inclusion proof of `index < size`: one hash per split on the
/// way down from the root.
fn inclusion_len(index: u64, size: u64) -> usize {
    let (mut lo, mut hi, mut len) = (0, size, 0);
    while hi - lo > 1 {
        let mid = lo + split_point(hi - lo);
        if index < mid {
            hi = mid;
        } else {
            lo = mid;
        }
        len += 1;
    }
    len
}

/// Length of the consistency proof for `0 < old <= new`: one hash per split
/// until the old tree is a whole subtree, plus that subtree's root unless it
/// is the old root itself.
fn consistency_len(old: u64, new: u64) -> usize {
    let (mut lo, mut hi, mut len, mut known) = (0, new, 0, true);
    while old != hi {
        let mid = lo + split_point(hi - lo);
        if old <= mid {
            hi = mid;
        } else {
            lo = mid;
            known = false;
        }
        len += 1;
    }
    len + usize::from(!known)
}
