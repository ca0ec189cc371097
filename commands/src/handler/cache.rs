//! The cached project states: one slot per project, the budget they share,
//! and the moves of records out of them to the cold store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use waybill_ledger::domain::ProjectState;
use waybill_ledger::ProjectName;

use super::*;

/// The cached project states, least recently used first out.
#[derive(Debug)]
pub(super) struct StateCache {
    pub(super) slots: HashMap<String, Slot>,
    /// Events the states may hold together before idle ones are dropped.
    pub(super) budget: u64,
    /// What the cached states hold together (the sum of the slots' sizes).
    pub(super) total: Arc<AtomicU64>,
    /// Counts uses; a slot remembers its last.
    pub(super) tick: u64,
    /// Projects dropped, and since when they have been counted for the
    /// next warning.
    pub(super) dropped: u64,
    pub(super) warned: Option<std::time::Instant>,
}

/// One project's cached state.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) state: Arc<tokio::sync::Mutex<ProjectState>>,
    /// The state's size when its last user let go of it.
    pub(super) size: Arc<AtomicU64>,
    /// The cache's total, kept up to date as `size` changes.
    pub(super) total: Arc<AtomicU64>,
    pub(super) used: u64,
    /// A move of the state's records to the cold store is under way.
    pub(super) spilling: Arc<std::sync::atomic::AtomicBool>,
}

impl Slot {
    /// Records how much `state` (this slot's, locked) holds: its events, or
    /// with a cold store the records it keeps in memory (an idempotency key
    /// counting for a sixteenth: a freight or promotion is about 1 KB, a
    /// key about 60 bytes).
    pub(super) fn sized(&self, state: &ProjectState, cold: bool) {
        let size = if cold {
            (state.freight.len() + state.promotions.len() + state.aliases.len()) as u64
                + state.commands.len() as u64 / 16
        } else {
            state.seq
        };
        let before = self.size.swap(size, Ordering::Relaxed);
        if size >= before {
            self.total.fetch_add(size - before, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(before - size, Ordering::Relaxed);
        }
    }
}

impl StateCache {
    pub(super) fn new(budget: u64) -> StateCache {
        StateCache {
            slots: HashMap::new(),
            budget,
            total: Arc::default(),
            tick: 0,
            dropped: 0,
            warned: None,
        }
    }

    /// The slot of `project` (made if absent), marked as just used; first
    /// takes out the least recently used idle slots while the cache is over
    /// its budget, and returns them too. A slot is idle when nobody holds it
    /// (so nobody is resizing it): a command on it finishes undisturbed,
    /// and the project is never cached twice.
    pub(super) fn slot(&mut self, project: &str) -> (Slot, Vec<(String, Slot)>) {
        let mut evicted = Vec::new();
        self.tick += 1;
        let tick = self.tick;
        if self.total.load(Ordering::Relaxed) > self.budget {
            let mut idle: Vec<(u64, String)> = self
                .slots
                .iter()
                .filter(|(name, s)| name.as_str() != project && Arc::strong_count(&s.state) == 1)
                .map(|(name, s)| (s.used, name.clone()))
                .collect();
            idle.sort_unstable();
            for (_, name) in idle {
                if self.total.load(Ordering::Relaxed) <= self.budget {
                    break;
                }
                if let Some(dropped) = self.slots.remove(&name) {
                    let size = dropped.size.load(Ordering::Relaxed);
                    self.total.fetch_sub(size, Ordering::Relaxed);
                    ::metrics::counter!("waybill_command_states_dropped_total").increment(1);
                    tracing::debug!(project = %name, size, "dropped a cached project state");
                    self.dropped += 1;
                    evicted.push((name, dropped));
                }
            }
            // Each dropped project is read back (from the store, or folded
            // from the log) on its next command: say so, at most once a
            // minute, if it keeps happening.
            let quiet = self
                .warned
                .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(60));
            if self.dropped > 0 && !quiet {
                tracing::warn!(
                    dropped = self.dropped,
                    budget = self.budget,
                    "the command service dropped cached project states to stay within \
                     --command-cache-records; each is saved in the command state store and \
                     read back when next needed (raise the budget if this repeats)"
                );
                self.dropped = 0;
                self.warned = Some(std::time::Instant::now());
            }
        }
        ::metrics::gauge!("waybill_command_state_records")
            .set(self.total.load(Ordering::Relaxed) as f64);
        let total = &self.total;
        let slot = self
            .slots
            .entry(project.to_string())
            .or_insert_with(|| Slot {
                state: Arc::new(tokio::sync::Mutex::new(ProjectState::new(project))),
                size: Arc::default(),
                total: total.clone(),
                used: 0,
                spilling: Arc::default(),
            });
        slot.used = tick;
        (slot.clone(), evicted)
    }
}

impl CommandHandler {
    /// Records the size of `state` in its slot.
    pub(super) fn sized(&self, slot: &Slot, state: &ProjectState) {
        slot.sized(state, self.cold.is_some());
    }

