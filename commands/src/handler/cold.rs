//! The command service's store of what its cached project states leave out.
//!
//! A cached [`ProjectState`] keeps in memory only its working set (see
//! [`waybill_ledger::domain::working_set`]): the pipeline and stages, the
//! freight the stages run, the active promotions, and the records used most
//! recently. The rest (older freight, finished promotions, aliases and
//! idempotency keys) is moved here by [`ProjectCold::spill`] and loaded back
//! before a command or an event reads it ([`load_for_command`],
//! [`waybill_ledger::domain::working_set::load_for_event`]). So a project's
//! memory does not grow with its history.
//!
//! The store is a cache of the log, never read by anything else: a project's
//! records are cleared whenever its state is folded again from the start.
//! It outlives the process only through a clean shutdown: then
//! [`ColdStore::seal`] writes each cached project's state beside its records
//! (with the chain hash of the last event it applied) and marks the store
//! clean. The next [`ColdStore::open`] keeps a clean store, and unmarks it
//! before anything else is written, so a store a killed process left is
//! wiped. A state dropped from the command service's cache is saved the
//! same way ([`ProjectCold::hibernate`]), unless its project was folded
//! again meanwhile. A project's state is taken back
//! ([`ProjectCold::take_snapshot`]) only if the log still holds that event
//! with that hash, and then caught up from there instead of folded from the
//! start.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use waybill_ledger::domain::working_set::{self, Cold};
use waybill_ledger::domain::{
    available_to, freight_id, CommandKey, CommandOutcome, Freight, ProjectState, Promotion,
    PromotionStatus, StageDef,
};
use waybill_ledger::{ChainHash, Position};

use super::CommandError;
use crate::command::{Command, FreightSelector};

/// Freight, promotions and aliases a project keeps in memory (beyond the
/// freight its stages run and its active promotions) before older ones are
/// moved out: about 0.5 MB per project.
pub const HOT: usize = 256;

/// Freight or finished promotions a move takes out at least: the oldest
/// beyond `HOT - MOVE` (aliases and idempotency keys go all at once). A
/// move runs beside the commands (see `CommandHandler::spill_later`) but
/// takes CPU from them; small, frequent moves lengthen fewer commands than
/// large, rare ones (1-client p99 about 430 µs against 730 when a move took
/// all but the 16 newest freight).
pub const MOVE: usize = 32;

/// Idempotency keys a project keeps in memory before they are moved out.
pub const HOT_COMMANDS: usize = 1024;

/// redb's page cache for the store.
const CACHE_BYTES: usize = 16 << 20;

/// Time between two durable commits: redb keeps what a non-durable commit
/// freed in memory until a durable commit (an fsync) writes it out.
const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The store's one table: byte keys (layout in [`key`]) to byte values.
const RECORDS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("records");

const FREIGHT: u8 = b'f';
const PROMOTION: u8 = b'p';
const ALIAS: u8 = b'a';
const DISCOVERY: u8 = b'd';
const COMMAND: u8 = b'c';
const SUCCEEDED: u8 = b's';
/// A project's state at a clean shutdown (see [`Snapshot`]).
const SNAPSHOT: u8 = b'n';
const KINDS: [u8; 7] = [
    FREIGHT, PROMOTION, ALIAS, DISCOVERY, COMMAND, SUCCEEDED, SNAPSHOT,
];

/// Present only in a store sealed by a clean shutdown, and removed (durably)
/// when the store is opened again.
const CLEAN: &[u8] = b"!clean";

/// The file of the store's database in its directory.
const FILE: &str = "records.redb";

/// A project's cached state as [`ColdStore::seal`] wrote it, and the chain
/// hash of the event at `state.position` (what it was folded up to).
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot<S> {
    /// [`SNAPSHOT_FORMAT`] of the process that wrote it.
    format: String,
    hash: String,
    state: S,
}

/// Which releases read each other's saved states: this crate's version
/// (a state saved by another release is folded again, as a field added
/// with a default would not hold what the events say), and a number to
/// raise when `ProjectState` changes meaning within one.
const SNAPSHOT_FORMAT: &str = concat!(env!("CARGO_PKG_VERSION"), "/1");

/// A key and its value.
type Entry = (Vec<u8>, Vec<u8>);

/// Keys to set (`Some`) or remove (`None`) in one write.
pub type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A redb error as a command error.
fn store_error(e: impl Into<redb::Error>) -> CommandError {
    CommandError::Internal(format!("command state store: {}", e.into()))
}

/// The store's database, removed with its directory when dropped (it only
/// caches the log).
struct Kv {
    db: redb::Database,
    dir: std::path::PathBuf,
    /// When the last durable commit was made.
    durable: Mutex<std::time::Instant>,
    /// Sealed by a clean shutdown: the directory stays when dropped.
    keep: std::sync::atomic::AtomicBool,
    /// Held locked while the store is open.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv").field("dir", &self.dir).finish()
    }
}

