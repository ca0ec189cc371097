//! `ReportPromotionResult`: the executor's started / succeeded / failed.
//! At most one promotion runs per stage; the queue is first in, first out.

use waybill_ledger::domain::{ProjectState, Promotion, PromotionStatus};
use waybill_ledger::event::{PromotionFailed, PromotionStarted, PromotionSucceeded};
use waybill_ledger::EventPayload;

use super::approval::find;
use super::Decision;
use crate::command::{Command, PromotionResult};
use crate::rejection::{Reason, Rejection};

pub(super) fn report(state: &ProjectState, command: &Command) -> Result<Decision, Rejection> {
    let Command::ReportPromotionResult {
        promotion,
        result,
        details,
    } = command
    else {
        unreachable!("dispatched by decide")
    };
    let p = find(state, promotion)?;
    match p.status {
        PromotionStatus::Requested => {
            let have = state.counted_approvals(p);
            let need = state.required_approvals(&p.stage);
            return Err(Rejection::policy(
                Reason::ApprovalsMissing,
                format!("promotion {} has {have} of {need} approvals", p.id),
                [
                    ("approvals", have.to_string()),
                    ("required", need.to_string()),
                ],
            ));
        }
        PromotionStatus::Authorized => may_run(state, p)?,
        PromotionStatus::Running if *result == PromotionResult::Started => {
            return Err(Rejection::policy(
                Reason::PromotionNotPending,
                format!("promotion {} is already running", p.id),
                [("status", "Running".to_string())],
            ));
        }
        PromotionStatus::Running => {}
        done => {
            return Err(Rejection::policy(
                Reason::PromotionNotPending,
                format!("promotion {} is already {}", p.id, done.name()),
                [("status", done.name().to_string())],
            ));
        }
    }
    let id = p.id.clone();
    let payload = match result {
        PromotionResult::Started => EventPayload::PromotionStarted(PromotionStarted {
            promotion_id: id,
            executor: details.clone(),
        }),
        PromotionResult::Succeeded => EventPayload::PromotionSucceeded(PromotionSucceeded {
            promotion_id: id,
            details: details.clone(),
        }),
        PromotionResult::Failed => EventPayload::PromotionFailed(PromotionFailed {
            promotion_id: id,
            reason: "executor reported failure".to_string(),
            details: details.clone(),
        }),
    };
    Ok(Decision::Append {
        payload,
        subject: format!("stage/{}/promotion/{}", p.stage, p.id),
    })
}

/// An authorized promotion may run only when nothing runs in its stage and it
/// is first in the queue.
fn may_run(state: &ProjectState, p: &Promotion) -> Result<(), Rejection> {
    let Some(stage) = state.stages.get(&p.stage) else {
        return Ok(());
    };
    if let Some(running) = &stage.running {
        return Err(Rejection::policy(
            Reason::StageBusy,
            format!("stage {} is running promotion {running}", p.stage),
            [("running", running.clone())],
        ));
    }
    match stage.queue.front() {
        Some(first) if *first != p.id => Err(Rejection::policy(
            Reason::StageBusy,
            format!(
                "promotion {first} is ahead of {} in stage {}'s queue",
                p.id, p.stage
            ),
            [("ahead", first.clone())],
        )),
        _ => Ok(()),
    }
}
