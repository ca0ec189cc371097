//! The command state across a clean restart: saved at shutdown, taken back
//! at a project's first use.

use std::sync::atomic::Ordering;

use waybill_ledger::domain::ProjectState;
use waybill_ledger::{LedgerError, ProjectName};

use super::*;

impl CommandHandler {
    /// Puts in `state` (empty) the project's state saved in the cold store,
    /// if the log still holds the event it was folded up to (same position,
    /// same chain hash); then the events after it, to apply.
    pub(super) async fn restore(
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
                // The project's last message is no record (see
                // `ProjectState::pass`): nothing to check a saved state
                // against; it is folded next time.
                Ok(_) | Err(LedgerError::Foreign(_)) => {}
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