impl Drop for Kv {
    fn drop(&mut self) {
        if !self.keep.load(std::sync::atomic::Ordering::Acquire) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Kv {
    /// The table as of now, for reading.
    fn table(&self) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, CommandError> {
        use redb::ReadableDatabase;
        self.db
            .begin_read()
            .map_err(store_error)?
            .open_table(RECORDS)
            .map_err(store_error)
    }

    fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, CommandError> {
        Ok(self
            .table()?
            .get(k)
            .map_err(store_error)?
            .map(|v| v.value().to_vec()))
    }

    /// Up to `limit` entries in `start..end`, from the last, keys and values.
    fn last(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Entry>, CommandError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for kv in self
            .table()?
            .range(start..end)
            .map_err(store_error)?
            .rev()
            .take(limit)
        {
            let (k, v) = kv.map_err(store_error)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) each key, atomically.
    fn write(&self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), CommandError> {
        self.write_if(batch, || true).map(|_| ())
    }

    /// [`Kv::write`], durable (fsynced with everything written before it)
    /// when it returns.
    fn write_durably(&self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), CommandError> {
        let tx = self.db.begin_write().map_err(store_error)?;
        put(&tx, batch)?;
        tx.commit().map_err(store_error)?;
        *self.durable.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
        Ok(())
    }

    /// [`Kv::write`], if `still` holds once no other write can start;
    /// whether it wrote.
    fn write_if(
        &self,
        batch: &[(Vec<u8>, Option<Vec<u8>>)],
        still: impl FnOnce() -> bool,
    ) -> Result<bool, CommandError> {
        if batch.is_empty() {
            return Ok(true);
        }
        let mut tx = self.db.begin_write().map_err(store_error)?;
        if !still() {
            tx.abort().map_err(store_error)?;
            return Ok(false);
        }
        // One writer at a time (the write transaction), so this is not racy.
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if now.duration_since(*durable) < DURABLE_EVERY {
            tx.set_durability(redb::Durability::None)
                .map_err(|e| CommandError::Internal(format!("command state store: {e}")))?;
        }
        put(&tx, batch)?;
        let was_durable = now.duration_since(*durable) >= DURABLE_EVERY;
        tx.commit().map_err(store_error)?;
        if was_durable {
            *durable = now;
        }
        Ok(true)
    }
}

/// Sets (`Some`) or removes (`None`) each key in `tx`.
fn put(
    tx: &redb::WriteTransaction,
    batch: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Result<(), CommandError> {
    let mut table = tx.open_table(RECORDS).map_err(store_error)?;
    for (k, v) in batch {
        match v {
            Some(v) => table
                .insert(k.as_slice(), v.as_slice())
                .map_err(store_error)?,
            None => table.remove(k.as_slice()).map_err(store_error)?,
        };
    }
    Ok(())
}

/// The database a clean shutdown left in `dir`, unmarked (durably) so that
/// it is wiped if this process does not end cleanly too; `None` if there is
/// none, or it is not clean, or it cannot be read.
fn reopen_clean(dir: &Path) -> Option<redb::Database> {
    use redb::ReadableDatabase;
    let path = dir.join(FILE);
    if !path.exists() {
        return None;
    }
    let attempt = || -> Result<Option<redb::Database>, redb::Error> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .open(&path)?;
        let clean = db.begin_read()?.open_table(RECORDS)?.get(CLEAN)?.is_some();
        if !clean {
            return Ok(None);
        }
        let tx = db.begin_write()?;
        tx.open_table(RECORDS)?.remove(CLEAN)?;
        tx.commit()?;
        Ok(Some(db))
    };
    match attempt() {
        Ok(db) => db,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot reuse the command state store; starting it empty");
            None
        }
    }
}

/// Every entry of a key range, from the last, read a page at a time (a read
/// transaction is not held across the caller's work).
fn backwards<'a>(
    kv: &'a Kv,
    start: Vec<u8>,
    end: Vec<u8>,
) -> impl Iterator<Item = Result<Entry, CommandError>> + 'a {
    const PAGE: usize = 256;
    let mut end = Some(end);
    let mut page = std::collections::VecDeque::new();
    std::iter::from_fn(move || {
        if page.is_empty() {
            let upto = end.take()?;
            match kv.last(&start, &upto, PAGE) {
                Ok(entries) => {
                    if entries.len() == PAGE {
                        end = entries.last().map(|(k, _)| k.clone());
                    }
                    page.extend(entries);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        page.pop_front().map(Ok)
    })
}

impl From<serde_json::Error> for CommandError {
    fn from(e: serde_json::Error) -> Self {
        CommandError::Internal(format!("command state store: {e}"))
    }
}

/// Per project, each stage's definition and floor.
type Floors = HashMap<String, Vec<(StageDef, Vec<u8>)>>;

/// The records the cached project states leave out, in a redb database of
/// their own. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ColdStore {
    kv: Arc<Kv>,
    hot: usize,
    hot_commands: usize,
    /// Per project, per stage looked for: a discovery key (as stored under
    /// `DISCOVERY`) above which every freight kept here is unavailable to
    /// the stage, as defined then.
    floors: Arc<Mutex<Floors>>,
    /// Per project, how many times its records were cleared: a move planned
    /// before a clear is not written after it.
    clears: Arc<Mutex<HashMap<String, u64>>>,
    /// The mover thread's queue.
    mover: std::sync::mpsc::Sender<Job>,
    /// Project states taken back from a clean shutdown.
    restored: Arc<std::sync::atomic::AtomicU64>,
    /// Dropped project states waiting to be saved (see [`SaveTicket`]).
    saving: Arc<std::sync::atomic::AtomicUsize>,
}

/// Dropped project states that may wait to be saved at once: each holds its
/// memory until the low-priority mover writes it, so beyond this (the
/// commands keep the CPU busy) a dropped state is let go unsaved, and
/// folded again when next needed.
const MAX_SAVING: usize = 64;

/// One of the [`MAX_SAVING`] places for a dropped state being saved, given
/// back when dropped.
#[derive(Debug)]
pub struct SaveTicket(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for SaveTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Work for the mover thread.
type Job = Box<dyn FnOnce() + Send>;

/// Starts the thread that runs moves to the store, at the lowest CPU
/// priority (nice 19): a move then takes only CPU the commands leave, so it
/// does not lengthen them (on two cores, moves run beside the commands at
/// normal priority raised the 1-client p99 from about 350 µs to 900). It
/// ends when every sender is gone.
fn start_mover() -> Result<std::sync::mpsc::Sender<Job>, CommandError> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("waybill-store-mover".into())
        .spawn(move || {
            if let Err(e) =
                thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
            {
                tracing::warn!(error = %e, "the store's mover runs at normal priority");
            }
            for job in rx {
                job();
            }
        })
        .map_err(|e| CommandError::Internal(format!("cannot start the store's mover: {e}")))?;
    Ok(tx)
}

impl ColdStore {
    /// Opens the store in `dir`: as a clean shutdown sealed it, or else
    /// emptied (it only caches the log; what a killed process left there is
    /// removed unread). Unless sealed again, the directory is removed when
    /// the last clone is dropped. Refused while another process has it open
    /// (a lock on the file `<dir>.lock` beside it).
    pub fn open(dir: &Path) -> Result<ColdStore, CommandError> {
        let io = |what: &str, e: std::io::Error| {
            CommandError::Internal(format!("{what} {}: {e}", dir.display()))
        };
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("cannot create the parent of", e))?;
        }
        let mut lock_path = dir.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("cannot open the lock file of", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(CommandError::Internal(format!(
                    "another process uses the command state store in {}; give each server \
                     its own data directory",
                    dir.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock", e)),
        }
        let db = match reopen_clean(dir) {
            Some(db) => db,
            None => {
                if dir.exists() {
                    std::fs::remove_dir_all(dir).map_err(|e| io("cannot empty", e))?;
                }
                std::fs::create_dir_all(dir).map_err(|e| io("cannot create", e))?;
                let db = redb::Builder::new()
                    .set_cache_size(CACHE_BYTES)
                    .create(dir.join(FILE))
                    .map_err(store_error)?;
                let tx = db.begin_write().map_err(store_error)?;
                tx.open_table(RECORDS).map_err(store_error)?;
                tx.commit().map_err(store_error)?;
                db
            }
        };
        let store = ColdStore {
            kv: Arc::new(Kv {
                db,
                dir: dir.to_path_buf(),
                durable: Mutex::new(std::time::Instant::now()),
                keep: std::sync::atomic::AtomicBool::new(false),
                _lock: lock,
            }),
            hot: HOT,
            hot_commands: HOT_COMMANDS,
            floors: Arc::default(),
            clears: Arc::default(),
            mover: start_mover()?,
            restored: Arc::default(),
            saving: Arc::default(),
        };
        let kept = store.snapshots()?;
        if kept > 0 {
            tracing::info!(
                projects = kept,
                "kept the command state of the last clean shutdown"
            );
        }
        Ok(store)
    }

    /// How many project states a clean shutdown left to take back.
    pub fn snapshots(&self) -> Result<usize, CommandError> {
        let start = [SNAPSHOT];
        let end = [SNAPSHOT + 1];
        Ok(self
            .kv
            .table()?
            .range(&start[..]..&end[..])
            .map_err(store_error)?
            .count())
    }

    /// How many project states this process took back from a clean
    /// shutdown (tests use it to tell that from a fold).
    #[doc(hidden)]
    pub fn restored(&self) -> u64 {
        self.restored.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A place for one more dropped state to be saved, if fewer than
    /// [`MAX_SAVING`] are waiting.
    pub(super) fn save_ticket(&self) -> Option<SaveTicket> {
        use std::sync::atomic::Ordering;
        self.saving
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SAVING).then_some(n + 1)
            })
            .ok()
            .map(|_| SaveTicket(self.saving.clone()))
    }

    /// Counts a project state taken back.
    pub(super) fn note_restored(&self) {
        self.restored
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits until the moves queued so far are written.
    pub async fn moves_written(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        self.later(move || {
            let _ = done.send(());
        });
        let _ = written.await;
    }

    /// Writes `batch` (the projects' states, from
    /// [`ProjectCold::snapshot`]) and marks the store clean, durably: the
    /// next [`ColdStore::open`] keeps it. Called once, at a clean shutdown,
    /// when nothing else writes any more.
    pub fn seal(&self, mut batch: Batch) -> Result<(), CommandError> {
        batch.push((CLEAN.to_vec(), Some(Vec::new())));
        self.kv.write_durably(&batch)?;
        self.kv
            .keep
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Keeps at most `records` freight, promotions and aliases and
    /// `commands` idempotency keys of a project in memory (tests use tiny
    /// numbers to move nearly everything out).
    #[doc(hidden)]
    pub fn with_hot(mut self, records: usize, commands: usize) -> ColdStore {
        self.hot = records;
        self.hot_commands = commands;
        self
    }

    fn floors(&self) -> std::sync::MutexGuard<'_, Floors> {
        // A poisoned lock only means a panic elsewhere; the map is whole.
        self.floors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `job` on the mover thread, after the jobs before it.
    pub fn later(&self, job: impl FnOnce() + Send + 'static) {
        // The thread ends only when every sender is gone, and this is one.
        let _ = self.mover.send(Box::new(job));
    }

    /// The records of `project`.
    pub fn project<'a>(&'a self, project: &'a str) -> ProjectCold<'a> {
        ProjectCold {
            store: self,
            project,
        }
    }
}

/// One project's records in a [`ColdStore`].
#[derive(Debug, Clone, Copy)]
pub struct ProjectCold<'a> {
    store: &'a ColdStore,
    project: &'a str,
}

/// What a move to the store takes out of a project's state: copies of the
/// records, serialized and written without the state.
#[derive(Debug, Default)]
pub struct Spill {
    freight: Vec<Freight>,
    promotions: Vec<Promotion>,
    aliases: Vec<(String, String)>,
    commands: Vec<(CommandKey, CommandOutcome)>,
    /// The project's clears when it was planned.
    clears: u64,
}

impl Spill {
    /// Whether there is anything to move.
    pub fn is_empty(&self) -> bool {
        self.freight.is_empty()
            && self.promotions.is_empty()
            && self.aliases.is_empty()
            && self.commands.is_empty()
    }

    /// Lets memory go of the records the store now holds, each unless it
    /// changed since it was written (it stays, and is written again by a
    /// later move).
    fn release(self, state: &mut ProjectState) {
        for f in self.freight {
            if state.freight.get(&f.id).is_some_and(|m| **m == f) {
                state.freight.remove(&f.id);
                state.by_discovery.remove(&(f.discovered_at, f.id));
            }
        }
        for (alias, id) in self.aliases {
            if state.aliases.get(&alias) == Some(&id) {
                state.aliases.remove(&alias);
            }
        }
        for p in self.promotions {
            if state.promotions.get(&p.id).is_some_and(|m| **m == p) {
                state.promotions.remove(&p.id);
            }
        }
        if !self.commands.is_empty() {
            for (k, _) in &self.commands {
                state.commands.remove(k);
            }
            // Give back the room of the keys that left.
            state.commands.shrink_to_fit();
        }
    }
}

/// `kind`, the project, a zero byte, then `rest` (names never hold a zero
/// byte, so one project's keys never prefix another's).
fn key(kind: u8, project: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + project.len() + rest.len());
    k.push(kind);
    k.extend_from_slice(project.as_bytes());
    k.push(0);
    k.extend_from_slice(rest);
    k
}

/// A discovery time, ordered as its bytes.
fn time_key(t: DateTime<Utc>) -> [u8; 12] {
    let mut out = [0u8; 12];
    let secs = (t.timestamp() as u64) ^ (1 << 63);
    out[..8].copy_from_slice(&secs.to_be_bytes());
    out[8..].copy_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
    out
}

fn text(v: &[u8]) -> Result<String, CommandError> {
    String::from_utf8(v.to_vec())
        .map_err(|_| CommandError::Internal("command state store: a key is not UTF-8".into()))
}

impl Cold for ProjectCold<'_> {
    type Error = CommandError;

