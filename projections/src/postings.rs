//! Posting lists: which positions an index value (an actor, an event type,
//! a project's stage or freight, or the whole log) has, in buckets of
//! [`BUCKET`] positions, one sled key per value and bucket.
//!
//! One key per event and index cost the rebuild most of its time (sled
//! rewrites a node for every key it inserts); a bucket gathers a batch's
//! entries into one write. Buckets are fixed ranges of positions, so their
//! keys and contents do not depend on how events were batched: a runner
//! that resumes after a crash ends with the same keys as a clean rebuild.
//!
//! Value: the last position in the bucket (8 bytes, big-endian), then per
//! entry the distance from the previous position (varint; from the start of
//! the bucket for the first) and the project (varint length, bytes; empty
//! when the key names it).

use std::collections::BTreeMap;

use prost::encoding::{decode_varint, encode_varint};
use waybill_ledger::Position;

use crate::error::ProjectionError;
use crate::keys;

/// Positions per bucket.
pub const BUCKET: u64 = 4096;

/// The first position of `p`'s bucket.
pub fn bucket(p: Position) -> Position {
    Position(p.0 - p.0 % BUCKET)
}

/// Entries gathered for one batch, by bucket key.
#[derive(Debug, Default)]
pub struct Postings {
    pending: BTreeMap<Vec<u8>, Vec<(Position, String)>>,
}

impl Postings {
    /// Adds position `p` (of `project`, or "" when `prefix` names it) under
    /// the key prefix of an index value.
    pub fn add(&mut self, mut prefix: Vec<u8>, p: Position, project: &str) {
        prefix.extend_from_slice(&keys::pos(bucket(p)));
        self.pending
            .entry(prefix)
            .or_default()
            .push((p, project.to_string()));
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Appends the gathered entries to their buckets (read from `tree`),
    /// skipping positions a bucket already has, into `batch`. Blocking.
    pub fn write(self, tree: &sled::Tree, batch: &mut sled::Batch) -> Result<(), ProjectionError> {
        for (key, entries) in self.pending {
            let start = keys::index_pos(&key).unwrap_or(Position::ZERO);
            let mut value = match tree.get(&key)? {
                Some(v) => v.to_vec(),
                None => keys::pos(start).to_vec(),
            };
            // An empty bucket's header holds its start; its first entry is
            // measured from there.
            let mut last = header(&value)?;
            let mut any = value.len() > 8;
            for (p, project) in entries {
                if any && p <= last {
                    continue;
                }
                any = true;
                encode_varint(p.0 - last.0, &mut value);
                encode_varint(project.len() as u64, &mut value);
                value.extend_from_slice(project.as_bytes());
                last = p;
                value[..8].copy_from_slice(&keys::pos(p));
            }
            batch.insert(key, value);
        }
        Ok(())
    }
}

fn header(value: &[u8]) -> Result<Position, ProjectionError> {
    keys::decode_pos(value).ok_or_else(|| ProjectionError::Corrupt("short posting list".into()))
}

/// The entries of one bucket value, from position `from` on.
pub fn entries(
    start: Position,
    value: &[u8],
    from: Position,
) -> Result<Vec<(Position, String)>, ProjectionError> {
    let corrupt = || ProjectionError::Corrupt("bad posting list".into());
    header(value)?;
    let mut rest = &value[8..];
    let mut at = start.0;
    let mut out = Vec::new();
    while !rest.is_empty() {
        at += decode_varint(&mut rest).map_err(|_| corrupt())?;
        let len = usize::try_from(decode_varint(&mut rest).map_err(|_| corrupt())?)
            .map_err(|_| corrupt())?;
        let project = rest.get(..len).ok_or_else(corrupt)?;
        let project = std::str::from_utf8(project).map_err(|_| corrupt())?;
        rest = &rest[len..];
        if at >= from.0 {
            out.push((Position(at), project.to_string()));
        }
    }
    Ok(out)
}

/// Every entry under `prefix` from position `from` on, bucket by bucket.
pub fn scan<'a>(
    tree: &'a sled::Tree,
    prefix: Vec<u8>,
    from: Position,
) -> impl Iterator<Item = Result<Vec<(Position, String)>, ProjectionError>> + 'a {
    let mut start = prefix.clone();
    start.extend_from_slice(&keys::pos(bucket(from)));
    tree.range(start..)
        .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
        .map(move |kv| {
            let (k, v) = kv?;
            let first =
                keys::index_pos(&k).ok_or_else(|| ProjectionError::Corrupt("key".into()))?;
            entries(first, &v, from)
        })
}

