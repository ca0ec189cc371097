//! The projection runner: tails the log, applies events to the project
//! states (`evolve`, shared with the command side), and writes the read
//! models (see [`crate::models`]), history, indexes and the checkpoint to
//! sled in one atomic batch per group of events.
//!
//! Re-applying is a no-op: states ignore positions they have seen, and
//! history items are keyed by position. The read models at the checkpoint
//! are the whole state: a restart loads each project's working set from them
//! and resumes after the checkpoint.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use waybill_ledger::domain::ProjectState;
use waybill_ledger::{EventLog, EventPayload, LedgerError, Position, StoredEvent};

use crate::error::ProjectionError;
use crate::history::HistoryItem;
use crate::known::KnownFreight;
use crate::models::{self, Touched};
use crate::store::{ProjectionStore, Writes};
use crate::timeline::Timeline;

mod reads;

pub use reads::UnderWay;

/// Events applied per atomic batch at most.
pub const MAX_BATCH: usize = 256;

/// How long a runner catching up waits for the next event before it takes
/// itself to be caught up.
const CATCH_UP_IDLE: Duration = Duration::from_millis(200);

/// How long a caught-up runner with nothing being committed lets a batch
/// gather events before committing it, unless a reader waits for one of
/// them: a stream of commands then lands a few events per commit instead of
/// one. A commit per event took CPU (and sled's process-wide lock) from the
/// very commands that made them: with every role in one process, the
/// 1-client `bench commands` p50 went from 409-632 µs to 308-334 µs. Events
/// nobody waits for become visible up to this much later (plus the timer's
/// granularity); a read with `min_position` cuts the wait short.
const COALESCE: Duration = Duration::from_millis(2);

/// The read side: the store, the current project states and the applied position.
#[derive(Clone)]
pub struct Projections {
    inner: Arc<Inner>,
}

/// A project's state, shared by the runner (which writes it, one event at a
/// time) and the queries (which read it, without awaiting while they hold it).
pub type SharedState = Arc<RwLock<ProjectState>>;

struct Inner {
    store: ProjectionStore,
    states: RwLock<HashMap<String, SharedState>>,
    applied: watch::Sender<Position>,
    /// Readers waiting for a position not applied yet (read-your-writes):
    /// while there are any, the runner commits without waiting for more
    /// events; a new one wakes it through `wanted`.
    waiting: AtomicUsize,
    wanted: tokio::sync::Notify,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections")
            .field("applied", &self.applied())
            .finish()
    }
}

impl Projections {
    /// Opens the store in `dir` and loads each project's working set. Blocking.
    pub fn open(dir: &Path) -> Result<Projections, ProjectionError> {
        Projections::open_with_cache(dir, crate::store::CACHE_BYTES)
    }

