//! The per-project hash chain (docs/ledger-format.md).
//!
//! `hash(n) = SHA-256(hash(n-1) ‖ bytes(n))`, where `bytes(n)` are the stored
//! bytes of the n-th record of the project, exactly as appended, and `hash(0)`
//! is 32 zero bytes. Every record also carries `prev_hash` and its 1-based
//! `project_seq`, so a deletion, insertion or re-publication breaks the chain at
//! the first record after it.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::log::Position;

/// A SHA-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The hash before the first event of a project.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// `SHA-256(self ‖ bytes)`: the hash of the record stored as `bytes` after `self`.
    pub fn next(&self, bytes: &[u8]) -> ChainHash {
        let mut hasher = Sha256::new();
        hasher.update(self.0);
        hasher.update(bytes);
        ChainHash(hasher.finalize().into())
    }

    /// Parses 32 raw bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<ChainHash> {
        <[u8; 32]>::try_from(bytes).ok().map(ChainHash)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<ChainHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(ChainHash(bytes))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The tip of a project's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// Global position of the project's last event (0: none yet).
    pub position: Position,
    /// Chain hash of that event (genesis when none).
    pub hash: ChainHash,
    /// Number of events in the project.
    pub seq: u64,
}

impl ChainHead {
    /// The head of a project with no events.
    pub const EMPTY: ChainHead = ChainHead {
        position: Position::ZERO,
        hash: ChainHash::GENESIS,
        seq: 0,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_sha256_of_prev_and_bytes() {
        // SHA-256 of 32 zero bytes followed by "abc", computed independently.
        let h = ChainHash::GENESIS.next(b"abc");
        let mut hasher = Sha256::new();
        hasher.update([0u8; 32]);
        hasher.update(b"abc");
        assert_eq!(h.0, <[u8; 32]>::from(hasher.finalize()));
        assert_ne!(h, ChainHash::GENESIS.next(b"abd"));
        assert_eq!(ChainHash::from_hex(&h.to_hex()), Some(h));
    }
}