    fn freight(&self, id: &str) -> Result<Option<Freight>, CommandError> {
        self.json(key(FREIGHT, self.project, id.as_bytes()))
    }

    fn promotion(&self, id: &str) -> Result<Option<Promotion>, CommandError> {
        self.json(key(PROMOTION, self.project, id.as_bytes()))
    }

    fn newest_first(
        &self,
        stage: &StageDef,
    ) -> Box<dyn Iterator<Item = Result<String, CommandError>> + '_> {
        let prefix = key(DISCOVERY, self.project, b"");
        let skip = prefix.len() + 12;
        // Above the stage's floor, nothing is available: start there.
        let floor = self.store.floors().get(self.project).and_then(|f| {
            f.iter()
                .find(|(def, _)| def == stage)
                .map(|(_, floor)| floor.clone())
        });
        let end = match floor {
            Some(floor) => [prefix.as_slice(), &floor, &[0]].concat(),
            None => [prefix.as_slice(), &[0xff; 13]].concat(),
        };
        Box::new(
            backwards(&self.store.kv, prefix, end)
                .map(move |kv| text(kv?.0.get(skip..).unwrap_or_default())),
        )
    }

    fn scanned(&self, stage: &StageDef, until: Option<(DateTime<Utc>, &str)>) {
        let floor = until
            .map(|(at, id)| discovery_key(at, id))
            .unwrap_or_default();
        let mut floors = self.store.floors();
        let mine = floors.entry(self.project.to_string()).or_default();
        match mine.iter_mut().find(|(def, _)| def == stage) {
            Some((_, f)) => *f = floor,
            None => mine.push((stage.clone(), floor)),
        }
    }
}

