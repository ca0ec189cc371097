//! The embedded backend: the same log on sled, for a single process with
//! nothing else installed. Same semantics as JetStream: per-project optimistic
//! concurrency, idempotent command ids (kept forever, not just for a window),
//! global order, live tail, hash chain. Durable on acknowledgement (fsync).

mod keys;
mod reader;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::chain::ChainHead;
use crate::envelope::{Appended, NewEvent, StoredEvent};
use crate::error::LedgerError;
use crate::log::{EventLog, EventStream, Position};
use crate::name::ProjectName;

/// Appends waiting for the writer before callers are made to wait.
const QUEUE_DEPTH: usize = 4096;

/// The sled tree that holds the log.
const LOG_TREE: &[u8] = b"log";

/// Whether sled refused to open a database because another process holds
/// its lock (sled allows one process per database).
pub fn is_locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock"))
}

/// Opens a sled database, waiting up to a second for its lock: a
/// database this process closed a moment ago may still be held by a read
/// that was under way (a read on the blocking pool holds the store until it
/// ends, within milliseconds), and is not another process's.
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    let mut opened = config.open();
    while matches!(&opened, Err(e) if is_locked(e)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        opened = config.open();
    }
    opened
}

/// `dir` (which `exists` or not) holds no log to read.
fn no_log(dir: &Path, exists: bool) -> LedgerError {
    let what = if exists {
        "holds no Waybill log"
    } else {
        "does not exist"
    };
    LedgerError::Misconfigured(format!(
        "{} {what}: nothing to read (check --data-dir; `waybill serve --data-dir {}` creates \
         a log there, and --nats reads a JetStream one)",
        dir.display(),
        dir.display()
    ))
}

/// The file beside the log that records a position the log had reached:
/// sled reads a log damaged on disk as one that ends where the damage
/// starts, without an error, and a log never gets shorter otherwise.
const REACHED_FILE: &str = "reached";

/// How often the writer records how far the log has reached (and once more
/// when it stops).
const MARK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Records that the log in `dir` reached `head` (durable already): a
/// temporary file, synced, renamed over the last. A failure is logged: the
/// record is a check on the log, not part of it.
pub(crate) fn mark_reached(dir: &Path, head: Position) {
    let tmp = dir.join(format!("{REACHED_FILE}.tmp"));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, format!("{}\n", head.0).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(REACHED_FILE))
    })();
    if let Err(e) = written {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot record how far the log reached");
    }
}

/// Records, about once every [`MARK_EVERY`], how far the log in `dir`
/// reached, as the writer publishes its head (after each batch is on disk),
/// until the writer stops; then once more.
fn mark_while_open(dir: &Path, mut head: watch::Receiver<Position>) {
    loop {
        std::thread::sleep(MARK_EVERY);
        match head.has_changed() {
            Ok(false) => {}
            Ok(true) => mark_reached(dir, *head.borrow_and_update()),
            Err(_) => {
                // The writer stopped; its last batch is on disk.
                mark_reached(dir, *head.borrow());
                return;
            }
        }
    }
}

/// The position `<dir>/reached` records, if it reads.
fn reached(dir: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(dir.join(REACHED_FILE)).ok()?;
    match text.trim().parse() {
        Ok(p) => Some(Position(p)),
        Err(_) => {
            tracing::warn!(dir = %dir.display(), "the record of how far the log reached does not read; ignored");
            None
        }
    }
}

/// A log that reads shorter than it had reached.
fn shorter_than_reached(dir: &Path, head: Position, reached: Position) -> LedgerError {
    LedgerError::Misconfigured(format!(
        "the embedded log in {} ends at position {head}, but it had reached position \
         {reached} ({}): it is damaged (sled reads a damaged log as ending where the damage \
         starts). Restore it from a backup into an empty data dir (`waybill copy --data-dir \
         BACKUP --to-data-dir NEW`; see \"Restoring\" in docs/operations.md), and keep these \
         files for inspection",
        dir.display(),
        dir.join(REACHED_FILE).display()
    ))
}