    /// [`Projections::open`] with a page cache of `cache_bytes`. Blocking.
    ///
    /// A store that does not read (a damaged disk) is removed and started
    /// again, empty: everything in it is derived from the log (the Merkle
    /// tree too, the signed checkpoints being in the log), and the runner
    /// builds it again as it would a new one.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Projections, ProjectionError> {
        match Projections::open_once(dir, cache_bytes) {
            Err(ProjectionError::Corrupt(why)) => {
                tracing::warn!(
                    dir = %dir.display(),
                    error = %why,
                    "the projection store is damaged; building it again from the log"
                );
                std::fs::remove_dir_all(dir)
                    .and_then(|()| std::fs::create_dir_all(dir))
                    .map_err(|e| {
                        ProjectionError::Storage(format!(
                            "cannot empty the damaged projection store in {}: {e}",
                            dir.display()
                        ))
                    })?;
                Projections::open_once(dir, cache_bytes)
            }
            opened => opened,
        }
    }

    fn open_once(dir: &Path, cache_bytes: u64) -> Result<Projections, ProjectionError> {
        let store = ProjectionStore::open_with_cache(dir, cache_bytes)?;
        let at = store.checkpoint()?;
        let states = models::load_all(store.views())?
            .into_iter()
            .map(|s| (s.project.clone(), Arc::new(RwLock::new(s))))
            .collect();
        let (applied, _) = watch::channel(at);
        Ok(Projections {
            inner: Arc::new(Inner {
                store,
                states: RwLock::new(states),
                applied,
                waiting: AtomicUsize::new(0),
                wanted: tokio::sync::Notify::new(),
            }),
        })
    }

    /// The store (history and indexes).
    pub fn store(&self) -> &ProjectionStore {
        &self.inner.store
    }

    /// The last position reflected by every read model.
    pub fn applied(&self) -> Position {
        *self.inner.applied.borrow()
    }

    /// Waits (at most `timeout`) until `min` is applied; returns the applied position.
    pub async fn wait_for(&self, min: Position, timeout: Duration) -> Result<Position, Position> {
        let mut rx = self.inner.applied.subscribe();
        let _waiting = (*rx.borrow() < min).then(|| {
            self.inner.waiting.fetch_add(1, Ordering::AcqRel);
            self.inner.wanted.notify_one();
            Waiting(&self.inner.waiting)
        });
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= min)).await;
        match reached {
            Ok(Ok(p)) => Ok(*p),
            _ => Err(self.applied()),
        }
    }

    /// Follows the applied position.
    pub fn subscribe(&self) -> watch::Receiver<Position> {
        self.inner.applied.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, SharedState>> {
        // A poisoned lock means a writer panicked between whole-value inserts;
        // the map still holds complete states.
        self.inner.states.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a project visible to queries.
    fn register(&self, name: &str, state: &SharedState) {
        let mut shared = self.inner.states.write().unwrap_or_else(|p| p.into_inner());
        shared
            .entry(name.to_string())
            .or_insert_with(|| state.clone());
    }

    /// Tails `log` from the checkpoint and keeps the read models current
    /// until `shutdown` completes. `progress` is told each applied position.
    pub async fn run(
        &self,
        log: Arc<dyn EventLog>,
        shutdown: impl std::future::Future<Output = ()>,
        mut progress: impl FnMut(Position),
    ) -> Result<(), ProjectionError> {
        tokio::pin!(shutdown);
        let start = self.inner.store.checkpoint()?;
        let store = self.inner.store.clone();
        let known = tokio::task::spawn_blocking(move || match start {
            Position::ZERO => KnownFreight::empty(),
            _ => KnownFreight::load(store.views()),
        })
        .await
        .map_err(|e| ProjectionError::Storage(e.to_string()))??;
        let mut work = Some(Work {
            states: self.read().clone(),
            timeline: Timeline::default(),
            known,
        });
        // Until the runner passes the log's head as it was at the start, it
        // is catching up: every batch is filled to MAX_BATCH (the events are
        // there), so each read model is written once per large batch.
        let mut catching_up_to = log.head().await?;
        // Exported at 0 from the start, so that an alert on its increase
        // sees the first one.
        metrics::counter!("waybill_foreign_messages_total").increment(0);
        let mut tail = log.tail(start.next()).await?;
        // Projects whose batch may still be in flight.
        let mut last_touched: HashSet<String> = HashSet::new();
        // One commit runs while the next batch is applied; it is awaited
        // before the next starts (batches land in order), and before the
        // runner waits for more events (so that what it applied shows).
        let mut in_flight: Option<InFlight> = None;
        loop {
            let ready = match tail.next().now_or_never() {
                Some(item) => Some(item),
                None => {
                    self.settle(&mut in_flight, &mut progress).await?;
                    None
                }
            };
            let item = match ready {
                Some(item) => item,
                None => tokio::select! {
                    () = &mut shutdown => break,
                    item = tail.next() => item,
                },
            };
            let Some(first) = item else { break };
            let taken = work
                .take()
                .ok_or_else(|| ProjectionError::Storage("a batch failed before this one".into()))?;
            let mut batch = Batch::new(taken);
            let opened = tokio::time::Instant::now();
            let mut chunk = vec![entry(first)?];
            // The batch grows while the one before it is being written (up
            // to MAX_BATCH): a runner catching up writes few large batches,
            // each read model once per batch; an idle one commits within
            // COALESCE of the batch's first event.
            loop {
                while batch.count + chunk.len() < MAX_BATCH {
                    match tail.next().now_or_never() {
                        Some(Some(item)) => chunk.push(entry(item)?),
                        _ => break,
                    }
                }
                batch = self.apply_chunk(batch, std::mem::take(&mut chunk)).await?;
                if batch.count >= MAX_BATCH {
                    break;
                }
                if batch.last < catching_up_to {
                    match tokio::time::timeout(CATCH_UP_IDLE, tail.next()).await {
                        Ok(Some(item)) => {
                            chunk.push(entry(item)?);
                            continue;
                        }
                        Ok(None) => break,
                        // The head's event never came (deleted behind
                        // Waybill's back, or not Waybill's): caught up.
                        Err(_) => catching_up_to = Position::ZERO,
                    }
                }
                let Some((_, _, landed)) = in_flight.as_mut() else {
                    if self.inner.waiting.load(Ordering::Acquire) > 0 {
                        break;
                    }
                    tokio::select! {
                        biased;
                        () = self.inner.wanted.notified() => break,
                        item = tokio::time::timeout_at(opened + COALESCE, tail.next()) => {
                            match item {
                                Ok(Some(item)) => {
                                    chunk.push(entry(item)?);
                                    continue;
                                }
                                _ => break,
                            }
                        }
                    }
                };
                tokio::select! {
                    biased;
                    _ = landed => break,
                    item = tail.next() => match item {
                        Some(item) => chunk.push(entry(item)?),
                        None => break,
                    },
                }
            }
            // Applying reads and encodes read models: off the async runtime.
            let Batch {
                work: taken,
                writes,
                touched,
                last,
                ..
            } = tokio::task::spawn_blocking(move || {
                for (name, t) in &batch.touched {
                    if let Some(s) = batch.work.states.get(name) {
                        let mut state = s.write().unwrap_or_else(|p| p.into_inner());
                        models::write(&mut state, t, &mut batch.writes)?;
                    }
                }
                Ok::<_, ProjectionError>(batch)
            })
            .await
            .map_err(|e| ProjectionError::Storage(e.to_string()))??;
            self.settle(&mut in_flight, &mut progress).await?;
            // Every batch before this one has landed: what they wrote may
            // leave memory, what this one writes stays until it lands too.
            let landed = last_touched.iter().filter(|n| !touched.contains_key(*n));
            for name in touched.keys().chain(landed) {
                if let Some(s) = taken.states.get(name) {
                    let mut state = s.write().unwrap_or_else(|p| p.into_inner());
                    models::evict(&mut state, touched.get(name));
                }
            }
            last_touched = touched.into_keys().collect();
            work = Some(taken);
            let store = self.inner.store.clone();
            let (done, landed) = tokio::sync::oneshot::channel::<()>();
            let commit = tokio::task::spawn_blocking(move || {
                let result = store.commit(writes);
                drop(done);
                result
            });
            in_flight = Some((commit, last, landed));
            if shutdown.as_mut().now_or_never().is_some() {
                break;
            }
        }
        self.settle(&mut in_flight, &mut progress).await?;
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| ProjectionError::Storage(e.to_string()))??;
        Ok(())
    }
}

