//! `decide(state, context, command) → event or rejection`: every rule, no I/O.
//! One file per family of commands.

mod approval;
mod execution;
mod freight;
mod pipeline;
pub use pipeline::effects as pipeline_effects;
mod promotion;

pub(crate) use promotion::rollback_warehouse;

use sha2::{Digest, Sha256};
use waybill_ledger::domain::{CommandOutcome, PipelineDefinition, ProjectState, StageDef};
use waybill_ledger::name::did_you_mean;
use waybill_ledger::EventPayload;

use crate::command::{Command, Context};
use crate::rejection::Rejection;

/// What a command comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Append this event.
    Append {
        payload: EventPayload,
        /// CloudEvents subject: what the event is about.
        subject: String,
    },
    /// The command (or an identical fact) was already recorded: nothing to append.
    AlreadyDone(CommandOutcome),
}

/// Decides `command` against `state`.
pub fn decide(
    state: &ProjectState,
    ctx: &Context,
    command: &Command,
) -> Result<Decision, Rejection> {
    if let Some(outcome) = state.command(&ctx.command_id) {
        return Ok(Decision::AlreadyDone(*outcome));
    }
    match command {
        Command::ApplyPipeline { .. } => pipeline::apply(state, command),
        Command::RecordDiscovery { .. } => freight::discover(state, command),
        Command::RecordVerification { .. } => freight::verify(state, command),
        Command::ApproveFreight { .. } => freight::bypass(state, ctx, command),
        Command::RequestPromotion { .. } => promotion::request(state, ctx, command),
        Command::Rollback { .. } => promotion::rollback(state, ctx, command),
        Command::ApprovePromotion { .. } => approval::approve(state, ctx, command),
        Command::RejectPromotion { .. } => approval::reject(state, command),
        Command::AbortPromotion { .. } => approval::abort(state, command),
        Command::ReportPromotionResult { .. } => execution::report(state, command),
    }
}

/// The project's pipeline, or `INVALID_ARGUMENT`: a project without one
/// is unknown (most likely a misspelled name).
pub(crate) fn pipeline(state: &ProjectState) -> Result<&PipelineDefinition, Rejection> {
    state.definition().ok_or_else(|| {
        Rejection::invalid(
            "project",
            format!(
                "project {:?} has no pipeline; apply one first",
                state.project
            ),
        )
    })
}

/// The project's stage `name`, or `INVALID_ARGUMENT`.
pub(crate) fn stage<'a>(state: &'a ProjectState, name: &str) -> Result<&'a StageDef, Rejection> {
    let def = pipeline(state)?;
    def.stage(name).ok_or_else(|| {
        let like = did_you_mean(name, def.stages.iter().map(|s| s.name.as_str()));
        Rejection::invalid(
            "stage",
            format!("project {} has no stage {name:?}{like}", state.project),
        )
    })
}

/// A promotion id derived from the command id, so a decision is repeatable.
pub fn promotion_id(command_id: &str) -> String {
    let digest = Sha256::digest(command_id.as_bytes());
    format!("prm-{}", &hex::encode(digest)[..16])
}

#[cfg(test)]
mod tests;
