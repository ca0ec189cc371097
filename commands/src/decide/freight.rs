//! `RecordDiscovery`, `RecordVerification` and `ApproveFreight` (the bypass).

use waybill_ledger::domain::{
    available_to, freight_id, CommandOutcome, ProjectState, Unavailable, WarehouseDef,
    WarehouseKind,
};
use waybill_ledger::event::{
    Artifact, ArtifactKind, FreightApproved, FreightDiscovered, VerificationRecorded,
};
use waybill_ledger::name::did_you_mean;
use waybill_ledger::EventPayload;

use super::{pipeline, stage, Decision};
use crate::command::{Command, Context};
use crate::policy::check_ticket;
use crate::rejection::{Reason, Rejection};

pub(super) fn discover(state: &ProjectState, command: &Command) -> Result<Decision, Rejection> {
    let Command::RecordDiscovery {
        warehouse,
        artifacts,
        alias,
    } = command
    else {
        unreachable!("dispatched by decide")
    };
    let def = pipeline(state)?;
    let Some(warehouse_def) = def.warehouse(warehouse) else {
        return Err(Rejection::invalid(
            "warehouse",
            format!(
                "project {} has no warehouse {warehouse:?}{}",
                state.project,
                did_you_mean(warehouse, def.warehouses.iter().map(|w| w.name.as_str()))
            ),
        ));
    };
    if artifacts.is_empty() {
        return Err(Rejection::invalid(
            "artifacts",
            "a freight needs at least one artifact",
        ));
    }
    for (i, a) in artifacts.iter().enumerate() {
        if let Some(problem) = foreign(warehouse_def, a) {
            return Err(Rejection::invalid(&format!("artifacts[{i}]"), problem));
        }
    }
    let id = freight_id(warehouse, artifacts);
    if let Some(existing) = state.freight.get(&id) {
        // Re-discovery of the same contents is the same freight; its alias
        // is the one it was discovered with. A different one would be
        // silently dropped (and the name would then resolve to nothing), so
        // it is refused.
        if !alias.is_empty() && *alias != existing.alias {
            let had = if existing.alias.is_empty() {
                "without an alias".to_string()
            } else {
                format!("as {:?}", existing.alias)
            };
            return Err(Rejection::invalid(
                "alias",
                format!(
                    "freight {id} was discovered at position {} {had}: a freight's alias is \
                     given once, when it is first discovered (discover it again without \
                     --alias, or with the same one)",
                    existing.discovered.0
                ),
            ));
        }
        return Ok(Decision::AlreadyDone(CommandOutcome {
            position: existing.discovered,
            event_id: existing.discovered_id,
        }));
    }
    if !alias.is_empty() {
        if let Some(other) = state.aliases.get(alias) {
            return Err(Rejection::invalid(
                "alias",
                format!("alias {alias:?} already names freight {other}"),
            ));
        }
        if state.freight.contains_key(alias) {
            return Err(Rejection::invalid(
                "alias",
                "an alias cannot be a freight id",
            ));
        }
    }
    Ok(Decision::Append {
        payload: EventPayload::FreightDiscovered(FreightDiscovered {
            freight_id: id.clone(),
            warehouse: warehouse.clone(),
            artifacts: artifacts.clone(),
            alias: alias.clone(),
        }),
        subject: format!("freight/{id}"),
    })
}