/// Counts a reader in [`Inner::waiting`] while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the runner carries from batch to batch: every project's state, the
/// stage versions last written, and the freight the read models may hold.
struct Work {
    states: HashMap<String, SharedState>,
    timeline: Timeline,
    known: KnownFreight,
}

/// A commit of the views running on the blocking pool.
type Commit = tokio::task::JoinHandle<Result<(), ProjectionError>>;

/// The commit in flight, the last position it writes, and a receiver that
/// completes (with an error: its sender is dropped) once the commit has run.
type InFlight = (Commit, Position, tokio::sync::oneshot::Receiver<()>);

/// A batch being applied: the runner's work, what the batch writes, the
/// projects it touched, how many events it holds and the last one's position.
/// What the runner read at a position: an event, or a message Waybill did
/// not write, which it passes over.
// Nearly every one is an event: boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Event(StoredEvent),
    Foreign(Position),
}

impl Entry {
    fn position(&self) -> Position {
        match self {
            Entry::Event(ev) => ev.position,
            Entry::Foreign(p) => *p,
        }
    }
}

/// Foreign messages the runner names in its log one by one.
const FOREIGN_NAMED: u64 = 10;

/// An item of the log's tail as the runner takes it: a foreign message is
/// passed over (logged: `waybill verify` names them all), anything else
/// that is no event stops the runner.
fn entry(item: Result<StoredEvent, LedgerError>) -> Result<Entry, ProjectionError> {
    match item {
        Ok(ev) => Ok(Entry::Event(ev)),
        Err(LedgerError::Foreign(f)) => {
            // Each of the first few, then one line in a thousand: a flood of
            // them (whoever may publish there may publish many) does not
            // flood the log too.
            static SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let seen = SEEN.fetch_add(1, Ordering::Relaxed) + 1;
            if seen <= FOREIGN_NAMED || seen.is_multiple_of(1_000) {
                tracing::warn!(
                    position = f.position.0,
                    subject = %f.subject,
                    reason = %f.reason,
                    passed_over = seen,
                    "passing over a message Waybill did not write (`waybill verify` names them all)"
                );
            }
            metrics::counter!("waybill_foreign_messages_total").increment(1);
            Ok(Entry::Foreign(f.position))
        }
        Err(e) => Err(e.into()),
    }
}

struct Batch {
    work: Work,
    writes: Writes,
    touched: HashMap<String, Touched>,
    count: usize,
    last: Position,
}

impl Batch {
    fn new(work: Work) -> Batch {
        Batch {
            work,
            writes: Writes::default(),
            touched: HashMap::new(),
            count: 0,
            last: Position::ZERO,
        }
    }
}