/// A freight's key suffix under `DISCOVERY`: its discovery time, then id.
fn discovery_key(at: DateTime<Utc>, id: &str) -> Vec<u8> {
    [&time_key(at)[..], id.as_bytes()].concat()
}

impl ProjectCold<'_> {
    fn json<T: serde::de::DeserializeOwned>(&self, k: Vec<u8>) -> Result<Option<T>, CommandError> {
        match self.store.kv.get(&k)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// How many times the project's records were cleared.
    pub(super) fn clears(&self) -> u64 {
        let clears = self.store.clears.lock().unwrap_or_else(|p| p.into_inner());
        clears.get(self.project).copied().unwrap_or(0)
    }

    /// Removes every record of the project (its state is folded again).
    pub fn clear(&self) -> Result<(), CommandError> {
        self.store.floors().remove(self.project);
        *self
            .store
            .clears
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(self.project.to_string())
            .or_default() += 1;
        for kind in KINDS {
            let prefix = key(kind, self.project, b"");
            let end = [prefix.as_slice(), &[0xff]].concat();
            loop {
                let keys = self.store.kv.last(&prefix, &end, 4096)?;
                if keys.is_empty() {
                    break;
                }
                self.store
                    .kv
                    .write(&keys.into_iter().map(|(k, _)| (k, None)).collect::<Vec<_>>())?;
            }
        }
        Ok(())
    }

    /// What [`ColdStore::seal`] writes of `state` (this project's, folded up
    /// to the event whose chain hash is `hash`): the state, and the
    /// idempotency keys it holds in memory (which a state's serialization
    /// leaves out).
    pub fn snapshot(&self, state: &ProjectState, hash: &ChainHash) -> Result<Batch, CommandError> {
        let mut batch: Vec<_> = state
            .commands
            .iter()
            .map(|(k, o)| {
                let v = [&o.position.0.to_be_bytes()[..], o.event_id.as_bytes()].concat();
                (key(COMMAND, self.project, k.bytes()), Some(v))
            })
            .collect();
        let snapshot = Snapshot {
            format: SNAPSHOT_FORMAT.to_string(),
            hash: hash.to_hex(),
            state,
        };
        batch.push((
            key(SNAPSHOT, self.project, b""),
            Some(serde_json::to_vec(&snapshot)?),
        ));
        Ok(batch)
    }

    /// Writes what [`ProjectCold::snapshot`] gives for `state` unless the
    /// project's records were cleared since their count was `clears`;
    /// whether it wrote. For a state dropped from the cache: the project's
    /// next command takes it back.
    pub(super) fn hibernate(
        &self,
        state: &ProjectState,
        hash: &ChainHash,
        clears: u64,
    ) -> Result<bool, CommandError> {
        let batch = self.snapshot(state, hash)?;
        self.store.kv.write_if(&batch, || self.clears() == clears)
    }

    /// The project's state a clean shutdown left, and the chain hash of the
    /// event it was folded up to, removed from the store (it is taken back
    /// once: after that the records change with the state).
    pub fn take_snapshot(&self) -> Result<Option<(ProjectState, ChainHash)>, CommandError> {
        let k = key(SNAPSHOT, self.project, b"");
        let Some(v) = self.store.kv.get(&k)? else {
            return Ok(None);
        };
        self.store.kv.write(&[(k, None)])?;
        #[derive(serde::Deserialize)]
        struct Format {
            format: String,
        }
        let format = serde_json::from_slice::<Format>(&v).ok().map(|f| f.format);
        if let Some(format) = format.filter(|f| f != SNAPSHOT_FORMAT) {
            tracing::info!(
                project = self.project,
                saved_by = format,
                "the saved command state is of another release; folding the project's log"
            );
            return Ok(None);
        }
        let snapshot: Snapshot<ProjectState> = match serde_json::from_slice(&v) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(project = self.project, error = %e, "cannot read the saved command state; folding the project's log");
                return Ok(None);
            }
        };
        let Some(hash) = ChainHash::from_hex(&snapshot.hash) else {
            return Ok(None);
        };
        let mut state = snapshot.state;
        state.reindex();
        Ok(Some((state, hash)))
    }

    /// The freight id `alias` names, if it was moved here.
    pub fn alias(&self, alias: &str) -> Result<Option<String>, CommandError> {
        match self
            .store
            .kv
            .get(&key(ALIAS, self.project, alias.as_bytes()))?
        {
            Some(v) => Ok(Some(text(&v)?)),
            None => Ok(None),
        }
    }

    /// What the command with key `k` produced, if it was moved here.
    pub fn command(&self, k: &CommandKey) -> Result<Option<CommandOutcome>, CommandError> {
        let Some(v) = self.store.kv.get(&key(COMMAND, self.project, k.bytes()))? else {
            return Ok(None);
        };
        let bad = || CommandError::Internal("command state store: bad command record".into());
        let position = v.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
        let event_id = v
            .get(8..24)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        Ok(Some(CommandOutcome {
            position: Position(u64::from_be_bytes(position)),
            event_id: uuid::Uuid::from_bytes(event_id),
        }))
    }

    /// The ids of the succeeded promotions into `stage` moved here, the
    /// latest request first.
    fn succeeded_newest_first(
        &self,
        stage: &str,
    ) -> impl Iterator<Item = Result<String, CommandError>> + '_ {
        let mut rest = stage.as_bytes().to_vec();
        rest.push(0);
        let prefix = key(SUCCEEDED, self.project, &rest);
        let end = [prefix.as_slice(), &[0xff]].concat();
        backwards(&self.store.kv, prefix, end).map(|kv| text(&kv?.1))
    }

    /// Whether `state` holds more than the store's limits (so that
    /// [`ProjectCold::spill`] has something to do).
    pub fn over(&self, state: &ProjectState) -> bool {
        let hot = self.store.hot;
        state.freight.len() > hot
            || state.aliases.len() > hot
            || state.promotions.len() > hot
            || state.commands.len() > self.store.hot_commands
    }

    /// Moves out of `state` what its working set does not need, once it
    /// holds more than the store's limits: [`ProjectCold::plan`], write,
    /// [`ProjectCold::release`]. with `state` held throughout.
    pub fn spill(&self, state: &mut ProjectState) -> Result<(), CommandError> {
        let spill = self.plan(state);
        if self.write(&spill)? {
            self.release(spill, state);
        }
        Ok(())
    }

    /// What to move out of `state`, once it holds more than the store's
    /// limits: the oldest freight that no stage runs and the oldest
    /// finished promotions (all but the newest `HOT - MOVE`), aliases, and
    /// idempotency keys. Raises the floors
    /// of the freight it moves (see [`Cold::scanned`]) at once: they only
    /// say what the store holds above them is unavailable, and a higher
    /// floor is scanned from sooner.
    pub fn plan(&self, state: &ProjectState) -> Spill {
        let (project, hot) = (self.project, self.store.hot);
        let mut spill = Spill {
            clears: self.clears(),
            ..Spill::default()
        };
        // What stays of each kind: the newest, up to this many.
        let stay = hot - MOVE.min(hot / 2);
        if state.freight.len() > hot {
            let mut keep: BTreeSet<&str> = state
                .stages
                .values()
                .filter_map(|s| s.current.as_ref().map(|c| c.freight.as_str()))
                .collect();
            keep.extend(
                state
                    .by_discovery
                    .iter()
                    .rev()
                    .take(stay)
                    .map(|(_, id)| id.as_str()),
            );
            spill.freight = state
                .freight
                .values()
                .filter(|f| !keep.contains(f.id.as_str()))
                .map(|f| (**f).clone())
                .collect();
        }
        // A freight that leaves memory available to a stage, above the
        // stage's floor, raises the floor to itself.
        let mut floors = self.store.floors();
        if let Some(mine) = floors.get_mut(project) {
            for (def, floor) in mine.iter_mut() {
                for f in &spill.freight {
                    let k = discovery_key(f.discovered_at, &f.id);
                    // Running nowhere, its soak is fixed: any time will do.
                    let may_be_available = f.verified_in.values().any(|v| v.since.is_some())
                        || available_to(f, def, f.discovered_at).is_ok();
                    if k > *floor && may_be_available {
                        *floor = k;
                    }
                }
            }
        }
        drop(floors);
        if state.aliases.len() > hot {
            spill.aliases = state
                .aliases
                .iter()
                .map(|(a, id)| (a.clone(), id.clone()))
                .collect();
        }
        if state.promotions.len() > hot {
            let mut finished: Vec<&Promotion> = state
                .promotions
                .values()
                .filter(|p| !p.status.is_active())
                .map(|p| &**p)
                .collect();
            finished.sort_unstable_by_key(|p| p.requested);
            let out = finished.len().saturating_sub(stay);
            spill.promotions = finished[..out].iter().map(|p| (*p).clone()).collect();
        }
        if state.commands.len() > self.store.hot_commands {
            spill.commands = state.commands.iter().map(|(k, o)| (*k, *o)).collect();
        }
        spill
    }

    /// Lets `state` (locked since the project's records were last cleared,
    /// as when `spill` was planned) go of the records `spill` wrote.
    pub fn release(&self, spill: Spill, state: &mut ProjectState) {
        if self.clears() == spill.clears {
            spill.release(state);
        }
    }

    /// Writes what `spill` moves out, atomically, unless the project's
    /// records were cleared since it was planned; whether it wrote. The
    /// state it was planned on need not be held meanwhile: memory keeps the
    /// records until [`ProjectCold::release`].
    pub fn write(&self, spill: &Spill) -> Result<bool, CommandError> {
        let project = self.project;
        let mut batch = Vec::new();
        for f in &spill.freight {
            let at = discovery_key(f.discovered_at, &f.id);
            batch.push((key(DISCOVERY, project, &at), Some(Vec::new())));
            batch.push((
                key(FREIGHT, project, f.id.as_bytes()),
                Some(serde_json::to_vec(f)?),
            ));
        }
        for (alias, id) in &spill.aliases {
            batch.push((
                key(ALIAS, project, alias.as_bytes()),
                Some(id.as_bytes().to_vec()),
            ));
        }
        for p in &spill.promotions {
            if p.status == PromotionStatus::Succeeded {
                let at = [p.stage.as_bytes(), &[0], &p.requested.0.to_be_bytes()].concat();
                batch.push((key(SUCCEEDED, project, &at), Some(p.id.as_bytes().to_vec())));
            }
            batch.push((
                key(PROMOTION, project, p.id.as_bytes()),
                Some(serde_json::to_vec(p)?),
            ));
        }
        for (k, o) in &spill.commands {
            let v = [&o.position.0.to_be_bytes()[..], o.event_id.as_bytes()].concat();
            batch.push((key(COMMAND, project, k.bytes()), Some(v)));
        }
        self.store
            .kv
            .write_if(&batch, || self.clears() == spill.clears)
    }

    /// Puts freight `id_or_alias` in memory, by id or by alias.
    fn load_named(&self, state: &mut ProjectState, id_or_alias: &str) -> Result<(), CommandError> {
        if working_set::load_freight(self, state, id_or_alias)? {
            return Ok(());
        }
        self.load_alias(state, id_or_alias)
    }

    /// Puts `alias` (and the freight it names) in memory unless it is there.
    fn load_alias(&self, state: &mut ProjectState, alias: &str) -> Result<(), CommandError> {
        let id = match state.aliases.get(alias) {
            Some(id) => id.clone(),
            None => match self.alias(alias)? {
                Some(id) => {
                    state.aliases.insert(alias.to_string(), id.clone());
                    id
                }
                None => return Ok(()),
            },
        };
        working_set::load_freight(self, state, &id)?;
        Ok(())
    }
}

