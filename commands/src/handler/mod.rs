//! Executing a command: authorize, decide on the cached project state, append
//! with the expected position, and on a conflict catch up and decide again.
//!
//! Project states are cached and assumed fresh (one round trip per command);
//! the log's optimistic concurrency check is what makes that safe with several
//! command replicas. Within one process, commands on a project are serialized
//! by that project's async mutex, so they never conflict with each other;
//! different projects never wait for each other.
//!
//! Without a [`ColdStore`], a cached state holds the project's whole history
//! (about 0.7 KB per event). With one ([`CommandHandler::with_cold_store`],
//! as `waybill serve` runs), it holds only its working set and the rest is in
//! the store, so a project's memory does not grow with its history. Either
//! way the cache keeps at most [`CommandHandler::with_cache_budget`] of it:
//! beyond it the least recently used idle projects are dropped: with a store,
//! saved there and taken back when next needed (see [`cold`]); without one,
//! folded again from the log.

pub mod cold;
mod labels;
mod roles;

pub use cold::ColdStore;

pub use roles::required_role;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use uuid::Uuid;
use waybill_ledger::domain::working_set;
use waybill_ledger::domain::{CommandOutcome, ProjectState};
use waybill_ledger::{EventLog, LedgerError, NewEvent, Position, ProjectName};

use crate::auth::{AuthError, Authorizer, Principal};
use crate::clock::Clock;
use crate::command::{Command, Context};
use crate::decide::{decide, Decision};
use crate::rejection::Rejection;

/// Conflicts tolerated before a command gives up with `ABORTED`.
pub const MAX_ATTEMPTS: u32 = 16;

/// How much the cached project states hold together by default: records in
/// memory with a [`ColdStore`] (about 1 KB each), events without one (about
/// 0.7 KB each).
pub const DEFAULT_CACHE_RECORDS: u64 = 500_000;

/// Why a command did not produce (or find) an event.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The project kept moving; nothing was appended.
    #[error("gave up after {attempts} conflicting attempts; retry")]
    Aborted { attempts: u32 },
    /// The log is unreachable.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<LedgerError> for CommandError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Unavailable(m) => CommandError::Unavailable(m),
            LedgerError::Invalid { field, reason } => CommandError::Rejected(Rejection::Invalid {
                field,
                message: reason,
            }),
            other => CommandError::Internal(other.to_string()),
        }
    }
}

/// The result of a command.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub event_id: Uuid,
    pub position: Position,
    /// Nothing new was appended (a retry, or the fact was already recorded).
    pub already_done: bool,
    /// The event appended, when one was.
    pub payload: Option<waybill_ledger::EventPayload>,
}

/// Executes commands against the log. Cheap to clone.
#[derive(Clone)]
pub struct CommandHandler {
    log: Arc<dyn EventLog>,
    authorizer: Arc<Authorizer>,
    source: String,
    clock: Clock,
    states: Arc<Mutex<StateCache>>,
    cold: Option<ColdStore>,
}

/// The cached project states, least recently used first out.
#[derive(Debug)]
struct StateCache {
    slots: HashMap<String, Slot>,
    /// Events the states may hold together before idle ones are dropped.
    budget: u64,
    /// What the cached states hold together (the sum of the slots' sizes).
    total: Arc<AtomicU64>,
    /// Counts uses; a slot remembers its last.
    tick: u64,
    /// Projects dropped, and since when they have been counted for the
    /// next warning.
    dropped: u64,
    warned: Option<std::time::Instant>,
}

/// One project's cached state.
#[derive(Debug, Clone)]
struct Slot {
    state: Arc<tokio::sync::Mutex<ProjectState>>,
    /// The state's size when its last user let go of it.
    size: Arc<AtomicU64>,
    /// The cache's total, kept up to date as `size` changes.
    total: Arc<AtomicU64>,
    used: u64,
    /// A move of the state's records to the cold store is under way.
    spilling: Arc<std::sync::atomic::AtomicBool>,
}

