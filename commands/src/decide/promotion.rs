//! `RequestPromotion` and `Rollback`.

use waybill_ledger::domain::{
    available_to, why_none_available, Freight, NoneAvailable, ProjectState, PromotionStatus,
    StageDef, Unavailable,
};
use waybill_ledger::event::PromotionRequested;
use waybill_ledger::EventPayload;

use super::{promotion_id, stage, Decision};
use crate::command::{Command, Context, FreightSelector};
use crate::policy::{check_open, check_ticket};
use crate::rejection::{Reason, Rejection};

pub(super) fn request(
    state: &ProjectState,
    ctx: &Context,
    command: &Command,
) -> Result<Decision, Rejection> {
    let Command::RequestPromotion {
        stage: stage_name,
        freight,
        ticket,
        reason,
    } = command
    else {
        unreachable!("dispatched by decide")
    };
    let stage_def = stage(state, stage_name)?;
    let f = match freight {
        FreightSelector::Named(name) => {
            state
                .resolve_freight(name)
                .ok_or_else(|| Rejection::NotFound {
                    what: "freight",
                    id: name.clone(),
                })?
        }
        FreightSelector::NewestAvailable => newest_available(state, stage_def, ctx)?,
        FreightSelector::NewestOf(warehouse) => {
            let warehouse = stage_warehouse(stage_def, warehouse)?;
            let of_warehouse = stage_def
                .for_warehouse(warehouse)
                .unwrap_or_else(|| stage_def.clone());
            newest_available(state, &of_warehouse, ctx)?
        }
    };
    promote(state, ctx, stage_def, f, ticket, reason)
}

pub(super) fn rollback(
    state: &ProjectState,
    ctx: &Context,
    command: &Command,
) -> Result<Decision, Rejection> {
    let Command::Rollback {
        stage: stage_name,
        warehouse,
        ticket,
        reason,
    } = command
    else {
        unreachable!("dispatched by decide")
    };
    let stage_def = stage(state, stage_name)?;
    let warehouse = rollback_warehouse(stage_def, warehouse)?;
    // The stage as it takes freight from that warehouse: what is available
    // to it is that warehouse's freight.
    let from_warehouse = stage_def
        .for_warehouse(warehouse)
        .unwrap_or_else(|| stage_def.clone());
    let current = state
        .stages
        .get(stage_name)
        .and_then(|s| s.current_for(warehouse))
        .map(|c| c.freight.as_str());
    let mut succeeded: Vec<_> = state
        .promotions
        .values()
        .filter(|p| p.stage == *stage_name && p.status == PromotionStatus::Succeeded)
        .collect();
    succeeded.sort_by_key(|p| std::cmp::Reverse(p.requested));
    let target = succeeded
        .iter()
        .filter(|p| Some(p.freight.as_str()) != current)
        .filter_map(|p| state.freight.get(&p.freight))
        .find(|f| available_to(f, &from_warehouse, ctx.now).is_ok())
        .ok_or_else(|| {
            Rejection::policy(
                Reason::NoRollbackTarget,
                match stage_def.requested_freight.len() {
                    1 => format!("stage {stage_name} has no earlier freight that is still available"),
                    _ => format!(
                        "stage {stage_name} has no earlier freight of warehouse {warehouse} that is still available"
                    ),
                },
                [
                    ("stage", stage_name.clone()),
                    ("warehouse", warehouse.to_string()),
                ],
            )
        })?;
    let reason = if reason.is_empty() {
        "rollback".to_string()
    } else {
        reason.clone()
    };
    promote(state, ctx, stage_def, target, ticket, &reason)
}

/// The warehouse whose freight a rollback of `stage` replaces: `named`, or
/// when empty the only one the stage takes freight from.
pub(crate) fn rollback_warehouse<'a>(
    stage: &'a StageDef,
    named: &'a str,
) -> Result<&'a str, Rejection> {
    let takes: Vec<&str> = stage.warehouses().collect();
    match (named, takes.as_slice()) {
        ("", [only]) => Ok(only),
        ("", _) => Err(Rejection::invalid(
            "warehouse",
            format!(
                "stage {} runs freight of several warehouses ({}): name the one whose freight to roll back \
                 (`waybill rollback --warehouse`)",
                stage.name,
                takes.join(", ")
            ),
        )),
        (w, _) => stage_warehouse(stage, w),
    }
}

