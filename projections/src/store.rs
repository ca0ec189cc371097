//! The projection store: read models, history, indexes and the checkpoint,
//! in sled. Every write is a batch that carries the checkpoint.

use std::path::Path;

use waybill_ledger::Position;

use crate::error::ProjectionError;
use prost::Message as _;
use waybill_proto::v1 as pb;

use crate::history::HistoryItem;
use crate::keys::{self, Index};
use crate::postings::{self, Postings};
use crate::service::convert;

/// sled's page cache (its default is 1 GiB) when none is given: enough for
/// a rebuild, which writes sequentially.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Most history items returned by one query.
pub const MAX_HISTORY: usize = 10_000;

/// The sled store of the projections. Cheap to clone.
#[derive(Clone)]
pub struct ProjectionStore {
    db: sled::Db,
    tree: sled::Tree,
}

impl std::fmt::Debug for ProjectionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProjectionStore")
    }
}

/// Which history to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryFilter {
    pub project: Option<String>,
    pub stage: Option<String>,
    pub freight: Option<String>,
    pub actor: Option<String>,
    pub event_type: Option<String>,
    /// Only the events of this promotion (with its freight set, so that the
    /// freight's index narrows the read).
    pub promotion: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only these projects (the ones a caller may view), when set.
    pub visible: Option<std::sync::Arc<std::collections::BTreeSet<String>>>,
}

impl HistoryFilter {
    /// Whether the entry matches; `time` is its event time as [`keys::time`].
    fn matches(&self, item: &pb::HistoryEntry, time: &[u8]) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.project, &item.project)
            && eq(&self.stage, &item.stage)
            && eq(&self.freight, &item.freight)
            && eq(&self.actor, &item.actor)
            && eq(&self.event_type, &item.event_type)
            && eq(&self.promotion, &item.promotion)
            && self.since.is_none_or(|t| time >= &keys::time(t)[..])
            && self.until.is_none_or(|t| time < &keys::time(t)[..])
            && self
                .visible
                .as_ref()
                .is_none_or(|v| v.contains(&item.project))
    }

    /// The most selective index for this filter, and its value.
    fn index(&self) -> Option<(Index, String)> {
        let scoped = |v: &str| format!("{}/{v}", self.project.as_deref().unwrap_or(""));
        if let (Some(_), Some(s)) = (&self.project, &self.stage) {
            return Some((Index::Stage, scoped(s)));
        }
        if let (Some(_), Some(f)) = (&self.project, &self.freight) {
            return Some((Index::Freight, scoped(f)));
        }
        if let Some(a) = &self.actor {
            return Some((Index::Actor, a.clone()));
        }
        if let Some(p) = &self.project {
            return Some((Index::Project, p.clone()));
        }
        self.event_type.clone().map(|t| (Index::Type, t))
    }
}

/// One atomic write of read models, history items, indexes and the checkpoint.
#[derive(Debug, Default)]
pub struct Writes {
    batch: sled::Batch,
    postings: Postings,
    checkpoint: Option<Position>,
}

impl Writes {
    /// Records a history item and its index entries; `latest` is the latest
    /// event time of its project so far (the time index of `StateAt`).
    pub fn event(
        &mut self,
        item: &HistoryItem,
        latest: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ProjectionError> {
        let p = item.position;
        // The item is stored once, in the project index: per-project history,
        // the common query, is one sequential scan. The other entries say
        // where to find it. It is stored as the query answers it.
        let entry = convert::entry(item);
        let mut value = Vec::with_capacity(16 + entry.encoded_len());
        value.extend_from_slice(&keys::time(latest));
        value.extend_from_slice(&keys::time(item.time));
        entry
            .encode(&mut value)
            .map_err(|e| ProjectionError::Storage(e.to_string()))?;
        self.batch
            .insert(keys::index(Index::Project, &item.project, p), value);
        let project = &item.project;
        let postings = &mut self.postings;
        postings.add(keys::HISTORY.to_vec(), p, project);
        postings.add(keys::index_prefix(Index::Actor, &item.actor), p, project);
        postings.add(
            keys::index_prefix(Index::Type, &item.event_type),
            p,
            project,
        );
        if !item.stage.is_empty() {
            let v = format!("{project}/{}", item.stage);
            postings.add(keys::index_prefix(Index::Stage, &v), p, "");
        }
        if !item.freight.is_empty() {
            let v = format!("{project}/{}", item.freight);
            postings.add(keys::index_prefix(Index::Freight, &v), p, "");
        }
        self.checkpoint = Some(p);
        Ok(())
    }

    /// Moves the checkpoint past `p`, a message that is no event (see
    /// [`waybill_ledger::ForeignRecord`]): nothing else is written for it.
    pub fn pass(&mut self, p: Position) {
        self.checkpoint = Some(p);
    }

    /// Writes `value` under `key` in the views, with the rest of the batch.
    pub fn raw(&mut self, key: Vec<u8>, value: &[u8]) {
        self.batch.insert(key, value);
    }

    /// Removes `key` from the views, with the rest of the batch.
    pub fn remove(&mut self, key: Vec<u8>) {
        self.batch.remove(key);
    }
}

/// Why the store in `dir` cannot be opened while another process has it.
pub fn in_use(dir: &Path) -> String {
    format!(
        "the read models in {} are in use by another Waybill process (a `waybill serve` on \
         this data dir?): stop it first",
        dir.display()
    )
}

impl ProjectionStore {
    /// Opens (or creates) the store in `dir`. Blocking.
    pub fn open(dir: &Path) -> Result<ProjectionStore, ProjectionError> {
        ProjectionStore::open_with_cache(dir, CACHE_BYTES)
    }