    pub(super) fn cache(&self) -> std::sync::MutexGuard<'_, StateCache> {
        // A poisoned lock only means another thread panicked while holding
        // it; the map itself is still consistent.
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The slot of `project`; the states dropped from the cache to make
    /// room are saved in the cold store, if there is one.
    pub(super) fn slot(&self, project: &str) -> Slot {
        let mut cache = self.cache();
        let (slot, evicted) = cache.slot(project);
        // What each dropped project's records were cleared so far, read
        // before any command can make the project a new slot (and clear its
        // records to fold it): a save planned before a clear is not written.
        let evicted: Vec<_> = evicted
            .into_iter()
            .map(|(name, dropped)| {
                let clears = self.cold.as_ref().map(|c| c.project(&name).clears());
                (name, dropped, clears)
            })
            .collect();
        drop(cache);
        for (name, dropped, clears) in evicted {
            if let (Some(store), Some(clears)) = (&self.cold, clears) {
                self.hibernate(store.clone(), name, dropped, clears);
            }
        }
        slot
    }

    /// Saves the state of `slot`, just dropped from the cache, in `store`,
    /// as a clean shutdown does: the project's next command takes it back
    /// instead of folding the project's log again. Unless the project's
    /// records were cleared since (`clears` changed: a command already
    /// folded it again in a new slot).
    pub(super) fn hibernate(&self, store: ColdStore, project: String, slot: Slot, clears: u64) {
        let Some(ticket) = store.save_ticket() else {
            tracing::debug!(
                project,
                "too many dropped states waiting to be saved; letting this one go"
            );
            return;
        };
        let log = self.log.clone();
        tokio::spawn(async move {
            // Nobody else holds a dropped slot (it was idle).
            let Ok(state) = Arc::try_unwrap(slot.state) else {
                return;
            };
            let state = state.into_inner();
            let Ok(name) = ProjectName::project(&project) else {
                return;
            };
            if state.seq == 0 {
                return;
            }
            let hash = match log.next_event(&name, state.position).await {
                Ok(Some(ev)) if ev.position == state.position => ev.hash,
                _ => return,
            };
            let mover = store.clone();
            store.later(move || {
                if let Err(e) = mover.project(&project).hibernate(&state, &hash, clears) {
                    tracing::warn!(project, error = %e, "cannot save a dropped project state");
                }
                drop(ticket);
            });
        });
    }

    /// The projects whose state this handler holds in memory (tests use it
    /// to show what a reactor loads).
    #[doc(hidden)]
    pub fn cached_projects(&self) -> Vec<String> {
        let mut names: Vec<String> = self.cache().slots.keys().cloned().collect();
        names.sort();
        names
    }

    /// Moves what the project's working set no longer needs to the cold
    /// store once `state` (`slot`'s, locked by the caller) is let go of.
    /// Commands neither wait for the move nor are held up by its writes: a
    /// task on the runtime locks the project only to copy the records, the
    /// store's low-priority mover thread serializes and writes them, and the
    /// task locks the project again to let go of what was written. The
    /// locks are taken at the runtime's priority, never by the mover thread,
    /// so a command never waits for a thread the scheduler holds back. One
    /// move per project at a time. A failure leaves the state whole (only
    /// bigger), so it is logged, not returned: the command it follows did
    /// happen.
    pub(super) fn spill_later(&self, project: &ProjectName, slot: &Slot, state: &ProjectState) {
        let Some(store) = &self.cold else {
            return;
        };
        if !store.project(project.as_str()).over(state)
            || slot.spilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (store, slot, project) = (store.clone(), slot.clone(), project.to_string());
        tokio::spawn(async move {
            if let Err(e) = move_out(&store, &slot, &project).await {
                warn_spill(&project, &e);
            }
            slot.spilling.store(false, Ordering::Release);
        });
    }
}

/// One move of `project`'s records out of memory (see
/// `CommandHandler::spill_later`).
pub(super) async fn move_out(
    store: &ColdStore,
    slot: &Slot,
    project: &str,
) -> Result<(), CommandError> {
    let spill = store.project(project).plan(&*slot.state.lock().await);
    if spill.is_empty() {
        return Ok(());
    }
    let (done, written) = tokio::sync::oneshot::channel();
    let (mover, name) = (store.clone(), project.to_string());
    store.later(move || {
        let result = mover.project(&name).write(&spill);
        let _ = done.send(result.map(|written| written.then_some(spill)));
    });
    // No answer: the mover thread ended with the store, and nothing moved.
    let Ok(written) = written.await else {
        return Ok(());
    };
    if let Some(spill) = written? {
        let mut state = slot.state.lock().await;
        store.project(project).release(spill, &mut state);
        slot.sized(&state, true);
    }
    Ok(())
}

pub(super) fn warn_spill(project: &str, e: &CommandError) {
    tracing::warn!(project, error = %e, "cannot move records to the command state store");
}

/// Events applied while catching up between two moves to the cold store.
pub(super) const SPILL_EVERY: u64 = 256;