/// Loads into `state` what deciding `command` at `now` reads, so that the
/// decision equals the one taken with every record in memory. `command_id`
/// is its idempotency key, if it may have been used before (`None`: made up
/// for this command).
pub fn load_for_command(
    cold: &ProjectCold<'_>,
    state: &mut ProjectState,
    command: &Command,
    command_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), CommandError> {
    if let Some(id) = command_id {
        let k = CommandKey::of(id);
        if let std::collections::hash_map::Entry::Vacant(slot) = state.commands.entry(k) {
            if let Some(outcome) = cold.command(&k)? {
                slot.insert(outcome);
            }
        }
    }
    match command {
        Command::ApplyPipeline { .. } => {}
        Command::RecordDiscovery {
            warehouse,
            artifacts,
            alias,
        } => {
            working_set::load_freight(cold, state, &freight_id(warehouse, artifacts))?;
            if !alias.is_empty() {
                cold.load_named(state, alias)?;
            }
        }
        Command::RecordVerification { freight, .. } | Command::ApproveFreight { freight, .. } => {
            cold.load_named(state, freight)?;
        }
        Command::RequestPromotion { stage, freight, .. } => match freight {
            FreightSelector::Named(name) => cold.load_named(state, name)?,
            FreightSelector::NewestAvailable => {
                let def = state.definition().and_then(|d| d.stage(stage)).cloned();
                if let Some(def) = def {
                    working_set::load_newest_available(cold, state, &def, now)?;
                }
            }
        },
        Command::ApprovePromotion { promotion, .. }
        | Command::RejectPromotion { promotion, .. }
        | Command::AbortPromotion { promotion, .. }
        | Command::ReportPromotionResult { promotion, .. } => {
            if working_set::load_promotion(cold, state, promotion)? {
                let freight = state.promotions.get(promotion).map(|p| p.freight.clone());
                if let Some(freight) = freight {
                    working_set::load_freight(cold, state, &freight)?;
                }
            }
        }
        Command::Rollback { stage, .. } => load_rollback(cold, state, stage, now)?,
    }
    Ok(())
}

