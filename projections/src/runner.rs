//! The projection runner: tails the log, applies events to the project
//! states (`evolve`, shared with the command side), and writes history,
//! indexes and the checkpoint to sled in one atomic batch per group of events.
//!
//! Re-applying is a no-op: states ignore positions they have seen, and
//! history items are keyed by position. Snapshots of the states are written
//! (with the position they reflect) every `SNAPSHOT_EVERY` events and whenever
//! the runner catches up; a restart loads them and replays from there.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use waybill_ledger::domain::ProjectState;
use waybill_ledger::{EventLog, EventPayload, Position, StoredEvent};

use crate::error::ProjectionError;
use crate::history::HistoryItem;
use crate::store::{ProjectionStore, Writes};
use crate::timeline::Timeline;

/// Events applied per atomic batch at most.
pub const MAX_BATCH: usize = 512;
/// Events between two snapshots of the project states while busy, at most...
pub const SNAPSHOT_EVERY: u64 = 200_000;
/// ...and time between two snapshots while busy, at least (a snapshot writes
/// every changed state whole, so its cost grows with the states).
pub const BUSY_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
/// While idle, snapshots are written at most this often (and at shutdown)...
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(10);
/// ...and only once this many events wait for one: replaying fewer at a
/// restart costs less than writing every changed state whole.
pub const MIN_SNAPSHOT_EVENTS: u64 = 10_000;

/// A snapshot waits at least this many times as long as the last one took.
pub const SNAPSHOT_COST_SHARE: u32 = 20;

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
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections")
            .field("applied", &self.applied())
            .finish()
    }
}

impl Projections {
    /// Opens the store in `dir` and loads the snapshots. Blocking.
    pub fn open(dir: &Path) -> Result<Projections, ProjectionError> {
        Projections::open_with_cache(dir, crate::store::CACHE_BYTES)
    }

