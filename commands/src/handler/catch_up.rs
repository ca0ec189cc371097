//! Bringing a cached project state up to the log: a few events one by one,
//! more through a read of the project, from the cold store's saved state
//! when there is one.

use futures::StreamExt;
use waybill_ledger::domain::{working_set, ProjectState};
use waybill_ledger::{LedgerError, Position, ProjectName};

use super::cache::SPILL_EVERY;
use super::{CommandError, CommandHandler};

/// Events a catch-up reads one by one before it starts a read of the rest.
const SMALL_GAP: usize = 8;

impl CommandHandler {
    /// Applies `ev` to `state`, first loading what it reads from the cold
    /// store.
    pub(super) fn apply(
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
    pub(super) async fn catch_up_to(
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
                match self.log.next_event(project, state.position.next()).await {
                    Ok(Some(ev)) => self.apply(project, state, &ev)?,
                    Ok(None) => return Ok(()),
                    Err(LedgerError::Foreign(f)) => state.pass(f.position),
                    Err(e) => return Err(e.into()),
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
    pub(super) async fn catch_up(
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
            let ev = match ev {
                Ok(ev) => ev,
                // No event: see `ProjectState::pass`.
                Err(LedgerError::Foreign(f)) => {
                    state.pass(f.position);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.apply(project, state, &ev)?;
            applied += 1;
            if let Some(cold) = &cold {
                if applied.is_multiple_of(SPILL_EVERY) {
                    cold.spill(state)?;
                }
            }
        }
        // Nothing applied, nothing new to move: what a caller loads is
        // moved by its `spill_later`, off the runtime.
        if let (Some(cold), true) = (&cold, applied > 0) {
            cold.spill(state)?;
        }
        Ok(())
    }
}