/// Loads the stage's succeeded promotions, latest first, with their freight,
/// until one that a rollback may pick (its freight is not current there and
/// still available): the promotions a rollback decision compares.
fn load_rollback(
    cold: &ProjectCold<'_>,
    state: &mut ProjectState,
    stage: &str,
    now: DateTime<Utc>,
) -> Result<(), CommandError> {
    let Some(def) = state.definition().and_then(|d| d.stage(stage)).cloned() else {
        return Ok(());
    };
    let current = state
        .stages
        .get(stage)
        .and_then(|s| s.current.as_ref())
        .map(|c| c.freight.clone());
    // Is the freight of promotion `id` (loaded with it) one to roll back to?
    let target = |state: &mut ProjectState, id: &str| -> Result<bool, CommandError> {
        working_set::load_promotion(cold, state, id)?;
        let Some(freight) = state.promotions.get(id).map(|p| p.freight.clone()) else {
            return Ok(false);
        };
        working_set::load_freight(cold, state, &freight)?;
        Ok(Some(&freight) != current.as_ref()
            && state
                .freight
                .get(&freight)
                .is_some_and(|f| available_to(f, &def, now).is_ok()))
    };
    // Those kept here, then those in memory, each down to the first target:
    // the rollback's pick is the later of the two.
    for id in cold.succeeded_newest_first(stage) {
        if target(state, &id?)? {
            break;
        }
    }
    let mut succeeded: Vec<(Position, String)> = state
        .promotions
        .values()
        .filter(|p| p.stage == stage && p.status == PromotionStatus::Succeeded)
        .map(|p| (p.requested, p.id.clone()))
        .collect();
    succeeded.sort_unstable_by(|a, b| b.cmp(a));
    for (_, id) in succeeded {
        if target(state, &id)? {
            break;
        }
    }
    Ok(())
}