/// Why the log in `dir` did not open, and what to do (`create`: a server
/// opening it, rather than a command that reads it).
fn open_error(e: sled::Error, dir: &Path, create: bool) -> LedgerError {
    match e {
        e if is_locked(&e) => {
            // Only one process at a time can open an embedded log.
            let what_to_do = if create {
                "stop it or choose another --data-dir"
            } else {
                "stop it first (a running server's ledger is checked with `waybill \
                         export` then `waybill verify-export`, and copied as it is written \
                         with `waybill serve --backup-dir`)"
            };
            LedgerError::Misconfigured(format!(
                "the data dir {} is in use by another Waybill process; {what_to_do}",
                dir.display()
            ))
        }
        sled::Error::Corruption { .. } => LedgerError::Misconfigured(format!(
            "the embedded log in {} is damaged (its files do not read): restore it from a \
                 backup into an empty data dir (`waybill copy --data-dir BACKUP --to-data-dir \
                 NEW`; see \"Restoring\" in docs/operations.md), and keep these files for \
                 inspection",
            dir.display()
        )),
        other => LedgerError::Misconfigured(format!(
            "cannot open the embedded log in {}: {other}",
            dir.display()
        )),
    }
}

/// The sled-backed event log. Cheap to clone.
#[derive(Clone)]
pub struct SledLog {
    inner: Arc<Inner>,
}

struct Inner {
    dir: std::path::PathBuf,
    db: sled::Db,
    tree: sled::Tree,
    tx: mpsc::Sender<writer::Request>,
    head_rx: watch::Receiver<Position>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// How long opening waits for a lock before saying another process holds
/// the log.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for SledLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledLog")
            .field("head", &*self.inner.head_rx.borrow())
            .finish()
    }
}

impl SledLog {
    /// sled's page cache for the log when none is given (sled's own default is 1 GiB).
    pub const DEFAULT_CACHE_BYTES: u64 = 128 * 1024 * 1024;

    /// Opens (or creates) the log in `dir`. Blocking: call at start-up.
    pub fn open(dir: &Path) -> Result<SledLog, LedgerError> {
        SledLog::open_with_cache(dir, SledLog::DEFAULT_CACHE_BYTES)
    }