/// Every entry under `prefix` before position `before`, newest first,
/// bucket by bucket.
pub fn scan_back<'a>(
    tree: &'a sled::Tree,
    prefix: Vec<u8>,
    before: Position,
) -> impl Iterator<Item = Result<Vec<(Position, String)>, ProjectionError>> + 'a {
    let mut end = prefix.clone();
    end.extend_from_slice(&keys::pos(bucket(before)));
    tree.range(prefix.clone()..=end)
        .rev()
        .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
        .map(move |kv| {
            let (k, v) = kv?;
            let first =
                keys::index_pos(&k).ok_or_else(|| ProjectionError::Corrupt("key".into()))?;
            let mut all = entries(first, &v, first)?;
            all.retain(|(p, _)| *p < before);
            all.reverse();
            Ok(all)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::open(dir.path()).expect("open");
        let tree = db.open_tree("t").expect("tree");
        (dir, tree)
    }

    fn all(tree: &sled::Tree, prefix: &[u8], from: u64) -> Vec<(u64, String)> {
        scan(tree, prefix.to_vec(), Position(from))
            .flat_map(|b| b.expect("bucket"))
            .map(|(p, s)| (p.0, s))
            .collect()
    }

    fn all_back(tree: &sled::Tree, prefix: &[u8], before: u64) -> Vec<(u64, String)> {
        scan_back(tree, prefix.to_vec(), Position(before))
            .flat_map(|b| b.expect("bucket"))
            .map(|(p, s)| (p.0, s))
            .collect()
    }

    /// Adds `positions` in batches split at `cuts`.
    fn fill(tree: &sled::Tree, positions: &[u64], cuts: &[usize]) {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(positions.len());
        for w in bounds.windows(2) {
            let mut postings = Postings::default();
            for &p in &positions[w[0]..w[1]] {
                let project = if p % 2 == 0 { "shop" } else { "" };
                postings.add(b"xa\0".to_vec(), Position(p), project);
                postings.add(b"xb\0".to_vec(), Position(p + 1), "");
            }
            let mut batch = sled::Batch::default();
            postings.write(tree, &mut batch).expect("write");
            tree.apply_batch(batch).expect("apply");
        }
    }

    #[test]
    fn buckets_hold_every_position_once_whatever_the_batches() {
        let positions: Vec<u64> = (1..20_000).filter(|p| p % 3 != 0).collect();
        let (_a, one) = open();
        fill(&one, &positions, &[]);
        let (_b, many) = open();
        fill(&many, &positions, &[5, 4095, 4096, 9000, 13_000]);
        // A replay after a crash adds positions again: they are skipped.
        fill(&many, &positions[9000..9500], &[]);
        let dump = |t: &sled::Tree| -> Vec<(sled::IVec, sled::IVec)> {
            t.iter().map(|kv| kv.expect("kv")).collect()
        };
        assert_eq!(dump(&one), dump(&many));
        let want: Vec<(u64, String)> = positions
            .iter()
            .map(|&p| (p, if p % 2 == 0 { "shop" } else { "" }.to_string()))
            .collect();
        assert_eq!(all(&many, b"xa\0", 0), want);
        let later: Vec<(u64, String)> =
            want.iter().filter(|(p, _)| *p >= 12_289).cloned().collect();
        assert_eq!(all(&many, b"xa\0", 12_289), later);
        // A bucket's first position (4096) is kept.
        assert_eq!(all(&many, b"xa\0", 4096)[0].0, 4096);
        assert_eq!(all(&many, b"xb\0", 0).len(), positions.len());
        assert!(all(&many, b"xc\0", 0).is_empty());
        // Backwards: the same entries, newest first, before a position
        // anywhere in a bucket, at its start, or past the last one.
        for before in [1, 2, 4096, 4097, 12_289, 19_999, 20_000, u64::MAX] {
            let mut want: Vec<(u64, String)> =
                want.iter().filter(|(p, _)| *p < before).cloned().collect();
            want.reverse();
            assert_eq!(all_back(&many, b"xa\0", before), want, "before {before}");
        }
        assert!(all_back(&many, b"xc\0", u64::MAX).is_empty());
    }
}