/// Loads into `state` the freight auto-promotion would pick at `now` for
/// each stage where it picks the newest available.
pub fn load_auto_candidates(
    cold: &ProjectCold<'_>,
    state: &mut ProjectState,
    now: DateTime<Utc>,
) -> Result<(), CommandError> {
    let stages: Vec<_> = state
        .definition()
        .map(|d| {
            d.stages
                .iter()
                .filter(|s| working_set::picks_newest(s))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for def in stages {
        working_set::load_newest_available(cold, state, &def, now)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_saving_dropped_states_wait_to_be_saved() -> Result<(), CommandError> {
        let dir = tempfile::tempdir().map_err(|e| CommandError::Internal(e.to_string()))?;
        let store = ColdStore::open(&dir.path().join("store"))?;
        let mut tickets: Vec<_> = (0..MAX_SAVING).map_while(|_| store.save_ticket()).collect();
        assert_eq!(tickets.len(), MAX_SAVING);
        assert!(store.save_ticket().is_none());
        tickets.pop();
        assert!(
            store.save_ticket().is_some(),
            "a place given back is taken again"
        );
        Ok(())
    }

    #[test]
    fn a_state_saved_by_another_release_is_not_taken_back() -> Result<(), CommandError> {
        let dir = tempfile::tempdir().map_err(|e| CommandError::Internal(e.to_string()))?;
        let store = ColdStore::open(&dir.path().join("store"))?;
        let project = store.project("p");
        let mut state = ProjectState::new("p");
        state.seq = 3;
        state.position = Position(7);
        let hash = ChainHash([7; 32]);

        store.seal(project.snapshot(&state, &hash)?)?;
        assert_eq!(project.take_snapshot()?, Some((state.clone(), hash)));
        assert_eq!(store.snapshots()?, 0, "taken back once");

        let mut batch = project.snapshot(&state, &hash)?;
        for (k, v) in &mut batch {
            if k[0] == SNAPSHOT {
                let mut json: serde_json::Value =
                    serde_json::from_slice(v.as_deref().unwrap_or_default())?;
                json["format"] = "0.0.1/1".into();
                *v = Some(serde_json::to_vec(&json)?);
            }
        }
        store.seal(batch)?;
        assert_eq!(store.snapshots()?, 1);
        assert_eq!(project.take_snapshot()?, None);
        assert_eq!(store.snapshots()?, 0);
        Ok(())
    }
}
