//! `ApplyPipeline`.

use waybill_ledger::domain::{PipelineDefinition, ProjectState};
use waybill_ledger::event::PipelineConfigured;
use waybill_ledger::EventPayload;

use super::Decision;
use crate::command::Command;
use crate::pipeline_check::check_definition;
use crate::rejection::{Reason, Rejection};

pub(super) fn apply(state: &ProjectState, command: &Command) -> Result<Decision, Rejection> {
    let Command::ApplyPipeline {
        definition,
        source_uri,
        source_revision,
        source_digest,
    } = command
    else {
        unreachable!("dispatched by decide")
    };
    if definition.project != state.project {
        return Err(Rejection::invalid(
            "project",
            format!(
                "the definition is for project {:?}, not {:?}",
                definition.project, state.project
            ),
        ));
    }
    if let Some(problem) = check_definition(definition).into_iter().next() {
        return Err(Rejection::invalid(&problem.path, problem.message));
    }
    // A stage left out of the new definition must have no promotion under
    // way: nothing could approve, run or report it any more.
    for (stage, by_freight) in &state.active {
        let ids: Vec<&str> = by_freight.values().flatten().map(String::as_str).collect();
        if ids.is_empty() || definition.stage(stage).is_some() {
            continue;
        }
        return Err(Rejection::policy(
            Reason::StageInUse,
            format!(
                "stage {stage} is not in the new definition but has {} promotion(s) under way \
                 ({}): abort them first (`waybill abort --promotion ID`), or keep the stage",
                ids.len(),
                ids.join(", ")
            ),
            [("stage", stage.clone()), ("promotions", ids.join(","))],
        ));
    }
    let json = definition.to_canonical_json();
    if let Some(current) = &state.pipeline {
        if current.definition_json == json {
            // Re-applying the definition in force is not a new policy version.
            return Ok(Decision::AlreadyDone(
                waybill_ledger::domain::CommandOutcome {
                    position: current.version,
                    event_id: current.event_id,
                },
            ));
        }
    }
    Ok(Decision::Append {
        payload: EventPayload::PipelineConfigured(PipelineConfigured {
            definition_json: json,
            source_uri: source_uri.clone(),
            source_revision: source_revision.clone(),
            source_digest: source_digest.clone(),
        }),
        subject: format!("pipeline/{}", state.project),
    })
}

/// What applying `definition` would do to the promotions under way in
/// `state`, a line each: "prm-… of v1.4.2 into prod: Requested → Authorized
/// (2 of 2 approvals count)" (`→ Succeeded` on a record-only stage). For a
/// dry run; empty when it changes none.
pub fn effects(state: &ProjectState, definition: &PipelineDefinition) -> Vec<String> {
    state
        .authorized_by(definition)
        .into_iter()
        .map(|w| {
            let p = w.promotion;
            let freight = state
                .freight
                .get(&p.freight)
                .map_or_else(|| p.freight.chars().take(12).collect(), |f| f.label());
            let to = match w.record_only {
                true => "Succeeded (record-only stage)",
                false => "Authorized",
            };
            format!(
                "{} of {freight} into {}: Requested → {to}, {} of {} approvals counting",
                p.id, p.stage, w.counted, w.required
            )
        })
        .collect()
}