    /// Opens the store with a page cache of `cache_bytes`. Blocking.
    pub fn open_with_cache(
        dir: &Path,
        cache_bytes: u64,
    ) -> Result<ProjectionStore, ProjectionError> {
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        let db = waybill_ledger::embedded::open_sled(&config).map_err(|e| match e {
            e if waybill_ledger::embedded::is_locked(&e) => ProjectionError::Storage(in_use(dir)),
            e @ sled::Error::Corruption { .. } => ProjectionError::Corrupt(format!(
                "the projection store in {} does not read: {e}",
                dir.display()
            )),
            other => ProjectionError::Storage(format!(
                "cannot open projections in {}: {other}",
                dir.display()
            )),
        })?;
        let tree = db.open_tree("views")?;
        // Whole project states, written beside the views up to format 5.
        db.drop_tree("snapshots")?;
        let format = tree.get(keys::FORMAT)?.and_then(|v| keys::decode_pos(&v));
        if format.map(|f| f.0) != Some(keys::FORMAT_VERSION) {
            if !tree.is_empty() {
                // Read models are derived: start them again from the log.
                tracing::warn!(
                    dir = %dir.display(),
                    found = format.map(|f| f.0).unwrap_or(1),
                    wanted = keys::FORMAT_VERSION,
                    "the projection store has an older layout; rebuilding it from the log"
                );
                tree.clear()?;
            }
            tree.insert(keys::FORMAT, &keys::pos(Position(keys::FORMAT_VERSION))[..])?;
            db.flush()?;
        }
        Ok(ProjectionStore { db, tree })
    }

    /// The views tree (history, indexes, stage versions).
    pub fn views(&self) -> &sled::Tree {
        &self.tree
    }

    /// The sled database (other read models open their own trees in it).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The last position applied (0 when nothing is).
    pub fn checkpoint(&self) -> Result<Position, ProjectionError> {
        self.position(keys::CHECKPOINT)
    }

    fn position(&self, key: &[u8]) -> Result<Position, ProjectionError> {
        Ok(self
            .tree
            .get(key)?
            .and_then(|v| keys::decode_pos(&v))
            .unwrap_or(Position::ZERO))
    }

    /// Applies `writes` atomically with the checkpoint.
    pub fn commit(&self, mut writes: Writes) -> Result<(), ProjectionError> {
        if let Some(p) = writes.checkpoint {
            writes.batch.insert(keys::CHECKPOINT, &keys::pos(p)[..]);
        }
        writes.postings.write(&self.tree, &mut writes.batch)?;
        self.tree.apply_batch(writes.batch)?;
        Ok(())
    }

    /// Flushes to disk (at shutdown; the log is the source of truth meanwhile).
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.db.flush()?;
        Ok(())
    }

    /// Whether any history item names `stage` of `project` (a stage since
    /// removed from the pipeline still has its history). Blocking.
    pub fn has_stage_history(&self, project: &str, stage: &str) -> Result<bool, ProjectionError> {
        let prefix = keys::index_prefix(Index::Stage, &format!("{project}/{stage}"));
        Ok(self.tree.scan_prefix(prefix).next().transpose()?.is_some())
    }

    /// History matching `filter` from position `from`, oldest first, at most `limit`.
    pub fn history(
        &self,
        filter: &HistoryFilter,
        from: Position,
        limit: usize,
    ) -> Result<Vec<pb::HistoryEntry>, ProjectionError> {
        let mut out = Vec::new();
        self.history_each(filter, from, limit, |h| {
            out.push(h);
            true
        })?;
        Ok(out)
    }

    /// Hands each entry of [`ProjectionStore::history`] to `each` as it is
    /// read, until `each` returns false.
    pub fn history_each(
        &self,
        filter: &HistoryFilter,
        from: Position,
        limit: usize,
        each: impl FnMut(pb::HistoryEntry) -> bool,
    ) -> Result<(), ProjectionError> {
        let mut taker = Taker::new(filter, limit, each);
        match HistoryIndex::of(filter) {
            HistoryIndex::Project { prefix, value } => {
                let start = keys::index(Index::Project, &value, from);
                for entry in self.tree.range(start..) {
                    let (k, v) = entry?;
                    if !k.starts_with(&prefix) || !taker.take(decode_item(&v)?) {
                        break;
                    }
                }
            }
            HistoryIndex::Postings { prefix, scoped } => {
                self.take_postings(postings::scan(&self.tree, prefix, from), scoped, &mut taker)?;
            }
        }
        Ok(())
    }

