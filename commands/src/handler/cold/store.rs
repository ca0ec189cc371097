//! The store of every project: opening it (kept only if the last process
//! sealed it), the thread that writes moves, and the seal at shutdown.

use super::*;

/// Per project, each stage's definition and floor.
pub(super) type Floors = HashMap<String, Vec<(StageDef, Vec<u8>)>>;

/// The records the cached project states leave out, in a redb database of
/// their own. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ColdStore {
    pub(super) kv: Arc<Kv>,
    pub(super) hot: usize,
    pub(super) hot_commands: usize,
    /// Per project, per stage looked for: a discovery key (as stored under
    /// `DISCOVERY`) above which every freight kept here is unavailable to
    /// the stage, as defined then.
    pub(super) floors: Arc<Mutex<Floors>>,
    /// Per project, its clears and moves (see [`Moves`]).
    pub(super) moves: Arc<Mutex<HashMap<String, Moves>>>,
    /// The mover thread's queue.
    pub(super) mover: std::sync::mpsc::Sender<Job>,
    /// Project states taken back from a clean shutdown.
    pub(super) restored: Arc<std::sync::atomic::AtomicU64>,
    /// Dropped project states waiting to be saved (see [`SaveTicket`]).
    pub(super) saving: Arc<std::sync::atomic::AtomicUsize>,
}

/// What orders the writes of one project's records.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Moves {
    /// How many times the records were cleared: a move planned before a
    /// clear is not written after it.
    pub(super) clears: u64,
    /// The number of the last move planned (each takes the next).
    pub(super) planned: u64,
    /// The number of the newest move written: one planned before it is not
    /// written after it. Moves are planned in turn on the state but written
    /// by two writers (a command's catch-up writes its own, the mover thread
    /// the others), so an older one may come to be written last; it would
    /// put back records as they were before the newer one wrote them.
    pub(super) written: u64,
}

/// Dropped project states that may wait to be saved at once: each holds its
/// memory until the low-priority mover writes it, so beyond this (the
/// commands keep the CPU busy) a dropped state is let go unsaved, and
/// folded again when next needed.
pub(super) const MAX_SAVING: usize = 64;

/// One of the `MAX_SAVING` places for a dropped state being saved, given
/// back when dropped.
#[derive(Debug)]
pub struct SaveTicket(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for SaveTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Work for the mover thread.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// Starts the thread that runs moves to the store, at the lowest CPU
/// priority (nice 19): a move then takes only CPU the commands leave, so it
/// does not lengthen them (on two cores, moves run beside the commands at
/// normal priority raised the 1-client p99 from about 350 µs to 900). It
/// ends when every sender is gone.
pub(super) fn start_mover() -> Result<std::sync::mpsc::Sender<Job>, CommandError> {
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
            moves: Arc::default(),
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
    pub(in crate::handler) fn save_ticket(&self) -> Option<SaveTicket> {
        use std::sync::atomic::Ordering;
        self.saving
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SAVING).then_some(n + 1)
            })
            .ok()
            .map(|_| SaveTicket(self.saving.clone()))
    }

    /// Counts a project state taken back.
    pub(in crate::handler) fn note_restored(&self) {
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

    pub(super) fn floors(&self) -> std::sync::MutexGuard<'_, Floors> {
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