impl Projections {
    /// Waits for the commit in flight, if any, and publishes its position.
    async fn settle(
        &self,
        in_flight: &mut Option<InFlight>,
        progress: &mut impl FnMut(Position),
    ) -> Result<(), ProjectionError> {
        let Some((commit, last, _)) = in_flight.take() else {
            return Ok(());
        };
        commit
            .await
            .map_err(|e| ProjectionError::Storage(e.to_string()))??;
        // The states already reflect these events; now the history does too.
        self.inner.applied.send_replace(last);
        metrics::gauge!("waybill_projection_applied_position").set(last.0 as f64);
        progress(last);
        Ok(())
    }
}

impl Projections {
    /// Applies `events` to `batch`, off the async runtime.
    async fn apply_chunk(
        &self,
        mut batch: Batch,
        events: Vec<Entry>,
    ) -> Result<Batch, ProjectionError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            for entry in &events {
                match entry {
                    Entry::Event(ev) => {
                        this.apply(&mut batch.work, &mut batch.touched, &mut batch.writes, ev)?
                    }
                    Entry::Foreign(p) => batch.writes.pass(*p),
                }
            }
            if let Some(entry) = events.last() {
                batch.last = entry.position();
            }
            batch.count += events.len();
            Ok(batch)
        })
        .await
        .map_err(|e| ProjectionError::Storage(e.to_string()))?
    }

    /// Applies one event to its project's state (loading what it reads from
    /// the read models first) and records its history item. Blocking.
    fn apply(
        &self,
        work: &mut Work,
        touched: &mut HashMap<String, Touched>,
        writes: &mut Writes,
        ev: &StoredEvent,
    ) -> Result<(), ProjectionError> {
        let name = &ev.event.project;
        let shared = work
            .states
            .entry(name.clone())
            .or_insert_with(|| {
                let s = Arc::new(RwLock::new(ProjectState::new(name)));
                self.register(name, &s);
                s
            })
            .clone();
        let mut state = shared.write().unwrap_or_else(|p| p.into_inner());
        if ev.position <= state.position && state.seq > 0 {
            return Ok(());
        }
        let changed = touched.entry(name.clone()).or_default();
        models::prefetch(
            self.inner.store.views(),
            &mut work.known,
            &mut state,
            ev,
            changed,
        )?;
        let target =
            waybill_ledger::domain::working_set::promotion_of(&ev.event.payload).and_then(|id| {
                state
                    .promotions
                    .get(id)
                    .map(|p| (p.stage.clone(), p.freight.clone()))
            });
        let policy_version = state.policy_version();
        // A pipeline applied is shown with what it changed.
        let pipeline_before = matches!(ev.event.payload, EventPayload::PipelineConfigured(_))
            .then(|| state.pipeline.as_ref().map(|p| p.definition.clone()));
        work.timeline.before(&state);
        state.apply(ev);
        let pipeline_changes = pipeline_before.map(|before| {
            let changes = state.pipeline.as_ref().map_or_else(Vec::new, |now| {
                waybill_ledger::domain::pipeline_changes(before.as_ref(), &now.definition)
            });
            (changes, before.is_none())
        });
        // Idempotency records are the command side's business.
        state.commands.clear();
        work.timeline.record(&state, ev, writes);
        let latest = state.latest_time.unwrap_or(ev.event.time);
        // The freight the event names, in memory since prefetch loaded it.
        let freight = waybill_ledger::domain::working_set::freight_of(&ev.event.payload)
            .or(target.as_ref().map(|(_, f)| f.as_str()));
        let alias = freight
            .and_then(|id| state.freight.get(id))
            .map(|f| f.alias.clone())
            .unwrap_or_default();
        let status = waybill_ledger::domain::working_set::promotion_of(&ev.event.payload)
            .and_then(|id| state.promotions.get(id))
            .map(|p| p.status.name());
        drop(state);
        let mut item = HistoryItem::of(
            ev,
            policy_version,
            target.as_ref().map(|(st, f)| (st.as_str(), f.as_str())),
            &alias,
        );
        item.promotion_status = status.unwrap_or_default().to_string();
        if let Some((changes, first)) = pipeline_changes {
            item.set_pipeline_changes(changes, first);
        }
        writes.event(&item, latest)?;
        Ok(())
    }
}

/// Reads a shared state (a poisoned lock still holds a whole state: the
/// runner replaces nothing partially).
pub fn read(s: &SharedState) -> std::sync::RwLockReadGuard<'_, ProjectState> {
    s.read().unwrap_or_else(|p| p.into_inner())
}