/// Why artifact `a` cannot come from warehouse `w`, if it cannot: a
/// warehouse of kind image, git or chart holds artifacts of that kind only,
/// and an image or git warehouse with a `source` only artifacts from it (a
/// CI job pushing another repository's image into it would otherwise have
/// it promoted as the warehouse's freight). A `pushed` warehouse takes
/// anything.
fn foreign(w: &WarehouseDef, a: &Artifact) -> Option<String> {
    let kind = match w.kind {
        WarehouseKind::Pushed => return None,
        WarehouseKind::Image => ArtifactKind::Image,
        WarehouseKind::Git => ArtifactKind::Git,
        WarehouseKind::Chart => ArtifactKind::Chart,
    };
    let name = |k: ArtifactKind| match k {
        ArtifactKind::Image => "image",
        ArtifactKind::Git => "git",
        ArtifactKind::Chart => "chart",
    };
    if a.kind != kind {
        return Some(format!(
            "{} {} cannot come from warehouse {}, which holds {} artifacts only",
            name(a.kind),
            a.name,
            w.name,
            name(kind)
        ));
    }
    let same = match kind {
        ArtifactKind::Image => |s: &str| s.trim_end_matches('/').to_string(),
        ArtifactKind::Git => |s: &str| {
            let s = s.trim_end_matches('/');
            s.strip_suffix(".git").unwrap_or(s).to_ascii_lowercase()
        },
        // A chart warehouse's source is the chart repository, not the chart.
        ArtifactKind::Chart => return None,
    };
    (!w.source.is_empty() && same(&a.name) != same(&w.source)).then(|| {
        format!(
            "{} {} cannot come from warehouse {}, whose source is {}",
            name(kind),
            a.name,
            w.name,
            w.source
        )
    })
}

pub(super) fn verify(state: &ProjectState, command: &Command) -> Result<Decision, Rejection> {
    let Command::RecordVerification {
        freight,
        stage: stage_name,
        check,
        passed,
        metrics,
        evidence_url,
        details,
    } = command
    else {
        unreachable!("dispatched by decide")
    };
    stage(state, stage_name)?;
    let f = state
        .resolve_freight(freight)
        .ok_or_else(|| Rejection::NotFound {
            what: "freight",
            id: freight.clone(),
        })?;
    Ok(Decision::Append {
        payload: EventPayload::VerificationRecorded(VerificationRecorded {
            freight_id: f.id.clone(),
            stage: stage_name.clone(),
            check: check.clone(),
            passed: *passed,
            metrics: metrics.clone(),
            evidence_url: evidence_url.clone(),
            details: details.clone(),
        }),
        subject: format!("stage/{stage_name}/freight/{}", f.id),
    })
}

pub(super) fn bypass(
    state: &ProjectState,
    ctx: &Context,
    command: &Command,
) -> Result<Decision, Rejection> {
    let Command::ApproveFreight {
        freight,
        stage: stage_name,
        reason,
        ticket,
    } = command
    else {
        unreachable!("dispatched by decide")
    };
    if reason.trim().is_empty() {
        return Err(Rejection::invalid(
            "reason",
            "an emergency bypass needs a reason",
        ));
    }
    let stage_def = stage(state, stage_name)?;
    let f = state
        .resolve_freight(freight)
        .ok_or_else(|| Rejection::NotFound {
            what: "freight",
            id: freight.clone(),
        })?;
    let policy = &stage_def.policy;
    if !policy.bypass.is_empty() && !policy.bypass.iter().any(|s| ctx.matches(s)) {
        return Err(Rejection::policy(
            Reason::BypassNotAllowed,
            format!(
                "{} may not bypass into stage {stage_name}; allowed: {}",
                ctx.actor.principal,
                policy.bypass.join(", ")
            ),
            [("stage", stage_name.clone())],
        ));
    }
    check_ticket(policy, ticket)?;
    if let Err(Unavailable::OriginNotRequested { origin, stage }) =
        available_to(f, stage_def, ctx.now)
    {
        return Err(Rejection::policy(
            Reason::FreightNotAvailable,
            format!("stage {stage} does not take freight from warehouse {origin}"),
            [("origin", origin)],
        ));
    }
    Ok(Decision::Append {
        payload: EventPayload::FreightApproved(FreightApproved {
            freight_id: f.id.clone(),
            stage: stage_name.clone(),
            reason: reason.clone(),
            ticket: ticket.clone(),
            bypass: true,
        }),
        subject: format!("stage/{stage_name}/freight/{}", f.id),
    })
}