    /// [`SledLog::open`] with a page cache of `cache_bytes` (a process that
    /// only reads the log through once needs little).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledLog, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            LedgerError::Misconfigured(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        SledLog::open_in(dir, cache_bytes, true)
    }

    /// Opens the log in `dir` only if one is there, for commands that read
    /// it: a mistyped directory is an error rather than a new, empty log,
    /// and nothing is created. Blocking.
    pub fn open_existing(dir: &Path, cache_bytes: u64) -> Result<SledLog, LedgerError> {
        // sled keeps its pages in `db`; opening a directory without it creates one.
        if !dir.join("db").is_file() {
            return Err(no_log(dir, dir.exists()));
        }
        SledLog::open_in(dir, cache_bytes, false)
    }

    /// Opens sled in `dir` and the log tree, which is created only if `create`.
    fn open_in(dir: &Path, cache_bytes: u64, create: bool) -> Result<SledLog, LedgerError> {
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        let db = open_sled(&config).map_err(|e| open_error(e, dir, create))?;
        let has_log = db.tree_names().iter().any(|n| n == LOG_TREE);
        if !has_log {
            if let Some(reached) = reached(dir).filter(|r| *r > Position::ZERO) {
                return Err(shorter_than_reached(dir, Position::ZERO, reached));
            }
            if !create {
                return Err(no_log(dir, true));
            }
        }
        let tree = db.open_tree(LOG_TREE)?;
        let head = match tree.get(keys::HEAD)? {
            Some(v) => keys::decode_pos(&v)
                .ok_or_else(|| LedgerError::Storage("corrupt head key".into()))?,
            None => Position::ZERO,
        };
        if let Some(reached) = reached(dir).filter(|r| head < *r) {
            return Err(shorter_than_reached(dir, head, reached));
        }
        let (head_tx, head_rx) = watch::channel(head);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let writer_tree = tree.clone();
        let writer = std::thread::Builder::new()
            .name("waybill-sled-writer".into())
            .spawn(move || writer::run(writer_tree, rx, head_tx))
            .map_err(|e| LedgerError::Storage(format!("cannot start writer thread: {e}")))?;
        // Off the writer's thread: a synced file write would hold up the
        // appends behind it.
        let (marker_dir, marker_rx) = (dir.to_path_buf(), head_rx.clone());
        std::thread::Builder::new()
            .name("waybill-sled-reached".into())
            .spawn(move || mark_while_open(&marker_dir, marker_rx))
            .map_err(|e| LedgerError::Storage(format!("cannot start a thread: {e}")))?;
        tracing::info!(dir = %dir.display(), head = head.0, "opened embedded log");
        Ok(SledLog {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                db,
                tree,
                tx,
                head_rx,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// Flushes the store to disk. Appends are already durable; this also
    /// settles sled's own bookkeeping before a clean shutdown, and records
    /// how far the log reached (`<dir>/reached`, checked when it is opened).
    pub async fn flush(&self) -> Result<(), LedgerError> {
        let (db, dir) = (self.inner.db.clone(), self.inner.dir.clone());
        let head = *self.inner.head_rx.borrow();
        tokio::task::spawn_blocking(move || {
            db.flush()?;
            mark_reached(&dir, head);
            Ok::<_, sled::Error>(())
        })
        .await
        .map_err(|e| LedgerError::Storage(e.to_string()))?
        .map_err(LedgerError::from)
    }

    /// The raw tree, for tests that tamper with the store behind Waybill's back.
    #[doc(hidden)]
    pub fn raw_tree(&self) -> sled::Tree {
        self.inner.tree.clone()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The sender is dropped with `self`, but the writer also holds nothing
        // else; closing the channel ends its loop. Join it so the last batch is
        // committed before sled closes.
        let (dead_tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut self.tx, dead_tx));
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        let _ = self.db.flush();
    }
}

impl SledLog {
    /// Hands `request` to the writer and waits for its answer.
    async fn request<T>(
        &self,
        request: writer::Request,
        answer: oneshot::Receiver<Result<T, LedgerError>>,
    ) -> Result<T, LedgerError> {
        self.inner
            .tx
            .send(request)
            .await
            .map_err(|_| LedgerError::Unavailable("the embedded log is closed".into()))?;
        answer
            .await
            .map_err(|_| LedgerError::Unavailable("the embedded log writer stopped".into()))?
    }
}

#[async_trait]
impl EventLog for SledLog {
    async fn append(
        &self,
        project: &ProjectName,
        expected: Position,
        event: NewEvent,
    ) -> Result<Appended, LedgerError> {
        event.payload.validate()?;
        let (reply, rx) = oneshot::channel();
        let request = writer::Request::Append(Box::new(writer::AppendRequest {
            project: project.clone(),
            expected,
            event,
            reply,
        }));
        self.request(request, rx).await
    }

    async fn append_copies(&self, records: &[StoredEvent]) -> Result<Position, LedgerError> {
        if records.is_empty() {
            return self.head().await;
        }
        let (reply, rx) = oneshot::channel();
        let request = writer::Request::Copy(writer::CopyRequest {
            records: records.to_vec(),
            reply,
        });
        self.request(request, rx).await
    }

    async fn append_foreign_copy(
        &self,
        record: &crate::ForeignRecord,
    ) -> Result<Position, LedgerError> {
        let (reply, rx) = oneshot::channel();
        let request = writer::Request::Foreign(Box::new(writer::ForeignCopyRequest {
            record: record.clone(),
            reply,
        }));
        self.request(request, rx).await
    }

    async fn project_head(&self, project: &ProjectName) -> Result<ChainHead, LedgerError> {
        match self.inner.tree.get(keys::project(project.as_str()))? {
            Some(v) => keys::decode_head(&v)
                .ok_or_else(|| LedgerError::Storage("corrupt project head".into())),
            None => Ok(ChainHead::EMPTY),
        }
    }

    async fn head(&self) -> Result<Position, LedgerError> {
        Ok(*self.inner.head_rx.borrow())
    }

    async fn read_project(
        &self,
        project: &ProjectName,
        from: Position,
    ) -> Result<EventStream, LedgerError> {
        let end = self.project_head(project).await?.position;
        Ok(reader::project_stream(
            self.inner.tree.clone(),
            project.as_str().to_string(),
            from,
            end,
        ))
    }

    async fn next_event(
        &self,
        project: &ProjectName,
        from: Position,
    ) -> Result<Option<StoredEvent>, LedgerError> {
        reader::next_in_project(&self.inner.tree, project.as_str(), from.max(Position(1)))
    }

    async fn read_all(&self, from: Position) -> Result<EventStream, LedgerError> {
        let end = *self.inner.head_rx.borrow();
        Ok(reader::range_stream(self.inner.tree.clone(), from, end))
    }

    async fn tail(&self, from: Position) -> Result<EventStream, LedgerError> {
        Ok(reader::tail_stream(
            self.inner.tree.clone(),
            from,
            self.inner.head_rx.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_log_says_what_to_do() {
        let dir = Path::new("/srv/waybill-data");
        let damaged = sled::Error::Corruption { at: None, bt: () };
        let said = open_error(damaged, dir, true).to_string();
        assert!(
            said.starts_with("the embedded log in /srv/waybill-data is damaged"),
            "{said}"
        );
        assert!(said.contains("waybill copy --data-dir BACKUP"), "{said}");
    }
}
