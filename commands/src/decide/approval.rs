//! `ApprovePromotion`, `RejectPromotion` and `AbortPromotion`.

use waybill_ledger::domain::{ProjectState, Promotion, PromotionStatus};
use waybill_ledger::event::{PromotionAborted, PromotionApproved, PromotionRejected};
use waybill_ledger::EventPayload;

use super::Decision;
use crate::command::{Command, Context};
use crate::rejection::{Reason, Rejection};

pub(crate) fn find<'a>(state: &'a ProjectState, id: &str) -> Result<&'a Promotion, Rejection> {
    super::pipeline(state)?;
    state
        .promotions
        .get(id)
        .map(|p| &**p)
        .ok_or_else(|| Rejection::NotFound {
            what: "promotion",
            id: id.to_string(),
        })
}

fn not_pending(p: &Promotion, wanted: &str) -> Rejection {
    Rejection::policy(
        Reason::PromotionNotPending,
        format!("promotion {} is {}, not {wanted}", p.id, p.status.name()),
        [("status", p.status.name().to_string())],
    )
}

fn subject(p: &Promotion) -> String {
    format!("stage/{}/promotion/{}", p.stage, p.id)
}

pub(super) fn approve(
    state: &ProjectState,
    ctx: &Context,
    command: &Command,
) -> Result<Decision, Rejection> {
    let Command::ApprovePromotion { promotion, comment } = command else {
        unreachable!("dispatched by decide")
    };
    let p = find(state, promotion)?;
    if p.status != PromotionStatus::Requested {
        return Err(not_pending(p, "awaiting approval"));
    }
    let sod = state
        .definition()
        .and_then(|d| d.stage(&p.stage))
        .is_none_or(|s| s.policy.separation_of_duties);
    let me = &ctx.actor.principal;
    if sod && *me == p.requested_by.principal {
        return Err(Rejection::policy(
            Reason::SeparationOfDuties,
            format!("{me} requested promotion {} and cannot approve it", p.id),
            [("requester", me.clone())],
        ));
    }
    if p.approvals.iter().any(|a| a.by == *me) {
        return Err(Rejection::policy(
            Reason::AlreadyApproved,
            format!("{me} already approved promotion {}", p.id),
            [("approver", me.clone())],
        ));
    }
    Ok(Decision::Append {
        payload: EventPayload::PromotionApproved(PromotionApproved {
            promotion_id: p.id.clone(),
            comment: comment.clone(),
        }),
        subject: subject(p),
    })
}

pub(super) fn reject(state: &ProjectState, command: &Command) -> Result<Decision, Rejection> {
    let Command::RejectPromotion { promotion, reason } = command else {
        unreachable!("dispatched by decide")
    };
    let p = find(state, promotion)?;
    if !matches!(
        p.status,
        PromotionStatus::Requested | PromotionStatus::Authorized
    ) {
        return Err(not_pending(p, "awaiting approval or execution"));
    }
    Ok(Decision::Append {
        payload: EventPayload::PromotionRejected(PromotionRejected {
            promotion_id: p.id.clone(),
            reason: reason.clone(),
        }),
        subject: subject(p),
    })
}

pub(super) fn abort(state: &ProjectState, command: &Command) -> Result<Decision, Rejection> {
    let Command::AbortPromotion { promotion, reason } = command else {
        unreachable!("dispatched by decide")
    };
    let p = find(state, promotion)?;
    if !p.status.is_active() {
        return Err(not_pending(p, "active"));
    }
    Ok(Decision::Append {
        payload: EventPayload::PromotionAborted(PromotionAborted {
            promotion_id: p.id.clone(),
            reason: reason.clone(),
        }),
        subject: subject(p),
    })
}