/// `warehouse`, if `stage` takes freight from it (else INVALID_ARGUMENT).
fn stage_warehouse<'a>(stage: &StageDef, warehouse: &'a str) -> Result<&'a str, Rejection> {
    match stage.request_for(warehouse) {
        Some(_) => Ok(warehouse),
        None => Err(Rejection::invalid(
            "warehouse",
            format!(
                "stage {} does not take freight from warehouse {warehouse} (it takes {})",
                stage.name,
                stage.warehouses().collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn newest_available<'a>(
    state: &'a ProjectState,
    stage_def: &StageDef,
    ctx: &Context,
) -> Result<&'a Freight, Rejection> {
    state
        .newest_where(|f| available_to(f, stage_def, ctx.now).is_ok())
        .ok_or_else(|| {
            // A stage as it takes one warehouse's freight (see
            // `StageDef::for_warehouse`) says which.
            let of = match stage_def.requested_freight.as_slice() {
                [one] if takes_several(state, &stage_def.name) => {
                    format!(" of warehouse {}", one.origin)
                }
                _ => String::new(),
            };
            let none = format!("no freight{of} is available to stage {}", stage_def.name);
            match why_none_available(state, stage_def, ctx.now) {
                NoneAvailable::Upstream {
                    upstream,
                    freight: f,
                    why,
                } => {
                    let label = if f.alias.is_empty() {
                        f.id.clone()
                    } else {
                        format!("{} ({})", f.alias, f.id)
                    };
                    let message = format!("{none}: {upstream} runs {label}, which is not: {why}");
                    match not_available(&f.id, &stage_def.name, why) {
                        Rejection::Policy {
                            reason, details, ..
                        } => Rejection::Policy {
                            reason,
                            message,
                            details,
                        },
                        other => other,
                    }
                }
                NoneAvailable::NothingYet(why) => Rejection::policy(
                    Reason::FreightNotAvailable,
                    format!("{none}: {why}"),
                    [("stage", stage_def.name.clone())],
                ),
            }
        })
}

/// Whether stage `name` of the pipeline in force takes freight from
/// several warehouses.
fn takes_several(state: &ProjectState, name: &str) -> bool {
    state
        .definition()
        .and_then(|d| d.stage(name))
        .is_some_and(|s| s.requested_freight.len() > 1)
}

fn promote(
    state: &ProjectState,
    ctx: &Context,
    stage_def: &StageDef,
    f: &Freight,
    ticket: &str,
    reason: &str,
) -> Result<Decision, Rejection> {
    let stage_name = &stage_def.name;
    if let Err(why) = available_to(f, stage_def, ctx.now) {
        return Err(not_available(&f.id, stage_name, why));
    }
    if state.stages.get(stage_name).is_some_and(|s| s.runs(&f.id)) {
        return Err(Rejection::policy(
            Reason::AlreadyCurrent,
            format!("freight {} is already current in stage {stage_name}", f.id),
            [("freight", f.id.clone())],
        ));
    }
    if let Some(p) = state.in_flight(stage_name, &f.id) {
        return Err(Rejection::policy(
            Reason::AlreadyInFlight,
            format!(
                "promotion {} of freight {} into {stage_name} is already {}",
                p.id,
                f.id,
                p.status.name()
            ),
            [("promotion", p.id.clone())],
        ));
    }
    let policy = &stage_def.policy;
    if !ctx.is_service() {
        check_ticket(policy, ticket)?;
    }
    // An emergency bypass of this freight for this stage skips windows and freezes.
    if !f.bypassed_for(stage_name) {
        check_open(policy, ctx.now)?;
    }
    let id = promotion_id(&ctx.command_id);
    Ok(Decision::Append {
        payload: EventPayload::PromotionRequested(PromotionRequested {
            promotion_id: id.clone(),
            stage: stage_name.clone(),
            freight_id: f.id.clone(),
            ticket: ticket.to_string(),
            reason: reason.to_string(),
        }),
        subject: format!("stage/{stage_name}/promotion/{id}"),
    })
}

/// `FREIGHT_NOT_AVAILABLE`, naming what is missing.
pub(crate) fn not_available(freight: &str, stage: &str, why: Unavailable) -> Rejection {
    let mut details = vec![
        ("freight", freight.to_string()),
        ("stage", stage.to_string()),
    ];
    match &why {
        Unavailable::NotVerifiedUpstream { missing } => {
            details.push(("cause", "NOT_VERIFIED_UPSTREAM".into()));
            details.push(("upstream", missing.join(",")));
        }
        Unavailable::SoakIncomplete {
            upstream,
            soaked,
            required,
            complete_at,
        } => {
            details.push(("cause", "SOAK_INCOMPLETE".into()));
            details.push(("upstream", upstream.clone()));
            details.push(("soaked", soaked.to_string()));
            details.push(("required_soak", required.to_string()));
            if let Some(at) = complete_at {
                details.push((
                    "soak_complete_at",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ));
            }
        }
        Unavailable::OriginNotRequested { origin, .. } => {
            details.push(("cause", "ORIGIN_NOT_REQUESTED".into()));
            details.push(("origin", origin.clone()));
        }
        _ => {}
    }
    Rejection::policy(
        Reason::FreightNotAvailable,
        format!("freight {freight} is not available to stage {stage}: {why}"),
        details,
    )
}
