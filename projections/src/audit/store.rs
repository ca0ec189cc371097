//! The Merkle tree of the whole log and the checkpoints, in their own sled tree.
//!
//! Nodes are stored by level in chunks of [`CHUNK`] hashes: key `n` level(1)
//! chunk(8, big-endian) holds the perfect subtree hashes
//! `[chunk * CHUNK, (chunk + 1) * CHUNK)` of that level, concatenated (the
//! last chunk of a level may be partial). `size` holds the number of leaves
//! applied, written in the same batch as the nodes. `c` size(8) holds a
//! checkpoint seen in the log (JSON). About 64 bytes per leaf in all.

use serde::{Deserialize, Serialize};
use waybill_ledger::audit::{Frontier, Hash, Nodes};

use crate::error::ProjectionError;

/// Hashes per stored chunk.
pub const CHUNK: u64 = 256;
const SIZE: &[u8] = b"size";

/// A checkpoint found in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCheckpoint {
    pub size: u64,
    /// Root hash, hex.
    pub root: String,
    pub origin: String,
    /// The signed note, exactly as appended.
    pub note: String,
    /// Position of its `CheckpointSigned` event.
    pub position: u64,
}

/// Read access to the stored tree. Cheap to clone.
#[derive(Clone)]
pub struct MerkleStore {
    tree: sled::Tree,
}

impl std::fmt::Debug for MerkleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MerkleStore")
    }
}

fn node_key(level: u8, chunk: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = b'n';
    k[1] = level;
    k[2..].copy_from_slice(&chunk.to_be_bytes());
    k
}

fn checkpoint_key(size: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'c';
    k[1..].copy_from_slice(&size.to_be_bytes());
    k
}

impl MerkleStore {
    /// Opens the `merkle` tree of `db`. Blocking.
    pub fn open(db: &sled::Db) -> Result<MerkleStore, ProjectionError> {
        Ok(MerkleStore {
            tree: db.open_tree("merkle")?,
        })
    }

    /// Leaves applied (= the last position applied).
    pub fn size(&self) -> Result<u64, ProjectionError> {
        match self.tree.get(SIZE)? {
            None => Ok(0),
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| ProjectionError::Corrupt("merkle size".into())),
        }
    }

    /// The checkpoint signed at exactly `size`.
    pub fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, ProjectionError> {
        self.tree
            .get(checkpoint_key(size))?
            .map(|v| serde_json::from_slice(&v).map_err(ProjectionError::from))
            .transpose()
    }

    /// The checkpoint of the largest tree.
    pub fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, ProjectionError> {
        let last = self.tree.scan_prefix(b"c").next_back().transpose()?;
        last.map(|(_, v)| serde_json::from_slice(&v).map_err(ProjectionError::from))
            .transpose()
    }

    /// The frontier of the stored tree, to continue appending.
    pub fn frontier(&self) -> Result<Frontier, ProjectionError> {
        Frontier::load(self, self.size()?)
    }

    /// The last (possibly partial) chunk of every level of a tree of `size` leaves.
    fn open_chunks(&self, size: u64) -> Result<Vec<Vec<u8>>, ProjectionError> {
        let mut open = Vec::new();
        for level in 0..64u8 {
            let count = size >> level;
            if count == 0 && level > 0 {
                break;
            }
            let filled = (count % CHUNK) as usize;
            let mut chunk = Vec::with_capacity(CHUNK as usize * 32);
            if filled > 0 {
                let stored = self.tree.get(node_key(level, count / CHUNK))?;
                let stored = stored.ok_or_else(|| {
                    ProjectionError::Corrupt(format!("merkle level {level}: last chunk missing"))
                })?;
                let bytes = stored.get(..filled * 32).ok_or_else(|| {
                    ProjectionError::Corrupt(format!("merkle level {level}: last chunk short"))
                })?;
                chunk.extend_from_slice(bytes);
            }
            open.push(chunk);
        }
        Ok(open)
    }
}