    /// [`Projections::open`] with a page cache of `cache_bytes`. Blocking.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Projections, ProjectionError> {
        let store = ProjectionStore::open_with_cache(dir, cache_bytes)?;
        let at = store.snapshot_position()?;
        let states = store
            .snapshots()?
            .into_iter()
            .map(|s| (s.project.clone(), Arc::new(RwLock::new(s))))
            .collect();
        let (applied, _) = watch::channel(at);
        Ok(Projections {
            inner: Arc::new(Inner {
                store,
                states: RwLock::new(states),
                applied,
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

    /// A copy of a project's current state.
    pub fn project(&self, name: &str) -> Option<ProjectState> {
        self.shared(name).map(|s| read(&s).clone())
    }

    /// A project's live state (lock it with [`read`], never across an await).
    pub fn shared(&self, name: &str) -> Option<SharedState> {
        self.read().get(name).cloned()
    }

    /// Every project's name.
    pub fn projects(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort();
        names
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

    /// Tails `log` from the last snapshot and keeps the read models current
    /// until `shutdown` completes. `progress` is told each applied position.
    pub async fn run(
        &self,
        log: Arc<dyn EventLog>,
        shutdown: impl std::future::Future<Output = ()>,
        mut progress: impl FnMut(Position),
    ) -> Result<(), ProjectionError> {
        tokio::pin!(shutdown);
        let mut states: HashMap<String, SharedState> = self.read().clone();
        let start = self.inner.store.snapshot_position()?;
        let mut tail = log.tail(start.next()).await?;
        let mut since_snapshot = 0u64;
        let mut unsnapshotted: BTreeSet<String> = BTreeSet::new();
        let mut last_snapshot = std::time::Instant::now();
        let mut snapshot_cost = Duration::ZERO;
        let mut timeline = Timeline::default();
        // One commit runs while the next batch is applied; it is awaited
        // before the next starts (batches land in order), and before the
        // runner waits for more events (so that what it applied shows).
        let mut in_flight: Option<(Commit, Position)> = None;
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
            let first = first?;
            let mut events = vec![first];
            let mut idle = false;
            while events.len() < MAX_BATCH {
                match tail.next().now_or_never() {
                    Some(Some(item)) => events.push(item?),
                    Some(None) => break,
                    None => {
                        idle = true;
                        break;
                    }
                }
            }
            let mut writes = Writes::default();
            let mut dirty = BTreeSet::new();
            let mut last = Position::ZERO;
            for ev in &events {
                if let Some(new) = apply(&mut states, &mut timeline, &mut writes, ev)? {
                    self.register(&ev.event.project, &new);
                }
                dirty.insert(ev.event.project.clone());
                last = ev.position;
            }
            since_snapshot += events.len() as u64;
            unsnapshotted.extend(dirty.iter().cloned());
            let due = if idle {
                SNAPSHOT_INTERVAL
            } else {
                BUSY_SNAPSHOT_INTERVAL
            };
            // Snapshots of big states are costly: keep them under a twentieth
            // of the runner's time, whatever the rules below say.
            let affordable = last_snapshot.elapsed() >= snapshot_cost * SNAPSHOT_COST_SHARE;
            let snapshot = affordable
                && (since_snapshot >= SNAPSHOT_EVERY
                    || (last_snapshot.elapsed() >= due && since_snapshot >= MIN_SNAPSHOT_EVENTS));
            let started = std::time::Instant::now();
            if snapshot {
                for name in &unsnapshotted {
                    if let Some(s) = states.get(name) {
                        writes.snapshot(s.clone(), last);
                    }
                }
                unsnapshotted.clear();
                since_snapshot = 0;
            }
            self.settle(&mut in_flight, &mut progress).await?;
            let store = self.inner.store.clone();
            let commit = tokio::task::spawn_blocking(move || store.commit(writes));
            in_flight = Some((commit, last));
            if snapshot {
                // The states must not move while they are written.
                self.settle(&mut in_flight, &mut progress).await?;
                snapshot_cost = started.elapsed();
                last_snapshot = std::time::Instant::now();
            }
            if shutdown.as_mut().now_or_never().is_some() {
                break;
            }
        }
        self.settle(&mut in_flight, &mut progress).await?;
        // Leave a snapshot of everything applied, so a restart replays nothing.
        if !unsnapshotted.is_empty() {
            let mut writes = Writes::default();
            let at = self.applied();
            for name in &unsnapshotted {
                if let Some(s) = states.get(name) {
                    writes.snapshot(s.clone(), at);
                }
            }
            let store = self.inner.store.clone();
            tokio::task::spawn_blocking(move || store.commit(writes).and_then(|()| store.flush()))
                .await
                .map_err(|e| ProjectionError::Storage(e.to_string()))??;
        }
        Ok(())
    }
}

/// A commit of the views running on the blocking pool.
type Commit = tokio::task::JoinHandle<Result<(), ProjectionError>>;

impl Projections {
    /// Waits for the commit in flight, if any, and publishes its position.
    async fn settle(
        &self,
        in_flight: &mut Option<(Commit, Position)>,
        progress: &mut impl FnMut(Position),
    ) -> Result<(), ProjectionError> {
        let Some((commit, last)) = in_flight.take() else {
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

/// Applies one event to its project's state and records its history item;
/// returns the state when the project is new.
fn apply(
    states: &mut HashMap<String, SharedState>,
    timeline: &mut Timeline,
    writes: &mut Writes,
    ev: &StoredEvent,
) -> Result<Option<SharedState>, ProjectionError> {
    let name = &ev.event.project;
    let mut created = None;
    let shared = states.entry(name.clone()).or_insert_with(|| {
        let s = Arc::new(RwLock::new(ProjectState::new(name)));
        created = Some(s.clone());
        s
    });
    let mut state = shared.write().unwrap_or_else(|p| p.into_inner());
    if ev.position <= state.position && state.seq > 0 {
        return Ok(created);
    }
    let target = promotion_of(&ev.event.payload).and_then(|id| {
        state
            .promotions
            .get(id)
            .map(|p| (p.stage.clone(), p.freight.clone()))
    });
    let policy_version = state.policy_version();
    timeline.before(&state);
    state.apply(ev);
    // Idempotency records are the command side's business.
    state.commands.clear();
    timeline.record(&state, ev, writes);
    let latest = state.latest_time.unwrap_or(ev.event.time);
    drop(state);
    let item = HistoryItem::of(
        ev,
        policy_version,
        target.as_ref().map(|(st, f)| (st.as_str(), f.as_str())),
    );
    writes.event(&item, latest)?;
    Ok(created)
}

/// Reads a shared state (a poisoned lock still holds a whole state: the
/// runner replaces nothing partially).
pub fn read(s: &SharedState) -> std::sync::RwLockReadGuard<'_, ProjectState> {
    s.read().unwrap_or_else(|p| p.into_inner())
}

fn promotion_of(payload: &EventPayload) -> Option<&str> {
    match payload {
        EventPayload::PromotionApproved(e) => Some(&e.promotion_id),
        EventPayload::PromotionRejected(e) => Some(&e.promotion_id),
        EventPayload::PromotionStarted(e) => Some(&e.promotion_id),
        EventPayload::PromotionSucceeded(e) => Some(&e.promotion_id),
        EventPayload::PromotionFailed(e) => Some(&e.promotion_id),
        EventPayload::PromotionAborted(e) => Some(&e.promotion_id),
        _ => None,
    }
}
