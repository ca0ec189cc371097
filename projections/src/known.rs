//! Which freight the read models may hold, so that the runner asks sled only
//! for freight that may be there.
//!
//! Every discovery asks whether its freight is already known (re-discovery
//! is a no-op), and nearly every answer is no. sled makes that read wait for
//! any batch being committed (its `apply_batch` holds a process-wide lock
//! that every read takes), so each batch's first new freight stalled the
//! runner until the batch before had landed: commits and applies ran in
//! turn instead of side by side. A Bloom filter of the freight the store and
//! the batches in flight hold answers most of those questions in memory; a
//! "maybe" is still asked of sled, so an answer is never wrong.

use bloomfilter::Bloom;

use crate::error::ProjectionError;
use crate::keys::{self, model};

/// Freight the filter is sized for at least; past its size it lets more
/// questions through to sled, never fewer.
const MIN_FREIGHT: usize = 1 << 20;

/// False positives at its size: questions that still go to sled.
const FALSE_POSITIVES: f64 = 0.01;

/// Fixed, so that the filter behaves the same in every run.
const SEED: [u8; 32] = *b"waybill known freight filter v1.";

/// The freight ids (with their projects) the read models may hold.
#[derive(Debug)]
pub struct KnownFreight {
    bloom: Bloom<[u8]>,
}

impl KnownFreight {
    /// A filter for a store that holds `count` freight, none of them added.
    fn sized(count: usize) -> Result<KnownFreight, ProjectionError> {
        let items = count.saturating_mul(2).max(MIN_FREIGHT);
        let bloom = Bloom::new_for_fp_rate_with_seed(items, FALSE_POSITIVES, &SEED)
            .map_err(|e| ProjectionError::Storage(format!("freight filter: {e}")))?;
        Ok(KnownFreight { bloom })
    }

    /// For an empty store.
    pub fn empty() -> Result<KnownFreight, ProjectionError> {
        KnownFreight::sized(0)
    }

    /// Every freight in `tree` (from its discovery keys, read once).
    /// Blocking.
    pub fn load(tree: &sled::Tree) -> Result<KnownFreight, ProjectionError> {
        let discovered = tree
            .scan_prefix([model::DISCOVERY])
            .keys()
            .collect::<Result<Vec<_>, _>>()?;
        let mut known = KnownFreight::sized(discovered.len())?;
        for k in &discovered {
            let (project, id) = keys::discovery_parts(k)
                .ok_or_else(|| ProjectionError::Corrupt("bad discovery key".into()))?;
            known.add(project, id);
        }
        Ok(known)
    }

    /// Notes that the read models hold (or are about to hold) freight `id`.
    pub fn add(&mut self, project: &str, id: &str) {
        self.bloom.set(&name(project, id));
    }

    /// False only when the read models hold no freight `id`.
    pub fn may_hold(&self, project: &str, id: &str) -> bool {
        self.bloom.check(&name(project, id))
    }
}

fn name(project: &str, id: &str) -> Vec<u8> {
    [project.as_bytes(), &[0], id.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_added_may_be_held_and_most_else_is_not() {
        let mut known = KnownFreight::empty().expect("filter");
        for i in 0..10_000 {
            known.add("p", &format!("f{i}"));
        }
        assert!((0..10_000).all(|i| known.may_hold("p", &format!("f{i}"))));
        // Another project's freight of the same id is another freight.
        let others = (0..10_000)
            .filter(|i| known.may_hold("q", &format!("f{i}")))
            .count();
        assert!(others < 500, "{others} false positives of 10,000");
    }

    #[test]
    fn a_store_is_read_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("views").expect("tree");
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        for i in 0..100 {
            tree.insert(keys::discovery("proj", t, &format!("id{i}")), &[])
                .expect("insert");
        }
        let known = KnownFreight::load(&tree).expect("load");
        assert!((0..100).all(|i| known.may_hold("proj", &format!("id{i}"))));
        assert!(!known.may_hold("proj", "never-discovered"));
    }
}