    /// [`ProjectionStore::history_each`] backwards: the entries before
    /// position `before`, newest first.
    pub fn history_back(
        &self,
        filter: &HistoryFilter,
        before: Position,
        limit: usize,
        each: impl FnMut(pb::HistoryEntry) -> bool,
    ) -> Result<(), ProjectionError> {
        let mut taker = Taker::new(filter, limit, each);
        match HistoryIndex::of(filter) {
            HistoryIndex::Project { value, .. } => {
                let start = keys::index(Index::Project, &value, Position::ZERO);
                let end = keys::index(Index::Project, &value, before);
                for entry in self.tree.range(start..end).rev() {
                    let (_, v) = entry?;
                    if !taker.take(decode_item(&v)?) {
                        break;
                    }
                }
            }
            HistoryIndex::Postings { prefix, scoped } => {
                let buckets = postings::scan_back(&self.tree, prefix, before);
                self.take_postings(buckets, scoped, &mut taker)?;
            }
        }
        Ok(())
    }

    /// Reads the history items the positions in `buckets` name, of project
    /// `scoped` or of the project each entry names, until `taker` has enough.
    fn take_postings(
        &self,
        buckets: impl Iterator<Item = Result<Vec<(Position, String)>, ProjectionError>>,
        scoped: Option<String>,
        taker: &mut Taker<'_, impl FnMut(pb::HistoryEntry) -> bool>,
    ) -> Result<(), ProjectionError> {
        for bucket in buckets {
            for (p, project) in bucket? {
                let project = scoped.as_deref().unwrap_or(&project);
                if let Some(h) = self.item_in(project, p)? {
                    if !taker.take(h) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    fn item_in(&self, project: &str, p: Position) -> Result<Option<Stored>, ProjectionError> {
        match self.tree.get(keys::index(Index::Project, project, p))? {
            Some(v) => Ok(Some(decode_item(&v)?)),
            None => Ok(None),
        }
    }
}

/// Where a history read looks: a project's own index, or posting lists.
enum HistoryIndex {
    Project {
        prefix: Vec<u8>,
        value: String,
    },
    /// Posting lists under `prefix`; `scoped`: the project every entry is of
    /// (indexes within a project), else each entry names its own.
    Postings {
        prefix: Vec<u8>,
        scoped: Option<String>,
    },
}

impl HistoryIndex {
    /// The most selective index for `filter`.
    fn of(filter: &HistoryFilter) -> HistoryIndex {
        match filter.index() {
            Some((Index::Project, value)) => HistoryIndex::Project {
                prefix: keys::index_prefix(Index::Project, &value),
                value,
            },
            // Project-scoped indexes: the filter names the project.
            Some((kind @ (Index::Stage | Index::Freight), value)) => HistoryIndex::Postings {
                prefix: keys::index_prefix(kind, &value),
                scoped: filter.project.clone(),
            },
            Some((kind, value)) => HistoryIndex::Postings {
                prefix: keys::index_prefix(kind, &value),
                scoped: None,
            },
            None => HistoryIndex::Postings {
                prefix: keys::HISTORY.to_vec(),
                scoped: None,
            },
        }
    }
}

/// Hands the entries that match a filter to `each`, up to a limit.
struct Taker<'a, F> {
    filter: &'a HistoryFilter,
    limit: usize,
    sent: usize,
    each: F,
}

impl<'a, F: FnMut(pb::HistoryEntry) -> bool> Taker<'a, F> {
    fn new(filter: &'a HistoryFilter, limit: usize, each: F) -> Self {
        Taker {
            filter,
            limit: limit.clamp(1, MAX_HISTORY),
            sent: 0,
            each,
        }
    }

    /// Takes `(time, entry)` if it matches; whether to read on.
    fn take(&mut self, (time, h): Stored) -> bool {
        if !self.filter.matches(&h, &time) {
            return true;
        }
        self.sent += 1;
        (self.each)(h) && self.sent < self.limit
    }
}

/// A history entry and its event time (as [`keys::time`]).
type Stored = ([u8; 8], pb::HistoryEntry);

/// A project index entry: the project's latest time so far and the event's
/// time (8 bytes each), then the entry (protobuf).
fn decode_item(v: &[u8]) -> Result<Stored, ProjectionError> {
    let short = || ProjectionError::Corrupt("short history entry".into());
    let time: [u8; 8] = v
        .get(8..16)
        .ok_or_else(short)?
        .try_into()
        .map_err(|_| short())?;
    Ok((time, pb::HistoryEntry::decode(&v[16..])?))
}