impl Nodes for MerkleStore {
    type Error = ProjectionError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, ProjectionError> {
        let missing =
            || ProjectionError::Corrupt(format!("merkle node ({level}, {index}) missing"));
        let chunk = self
            .tree
            .get(node_key(level, index / CHUNK))?
            .ok_or_else(missing)?;
        let at = (index % CHUNK) as usize * 32;
        let bytes = chunk.get(at..at + 32).ok_or_else(missing)?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(bytes);
        Ok(hash)
    }
}

/// Appends leaves: keeps the frontier and the open chunk of every level in
/// memory, and writes what changed in one batch per [`MerkleWriter::commit`].
#[derive(Debug)]
pub struct MerkleWriter {
    store: MerkleStore,
    frontier: Frontier,
    open: Vec<Vec<u8>>,
    dirty: Vec<bool>,
    batch: sled::Batch,
}

impl MerkleWriter {
    /// Continues the stored tree. Blocking.
    pub fn open(store: MerkleStore) -> Result<MerkleWriter, ProjectionError> {
        let frontier = store.frontier()?;
        let open = store.open_chunks(frontier.size())?;
        let dirty = vec![false; open.len()];
        Ok(MerkleWriter {
            store,
            frontier,
            open,
            dirty,
            batch: sled::Batch::default(),
        })
    }

    /// Leaves so far, committed or not.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        for (level, index, hash) in self.frontier.push(leaf) {
            let level = usize::from(level);
            while self.open.len() <= level {
                self.open.push(Vec::with_capacity(CHUNK as usize * 32));
                self.dirty.push(false);
            }
            let chunk = &mut self.open[level];
            chunk.extend_from_slice(&hash);
            self.dirty[level] = true;
            if chunk.len() == CHUNK as usize * 32 {
                // `level` < 64 always: a u64 tree has at most 64 levels.
                self.batch
                    .insert(&node_key(level as u8, index / CHUNK)[..], chunk.as_slice());
                chunk.clear();
                self.dirty[level] = false;
            }
        }
    }

    /// Records a checkpoint seen in the log, in the next commit.
    pub fn checkpoint(&mut self, c: &StoredCheckpoint) -> Result<(), ProjectionError> {
        self.batch
            .insert(&checkpoint_key(c.size)[..], serde_json::to_vec(c)?);
        Ok(())
    }

    /// Writes every change since the last commit, atomically with the size. Blocking.
    pub fn commit(&mut self) -> Result<(), ProjectionError> {
        let size = self.frontier.size();
        let mut batch = std::mem::take(&mut self.batch);
        for (level, chunk) in self.open.iter().enumerate() {
            if self.dirty[level] {
                let index = (size >> level) / CHUNK;
                batch.insert(&node_key(level as u8, index)[..], chunk.as_slice());
            }
        }
        self.dirty.iter_mut().for_each(|d| *d = false);
        batch.insert(SIZE, &size.to_be_bytes()[..]);
        self.store.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The store it writes to.
    pub fn store(&self) -> &MerkleStore {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use waybill_ledger::audit::{leaf_hash, root, MemoryTree};

    use super::*;

    #[test]
    fn stored_tree_matches_memory_tree_across_reopen() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = sled::Config::new().path(dir.path()).open()?;
        let store = MerkleStore::open(&db)?;
        let mut memory = MemoryTree::from_leaves(&[]);
        let mut writer = MerkleWriter::open(store.clone())?;
        // Sizes around chunk boundaries, committed at uneven points, reopened between.
        for (round, n) in [1u64, 255, 1, 300, 768, 3].into_iter().enumerate() {
            for i in 0..n {
                let data = format!("leaf {round} {i}");
                writer.push(leaf_hash(data.as_bytes()));
                memory.push_leaf(data.as_bytes());
            }
            writer.commit()?;
            assert_eq!(store.size()?, memory.size());
            assert_eq!(root(&store, store.size()?)?, root(&memory, memory.size())?);
            assert_eq!(writer.root(), root(&memory, memory.size())?);
            writer = MerkleWriter::open(store.clone())?;
            assert_eq!(writer.root(), root(&memory, memory.size())?);
        }
        // Every stored node equals the in-memory one.
        let size = memory.size();
        for level in 0..12u8 {
            for index in 0..(size >> level) {
                assert_eq!(store.node(level, index)?, memory.node(level, index)?);
            }
        }
        Ok(())
    }
}