impl Slot {
    /// Records how much `state` (this slot's, locked) holds: its events, or
    /// with a cold store the records it keeps in memory (an idempotency key
    /// counting for a sixteenth: a freight or promotion is about 1 KB, a
    /// key about 60 bytes).
    fn sized(&self, state: &ProjectState, cold: bool) {
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
    fn new(budget: u64) -> StateCache {
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
    fn slot(&mut self, project: &str) -> (Slot, Vec<(String, Slot)>) {
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

impl std::fmt::Debug for CommandHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandHandler")
            .field("log", &self.log)
            .finish()
    }
}

impl CommandHandler {
    /// A handler appending to `log`; `source` is the CloudEvents source of its events.
    pub fn new(
        log: Arc<dyn EventLog>,
        authorizer: Arc<Authorizer>,
        source: &str,
    ) -> CommandHandler {
        CommandHandler {
            log,
            authorizer,
            source: source.to_string(),
            clock: Clock::System,
            states: Arc::new(Mutex::new(StateCache::new(DEFAULT_CACHE_RECORDS))),
            cold: None,
        }
    }

    /// Keeps only each project's working set in memory and the rest of its
    /// records in `store`.
    pub fn with_cold_store(mut self, store: ColdStore) -> CommandHandler {
        self.cold = Some(store);
        self
    }

    /// The cold store, if there is one (tests read its counters).
    #[doc(hidden)]
    pub fn cold_store(&self) -> Option<&ColdStore> {
        self.cold.as_ref()
    }

    /// The records of `project` in the cold store, if there is one.
    fn cold<'a>(&'a self, project: &'a ProjectName) -> Option<cold::ProjectCold<'a>> {
        self.cold.as_ref().map(|c| c.project(project.as_str()))
    }

    /// Records the size of `state` in its slot.
    fn sized(&self, slot: &Slot, state: &ProjectState) {
        slot.sized(state, self.cold.is_some());
    }

    /// Keeps at most `events` events of history in the cached project states,
    /// or with a cold store that many records in memory (a project bigger
    /// than that is still kept while it is the one in use).
    pub fn with_cache_budget(self, events: u64) -> CommandHandler {
        self.cache().budget = events;
        self
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, StateCache> {
        // A poisoned lock only means another thread panicked while holding
        // it; the map itself is still consistent.
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Uses `clock` for "now" in every decision.
    pub fn with_clock(mut self, clock: Clock) -> CommandHandler {
        self.clock = clock;
        self
    }

    /// The clock decisions use.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The log commands are appended to.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The slot of `project`; the states dropped from the cache to make
    /// room are saved in the cold store, if there is one.
    fn slot(&self, project: &str) -> Slot {
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
    fn hibernate(&self, store: ColdStore, project: String, slot: Slot, clears: u64) {
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

    /// Holds the project's command lock until the guard is dropped (tests use
    /// it to show that other projects are not blocked).
    #[doc(hidden)]
    pub async fn hold_project(
        &self,
        project: &ProjectName,
    ) -> tokio::sync::OwnedMutexGuard<ProjectState> {
        self.slot(project.as_str()).state.lock_owned().await
    }

    /// The projects whose state this handler holds in memory (tests use it
    /// to show what a reactor loads).
    #[doc(hidden)]
    pub fn cached_projects(&self) -> Vec<String> {
        let mut names: Vec<String> = self.cache().slots.keys().cloned().collect();
        names.sort();
        names
    }

    /// A copy of the project's state, caught up with the log (with a cold
    /// store, of its working set).
    pub async fn state(&self, project: &ProjectName) -> Result<ProjectState, CommandError> {
        self.inspect(project, ProjectState::clone).await
    }

    /// What `f` reads from the project's state, caught up with the log,
    /// without copying the state (which may hold every freight and promotion;
    /// with a cold store, its working set and the freight auto-promotion
    /// would pick).
    pub async fn inspect<R>(
        &self,
        project: &ProjectName,
        f: impl FnOnce(&ProjectState) -> R,
    ) -> Result<R, CommandError> {
        self.inspect_at(project, None, f).await
    }

    /// [`CommandHandler::inspect`], asking the log for newer events only if
    /// the cached state is behind `known` (the project's last position as
    /// the caller saw it, e.g. on the log's tail); `None` always asks.
    pub async fn inspect_at<R>(
        &self,
        project: &ProjectName,
        known: Option<Position>,
        f: impl FnOnce(&ProjectState) -> R,
    ) -> Result<R, CommandError> {
        let slot = self.slot(project.as_str());
        let mut state = slot.state.lock().await;
        if known.is_none_or(|k| state.position < k) {
            let caught_up = match known {
                Some(k) => self.catch_up_to(project, &mut state, k).await,
                None => self.catch_up(project, &mut state).await,
            };
            self.sized(&slot, &state);
            caught_up?;
        }
        let Some(cold) = self.cold(project) else {
            return Ok(f(&state));
        };
        // Readers ask what auto-promotion would pick (the reactor).
        cold::load_auto_candidates(&cold, &mut state, self.clock.now())?;
        let out = f(&state);
        self.sized(&slot, &state);
        self.spill_later(project, &slot, &state);
        Ok(out)
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
    fn spill_later(&self, project: &ProjectName, slot: &Slot, state: &ProjectState) {
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

    /// Authorizes and executes `command` on `project` for `principal`.
    /// `command_id` is the idempotency key (generated when the caller gave none).
    /// Counted in `waybill_commands_total` by command, outcome and reason.
    pub async fn execute(
        &self,
        project: &ProjectName,
        principal: &Principal,
        command: Command,
        command_id: Option<String>,
    ) -> Result<Outcome, CommandError> {
        self.execute_correlated(project, principal, command, command_id, "")
            .await
    }

    /// [`CommandHandler::execute`], recording `correlation_id` in the event.
    pub async fn execute_correlated(
        &self,
        project: &ProjectName,
        principal: &Principal,
        command: Command,
        command_id: Option<String>,
        correlation_id: &str,
    ) -> Result<Outcome, CommandError> {
        let name = command.name();
        let result = self
            .execute_once(project, principal, command, command_id, correlation_id)
            .await;
        let (outcome, reason) = labels::labels(&result);
        ::metrics::counter!(
            "waybill_commands_total",
            "command" => name,
            "outcome" => outcome,
            "reason" => reason
        )
        .increment(1);
        result
    }

    async fn execute_once(
        &self,
        project: &ProjectName,
        principal: &Principal,
        command: Command,
        command_id: Option<String>,
        correlation_id: &str,
    ) -> Result<Outcome, CommandError> {
        let given = command_id.filter(|k| !k.is_empty());
        // A key made up here was never used before: no need to look it up.
        let stored_key = given.is_some();
        let command_id = given.unwrap_or_else(|| Uuid::now_v7().to_string());
        let slot = self.slot(project.as_str());
        let mut state = slot.state.lock().await;
        let result = self
            .decide_and_append(
                project,
                principal,
                command,
                IdempotencyKey {
                    id: &command_id,
                    given: stored_key,
                },
                correlation_id,
                &mut state,
            )
            .await;
        self.sized(&slot, &state);
        self.spill_later(project, &slot, &state);
        result
    }

    /// Decides on `state` (caught up first if it is empty) and appends,
    /// deciding again after each conflict.
    async fn decide_and_append(
        &self,
        project: &ProjectName,
        principal: &Principal,
        command: Command,
        key: IdempotencyKey<'_>,
        correlation_id: &str,
        state: &mut ProjectState,
    ) -> Result<Outcome, CommandError> {
        let command_id = key.id;
        if state.seq == 0 {
            self.catch_up(project, state).await?;
        }
        for attempt in 1..=MAX_ATTEMPTS {
            let now = self.clock.now();
            if let Some(cold) = self.cold(project) {
                let stored = key.given.then_some(command_id);
                cold::load_for_command(&cold, state, &command, stored, now)?;
            }
            let (role, stage) = required_role(state, &command);
            if principal.service_name().is_none() {
                self.authorizer
                    .require(principal, role, project.as_str(), stage)?;
            }
            let ctx = Context {
                actor: principal.actor(),
                groups: principal.groups.clone(),
                now,
                command_id: command_id.to_string(),
            };
            let (payload, subject) = match decide(state, &ctx, &command)? {
                Decision::AlreadyDone(o) => {
                    return Ok(Outcome {
                        event_id: o.event_id,
                        position: o.position,
                        already_done: true,
                        payload: None,
                    })
                }
                Decision::Append { payload, subject } => (payload, subject),
            };
            let mut event = NewEvent::new(payload.clone(), ctx.actor.clone(), command_id);
            event.subject = subject;
            event.source = self.source.clone();
            event.time = Some(ctx.now);
            event.correlation_id = correlation_id.to_string();
            let started = std::time::Instant::now();
            let appended = self.log.append(project, state.position, event).await;
            ::metrics::histogram!("waybill_append_seconds").record(started.elapsed().as_secs_f64());
            match appended {
                Ok(appended) => {
                    self.apply(project, state, &appended.to_stored())?;
                    return Ok(Outcome {
                        event_id: appended.id,
                        position: appended.position,
                        already_done: false,
                        payload: Some(payload),
                    });
                }
                Err(LedgerError::Conflict { actual }) => {
                    ::metrics::counter!("waybill_append_conflicts_total").increment(1);
                    tracing::debug!(project = %project, attempt, actual = actual.0, "conflict; re-deciding");
                    self.catch_up_to(project, state, actual).await?;
                }
                Err(LedgerError::Duplicate { original }) => {
                    self.catch_up(project, state).await?;
                    let event_id = self
                        .outcome_of(project, state, command_id)?
                        .map(|o| o.event_id)
                        .unwrap_or_default();
                    return Ok(Outcome {
                        event_id,
                        position: original,
                        already_done: true,
                        payload: None,
                    });
                }
                Err(e) => {
                    // The cached state may be behind whatever did get written.
                    *state = ProjectState::new(project.as_str());
                    return Err(e.into());
                }
            }
        }
        Err(CommandError::Aborted {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// What command `command_id` produced, from memory or the cold store.
    fn outcome_of(
        &self,
        project: &ProjectName,
        state: &ProjectState,
        command_id: &str,
    ) -> Result<Option<CommandOutcome>, CommandError> {
        if let Some(o) = state.command(command_id) {
            return Ok(Some(*o));
        }
        match self.cold(project) {
            Some(cold) => cold.command(&waybill_ledger::domain::CommandKey::of(command_id)),
            None => Ok(None),
        }
    }

    /// Applies `ev` to `state`, first loading what it reads from the cold
    /// store.
    fn apply(
        &self,
        project: &ProjectName,
        state: &mut ProjectState,
        ev: &waybill_ledger::StoredEvent,
    ) -> Result<(), CommandError> {
        if let Some(cold) = self.cold(project) {
            working_set::load_for_event(&cold, state, ev)?;
        }
        state.apply(ev);
        Ok(())
    }

    /// Applies the project's events after `state.position` up to `target`
    /// at least (the project's last position as a conflict or the log's
    /// tail reported it). A few events behind, as after another replica's
    /// command, they are read one by one (`EventLog::next_event`, a direct
    /// get on JetStream, instead of a consumer made and deleted for each
    /// catch-up); further behind, or with an empty state, as
    /// [`CommandHandler::catch_up`] does.
    async fn catch_up_to(
        &self,
        project: &ProjectName,
        state: &mut ProjectState,
        target: Position,
    ) -> Result<(), CommandError> {
        if state.seq > 0 {
            for _ in 0..SMALL_GAP {
                if state.position >= target {
                    return Ok(());
                }
                match self.log.next_event(project, state.position.next()).await? {
                    Some(ev) => self.apply(project, state, &ev)?,
                    None => return Ok(()),
                }
            }
            if state.position >= target {
                return Ok(());
            }
        }
        self.catch_up(project, state).await
    }

    /// Applies the project's events after `state.position`, moving what the
    /// working set does not need out as it goes. An empty state starts from
    /// the state saved in the cold store (at a clean shutdown, or when the
    /// project was dropped from the cache), if the log still holds the event
    /// it was folded up to; else from the start, with the cold store's
    /// records of the project cleared first.
    async fn catch_up(
        &self,
        project: &ProjectName,
        state: &mut ProjectState,
    ) -> Result<(), CommandError> {
        let cold = self.cold(project);
        let mut restored = None;
        if let (Some(cold), 0) = (&cold, state.seq) {
            restored = self.restore(project, cold, state).await?;
            if restored.is_none() {
                cold.clear()?;
            }
        }
        let mut events = match restored {
            Some(events) => events,
            None => {
                self.log
                    .read_project(project, state.position.next())
                    .await?
            }
        };
        let mut applied = 0u64;
        while let Some(ev) = events.next().await {
            let ev = ev?;
            self.apply(project, state, &ev)?;
            applied += 1;
            if let Some(cold) = &cold {
                if applied.is_multiple_of(SPILL_EVERY) {
                    cold.spill(state)?;
                }
            }
        }
        if let Some(cold) = &cold {
            cold.spill(state)?;
        }
        Ok(())
    }
}

impl CommandHandler {
    /// Puts in `state` (empty) the project's state saved in the cold store,
    /// if the log still holds the event it was folded up to (same position,
    /// same chain hash); then the events after it, to apply.
    async fn restore(
        &self,
        project: &ProjectName,
        cold: &cold::ProjectCold<'_>,
        state: &mut ProjectState,
    ) -> Result<Option<waybill_ledger::EventStream>, CommandError> {
        let Some((saved, hash)) = cold.take_snapshot()? else {
            return Ok(None);
        };
        match self.log.next_event(project, saved.position).await? {
            Some(ev) if ev.position == saved.position && ev.hash == hash => {
                let events = self
                    .log
                    .read_project(project, saved.position.next())
                    .await?;
                tracing::debug!(project = %project, position = saved.position.0, "took back the saved command state");
                ::metrics::counter!("waybill_command_states_restored_total").increment(1);
                if let Some(store) = &self.cold {
                    store.note_restored();
                }
                *state = saved;
                Ok(Some(events))
            }
            _ => {
                tracing::warn!(
                    project = %project,
                    position = saved.position.0,
                    "the log no longer holds the event the saved command state was folded up \
                     to; folding the project from the start"
                );
                Ok(None)
            }
        }
    }

    /// Saves each cached project's state in the cold store and seals it, so
    /// that the next process takes the states back instead of folding every
    /// project's log again; the number of projects saved. Called at a clean
    /// shutdown, once nothing else runs commands: a project still in use
    /// (or whose last event cannot be read) is left out, and folded next
    /// time.
    pub async fn save_state(&self) -> Result<usize, CommandError> {
        let Some(store) = &self.cold else {
            return Ok(0);
        };
        let slots: Vec<(String, Slot)> = self
            .cache()
            .slots
            .iter()
            .map(|(name, slot)| (name.clone(), slot.clone()))
            .collect();
        // Moves under way finish first, so none is written after the seal.
        for (_, slot) in &slots {
            for _ in 0..1000 {
                if !slot.spilling.load(Ordering::Acquire) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        store.moves_written().await;
        let mut batch = Vec::new();
        let mut saved = 0;
        for (name, slot) in slots {
            let Ok(state) = slot.state.try_lock() else {
                continue;
            };
            if state.seq == 0 || slot.spilling.load(Ordering::Acquire) {
                continue;
            }
            let Ok(project) = ProjectName::project(&name) else {
                continue;
            };
            match self.log.next_event(&project, state.position).await {
                Ok(Some(ev)) if ev.position == state.position => {
                    batch.extend(store.project(&name).snapshot(&state, &ev.hash)?);
                    saved += 1;
                }
                Ok(_) => {}
                Err(e @ LedgerError::Unavailable(_)) => {
                    // The others would wait as long: save what was read.
                    tracing::warn!(error = %e, "cannot read the log to save the command state; the projects not saved yet are folded next time");
                    break;
                }
                Err(e) => {
                    tracing::warn!(project = %name, error = %e, "cannot save the command state");
                }
            }
        }
        let sealed = store.clone();
        tokio::task::spawn_blocking(move || sealed.seal(batch))
            .await
            .map_err(|e| CommandError::Internal(format!("saving the command state: {e}")))??;
        Ok(saved)
    }
}

/// One move of `project`'s records out of memory (see
/// `CommandHandler::spill_later`).
async fn move_out(store: &ColdStore, slot: &Slot, project: &str) -> Result<(), CommandError> {
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

fn warn_spill(project: &str, e: &CommandError) {
    tracing::warn!(project, error = %e, "cannot move records to the command state store");
}

/// A command's idempotency key.
#[derive(Debug, Clone, Copy)]
struct IdempotencyKey<'a> {
    id: &'a str,
    /// Given by the caller: a key made up here was never used before, so it
    /// is not looked for in the cold store.
    given: bool,
}

/// Events a catch-up reads one by one before it starts a read of the rest.
const SMALL_GAP: usize = 8;

/// Events applied while catching up between two moves to the cold store.
const SPILL_EVERY: u64 = 256;
