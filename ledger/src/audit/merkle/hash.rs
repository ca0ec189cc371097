//! RFC 6962 hashing (RFC 9162 §2.1.1): domain-separated SHA-256 for leaves and
//! interior nodes, and the split rule that gives the tree its shape.

use sha2::{Digest, Sha256};

/// A SHA-256 Merkle tree hash.
pub type Hash = [u8; 32];

/// The hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Largest power of two strictly smaller than `n`, for `n >= 2`: where RFC 6962
/// splits a list of `n` leaves into a perfect left subtree and the rest.
///
/// Returns 0 for `n < 2`, which has no split.
pub fn split_point(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    // n - 1 >= 1, so its highest set bit exists; 1 << that bit is the largest
    // power of two <= n - 1, i.e. strictly smaller than n.
    1 << (63 - (n - 1).leading_zeros())
}

/// Whether `[lo, hi)` is a perfect, aligned subtree (width a power of two and
/// `lo` a multiple of it); returns its level if so.
pub(crate) fn perfect_level(lo: u64, hi: u64) -> Option<u8> {
    let width = hi.checked_sub(lo)?;
    if width.is_power_of_two() && lo.is_multiple_of(width) {
        // trailing_zeros of a u64 is at most 64, which fits in a u8.
        Some(width.trailing_zeros() as u8)
    } else {
        None
    }
}
