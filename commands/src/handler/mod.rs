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
//!
//! - `cache`: the cached states, their budget, and moves to the store;
//! - [`cold`]: the store itself;
//! - `saved`: the states across a clean restart.

mod cache;
mod catch_up;
pub mod cold;
mod labels;
mod roles;
mod saved;

pub use cold::ColdStore;

use cache::{Slot, StateCache};
pub use roles::required_role;

use std::sync::{Arc, Mutex};

use uuid::Uuid;
use waybill_ledger::domain::{ambiguous_start, CommandOutcome, ProjectState};
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
            // Nothing was written, and a retry once the log is fixed works.
            LedgerError::Unavailable(m) | LedgerError::Misconfigured(m) => {
                CommandError::Unavailable(m)
            }
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
    /// A dry run of `ApplyPipeline`: what applying it would do to the
    /// promotions under way, a line each (see `decide::pipeline_effects`).
    pub effects: Vec<String>,
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

    /// Keeps at most `events` events of history in the cached project states,
    /// or with a cold store that many records in memory (a project bigger
    /// than that is still kept while it is the one in use).
    pub fn with_cache_budget(self, events: u64) -> CommandHandler {
        self.cache().budget = events;
        self
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

    /// Holds the project's command lock until the guard is dropped (tests use
    /// it to show that other projects are not blocked).
    #[doc(hidden)]
    pub async fn hold_project(
        &self,
        project: &ProjectName,
    ) -> tokio::sync::OwnedMutexGuard<ProjectState> {
        self.slot(project.as_str()).state.lock_owned().await
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

    /// Authorizes `principal` and decides `command` on `state` now (loading
    /// what the decision reads from the cold store first).
    fn decide_on(
        &self,
        project: &ProjectName,
        principal: &Principal,
        command: &Command,
        key: IdempotencyKey<'_>,
        state: &mut ProjectState,
    ) -> Result<(Context, Decision), CommandError> {
        let now = self.clock.now();
        let cold = self.cold(project);
        // A promotion named by the start of its id: the whole id, before
        // the promotion is loaded and its stage decides the role needed.
        let (command, ambiguous) = cold::whole_promotion_id(cold.as_ref(), state, command)?;
        let command: &Command = &command;
        if let Some(cold) = &cold {
            let stored = key.given.then_some(key.id);
            cold::load_for_command(cold, state, command, stored, now)?;
        }
        let (role, stage) = required_role(state, command);
        if principal.service_name().is_none() {
            // A promotion the project does not have names no stage, so the
            // role would be asked for project-wide, and an approver bound
            // to one stage would be told they lack it. Whoever holds the
            // role in some stage of the project is told it does not exist.
            if let (None, Some(id)) = (stage, command.promotion()) {
                let stages = state.definition().map(|d| d.stages.as_slice());
                if stages.unwrap_or_default().iter().any(|s| {
                    self.authorizer
                        .has_role(principal, role, project.as_str(), Some(&s.name))
                }) {
                    if !ambiguous.is_empty() {
                        return Err(Rejection::invalid(
                            "promotion",
                            ambiguous_start("promotion", id, project.as_str(), &ambiguous),
                        )
                        .into());
                    }
                    return Err(Rejection::NotFound {
                        what: "promotion",
                        id: id.to_string(),
                    }
                    .into());
                }
            }
            self.authorizer
                .require(principal, role, project.as_str(), stage)?;
        }
        // After the access check: which ids exist is not for everyone.
        let command = cold::whole_freight_id(cold.as_ref(), state, command)?;
        let ctx = Context {
            actor: principal.actor(),
            groups: principal.groups.clone(),
            now,
            command_id: key.id.to_string(),
        };
        let decision = decide(state, &ctx, &command)?;
        Ok((ctx, decision))
    }

    /// Decides `command` as [`CommandHandler::execute`] would, on the
    /// project as the log has it now, and appends nothing: the outcome's
    /// `position` is the one the decision was made at, its `event_id` nil and
    /// its `payload` the event that would be appended (`None`, with
    /// `already_done`, when the command was executed already). Refusals are
    /// returned as `execute` returns them.
    pub async fn check(
        &self,
        project: &ProjectName,
        principal: &Principal,
        command: Command,
        command_id: Option<String>,
    ) -> Result<Outcome, CommandError> {
        let given = command_id.filter(|k| !k.is_empty());
        let key_text = given.clone().unwrap_or_else(|| Uuid::now_v7().to_string());
        let key = IdempotencyKey {
            id: &key_text,
            given: given.is_some(),
        };
        let slot = self.slot(project.as_str());
        let mut state = slot.state.lock().await;
        // The cached state may be behind what other replicas appended.
        let result = self
            .catch_up(project, &mut state)
            .await
            .and_then(|()| self.decide_on(project, principal, &command, key, &mut state));
        let position = state.position;
        let effects = match (&command, &result) {
            (Command::ApplyPipeline { definition, .. }, Ok((_, Decision::Append { .. }))) => {
                crate::decide::pipeline_effects(&state, definition)
            }
            _ => Vec::new(),
        };
        self.sized(&slot, &state);
        self.spill_later(project, &slot, &state);
        Ok(match result?.1 {
            Decision::AlreadyDone(o) => Outcome {
                event_id: o.event_id,
                position: o.position,
                already_done: true,
                payload: None,
                effects: Vec::new(),
            },
            Decision::Append { payload, .. } => Outcome {
                event_id: Uuid::nil(),
                position,
                already_done: false,
                payload: Some(payload),
                effects,
            },
        })
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
        // Whether a refusal was checked against the log (see below).
        let mut refusal_checked = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let (ctx, decision) = match self.decide_on(project, principal, &command, key, state) {
                // The cached state is behind whatever other replicas have
                // appended since this one last did: an append would learn
                // of it from its conflict, a refusal would not (freight or a
                // promotion another replica recorded "not found", a
                // verification missing). Before refusing, read what is new
                // (usually nothing: one read) and decide again.
                Err(refused @ (CommandError::Rejected(_) | CommandError::Auth(_)))
                    if !refusal_checked =>
                {
                    refusal_checked = true;
                    let last = self.log.last_position(project).await?;
                    if last <= state.position {
                        return Err(refused);
                    }
                    self.catch_up_to(project, state, last).await?;
                    continue;
                }
                decided => decided?,
            };
            let (payload, subject) = match decision {
                Decision::AlreadyDone(o) => {
                    return Ok(Outcome {
                        event_id: o.event_id,
                        position: o.position,
                        already_done: true,
                        payload: None,
                        effects: Vec::new(),
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
                        effects: Vec::new(),
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
                        effects: Vec::new(),
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
}

/// A command's idempotency key.
#[derive(Debug, Clone, Copy)]
struct IdempotencyKey<'a> {
    id: &'a str,
    /// Given by the caller: a key made up here was never used before, so it
    /// is not looked for in the cold store.
    given: bool,
}
