//! Naive, recursive RFC 9162 definitions over leaf data, written straight from
//! the RFC with their own split rule, to check the real code against.

use crate::audit::{empty_root, leaf_hash, node_hash, Hash};

/// Largest power of two strictly below `n` (`n >= 2`), by counting.
pub fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// `MTH(D)`.
pub fn mth(leaves: &[Vec<u8>]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => leaf_hash(leaf),
        _ => {
            let k = split(leaves.len());
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// `PATH(m, D)`.
pub fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    let (mut proof, sibling) = if m < k {
        (path(m, &leaves[..k]), mth(&leaves[k..]))
    } else {
        (path(m - k, &leaves[k..]), mth(&leaves[..k]))
    };
    proof.push(sibling);
    proof
}

/// `SUBPROOF(m, D, b)`; `PROOF(m, D) = SUBPROOF(m, D, true)`.
pub fn subproof(m: usize, leaves: &[Vec<u8>], known: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if known { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = split(n);
    let (mut proof, other) = if m <= k {
        (subproof(m, &leaves[..k], known), mth(&leaves[k..]))
    } else {
        (subproof(m - k, &leaves[k..], false), mth(&leaves[..k]))
    };
    proof.push(other);
    proof
}

/// The multi-leaf proof `P(lo, hi)` of the multiproof module docs, over the
/// selection `selected` (sorted), by its definition.
pub fn multi(leaves: &[Vec<u8>], offset: usize, selected: &[u64], out: &mut Vec<Hash>) {
    let end = offset + leaves.len();
    let inside = selected
        .iter()
        .any(|&i| (offset..end).contains(&(i as usize)));
    if !inside {
        out.push(mth(leaves));
    } else if leaves.len() > 1 {
        let k = split(leaves.len());
        multi(&leaves[..k], offset, selected, out);
        multi(&leaves[k..], offset + k, selected, out);
    }
}

/// Distinct leaf data for tests.
pub fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}
