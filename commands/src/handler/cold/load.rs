//! Loading back what a command reads before it is decided.

use super::*;

/// Loads into `state` what deciding `command` at `now` reads, so that the
/// decision equals the one taken with every record in memory. `command_id`
/// is its idempotency key, if it may have been used before (`None`: made up
/// for this command).
pub fn load_for_command(
    cold: &ProjectCold<'_>,
    state: &mut ProjectState,
    command: &Command,
    command_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), CommandError> {
    if let Some(id) = command_id {
        let k = CommandKey::of(id);
        if let std::collections::hash_map::Entry::Vacant(slot) = state.commands.entry(k) {
            if let Some(outcome) = cold.command(&k)? {
                slot.insert(outcome);
            }
        }
    }
    match command {
        Command::ApplyPipeline { .. } => {}
        Command::RecordDiscovery {
            warehouse,
            artifacts,
            alias,
        } => {
            working_set::load_freight(cold, state, &freight_id(warehouse, artifacts))?;
            if !alias.is_empty() {
                cold.load_named(state, alias)?;
            }
        }
        Command::RecordVerification { freight, .. } | Command::ApproveFreight { freight, .. } => {
            cold.load_named(state, freight)?;
        }
        Command::RequestPromotion { stage, freight, .. } => match freight {
            FreightSelector::Named(name) => cold.load_named(state, name)?,
            FreightSelector::NewestAvailable => {
                let def = state.definition().and_then(|d| d.stage(stage)).cloned();
                if let Some(def) = def {
                    working_set::load_newest_available(cold, state, &def, now)?;
                }
            }
            FreightSelector::NewestOf(warehouse) => {
                let def = state
                    .definition()
                    .and_then(|d| d.stage(stage))
                    .and_then(|d| d.for_warehouse(warehouse));
                if let Some(def) = def {
                    working_set::load_newest_available(cold, state, &def, now)?;
                }
            }
        },
        Command::ApprovePromotion { promotion, .. }
        | Command::RejectPromotion { promotion, .. }
        | Command::AbortPromotion { promotion, .. }
        | Command::ReportPromotionResult { promotion, .. } => {
            if working_set::load_promotion(cold, state, promotion)? {
                let freight = state.promotions.get(promotion).map(|p| p.freight.clone());
                if let Some(freight) = freight {
                    working_set::load_freight(cold, state, &freight)?;
                }
            }
        }
        Command::Rollback {
            stage, warehouse, ..
        } => load_rollback(cold, state, stage, warehouse, now)?,
    }
    Ok(())
}

/// How many ids a refusal of an ambiguous start of an id lists at most.
const SHOWN: usize = 5;

/// `command` with the freight it names by the start of its id named by the
/// whole id instead, that freight in `state` (loaded from `cold`, if the
/// project keeps records there); `command` itself when what it names is an
/// id or an alias (they go first), not hex digits enough for the start of an
/// id, or the start of no id (the decision says it was not found). The
/// start of several ids is refused, naming some of them.
pub fn whole_freight_id<'c>(
    cold: Option<&ProjectCold<'_>>,
    state: &mut ProjectState,
    command: &'c Command,
) -> Result<std::borrow::Cow<'c, Command>, CommandError> {
    use std::borrow::Cow;
    let Some(start) = command.freight_named() else {
        return Ok(Cow::Borrowed(command));
    };
    if !is_id_prefix(start) || state.resolve_freight(start).is_some() {
        return Ok(Cow::Borrowed(command));
    }
    // Freight is in memory, kept in the store, or both (loaded back).
    let kept = match cold {
        Some(cold) => cold.freight_starting(start, SHOWN)?,
        None => Vec::new(),
    };
    let mut ids = ids_starting(&state.freight, start, kept);
    match ids.len() {
        0 => Ok(Cow::Borrowed(command)),
        1 => {
            let id = ids.remove(0);
            if let Some(cold) = cold {
                working_set::load_freight(cold, state, &id)?;
            }
            let mut whole = command.clone();
            if let Some(name) = whole.freight_named_mut() {
                *name = id;
            }
            Ok(Cow::Owned(whole))
        }
        _ => {
            ids.truncate(SHOWN);
            Err(Rejection::invalid(
                "freight",
                ambiguous_start("freight", start, state.project.as_str(), &ids),
            )
            .into())
        }
    }
}

/// `command` with the promotion it names by the start of its id
/// (`prm-2c0cc3`) named by the whole id instead, when one promotion of the
/// project, in `state` or kept in `cold`, has an id that starts so;
/// `command` itself otherwise, with the ids (some of them) when several
/// start so. Which is not said here: the caller says it once the caller
/// may know which promotions there are.
pub fn whole_promotion_id<'c>(
    cold: Option<&ProjectCold<'_>>,
    state: &ProjectState,
    command: &'c Command,
) -> Result<(std::borrow::Cow<'c, Command>, Vec<String>), CommandError> {
    use std::borrow::Cow;
    let Some(start) = command.promotion() else {
        return Ok((Cow::Borrowed(command), Vec::new()));
    };
    if !is_promotion_id_prefix(start) || state.promotions.contains_key(start) {
        return Ok((Cow::Borrowed(command), Vec::new()));
    }
    let kept = match cold {
        Some(cold) => cold.promotions_starting(start, SHOWN)?,
        None => Vec::new(),
    };
    let mut ids = ids_starting(&state.promotions, start, kept);
    match ids.len() {
        0 => Ok((Cow::Borrowed(command), Vec::new())),
        1 => {
            let mut whole = command.clone();
            if let Some(named) = whole.promotion_mut() {
                *named = ids.remove(0);
            }
            Ok((Cow::Owned(whole), Vec::new()))
        }
        _ => {
            ids.truncate(SHOWN);
            Ok((Cow::Borrowed(command), ids))
        }
    }
}

/// The ids of `memory` that start with `start` and those `kept` in the
/// store (each at most [`SHOWN`]), sorted, once each.
fn ids_starting<V>(
    memory: &std::collections::BTreeMap<String, V>,
    start: &str,
    kept: Vec<String>,
) -> Vec<String> {
    let mut ids: BTreeSet<String> = memory
        .range(start.to_string()..)
        .take_while(|(id, _)| id.starts_with(start))
        .take(SHOWN)
        .map(|(id, _)| id.clone())
        .collect();
    ids.extend(kept);
    ids.into_iter().collect()
}

/// Loads the stage's succeeded promotions, latest first, with their freight,
/// until one that a rollback may pick (its freight is not current there and
/// still available): the promotions a rollback decision compares.
pub(super) fn load_rollback(
    cold: &ProjectCold<'_>,
    state: &mut ProjectState,
    stage: &str,
    warehouse: &str,
    now: DateTime<Utc>,
) -> Result<(), CommandError> {
    // The stage as it takes freight from that warehouse (the decision
    // refuses a warehouse it cannot tell).
    let def = state
        .definition()
        .and_then(|d| d.stage(stage))
        .and_then(|d| d.for_warehouse(rollback_warehouse(d, warehouse).ok()?));
    let Some(def) = def else {
        return Ok(());
    };
    let origin = def.requested_freight[0].origin.clone();
    let current = state
        .stages
        .get(stage)
        .and_then(|s| s.current_for(&origin))
        .map(|c| c.freight.clone());
    // Is the freight of promotion `id` (loaded with it) one to roll back to?
    let target = |state: &mut ProjectState, id: &str| -> Result<bool, CommandError> {
        working_set::load_promotion(cold, state, id)?;
        let Some(freight) = state.promotions.get(id).map(|p| p.freight.clone()) else {
            return Ok(false);
        };
        working_set::load_freight(cold, state, &freight)?;
        Ok(Some(&freight) != current.as_ref()
            && state
                .freight
                .get(&freight)
                .is_some_and(|f| available_to(f, &def, now).is_ok()))
    };
    // Those kept here, then those in memory, each down to the first target:
    // the rollback's pick is the later of the two.
    for id in cold.succeeded_newest_first(stage) {
        if target(state, &id?)? {
            break;
        }
    }
    let mut succeeded: Vec<(Position, String)> = state
        .promotions
        .values()
        .filter(|p| p.stage == stage && p.status == PromotionStatus::Succeeded)
        .map(|p| (p.requested, p.id.clone()))
        .collect();
    succeeded.sort_unstable_by(|a, b| b.cmp(a));
    for (_, id) in succeeded {
        if target(state, &id)? {
            break;
        }
    }
    Ok(())
}

/// Loads into `state` the freight auto-promotion would pick at `now` for
/// each stage where it picks the newest available.
pub fn load_auto_candidates(
    cold: &ProjectCold<'_>,
    state: &mut ProjectState,
    now: DateTime<Utc>,
) -> Result<(), CommandError> {
    // One candidate per warehouse of each stage.
    let stages: Vec<_> = state
        .definition()
        .map(|d| {
            d.stages
                .iter()
                .filter(|s| working_set::picks_newest(s))
                .flat_map(|s| s.warehouses().filter_map(|w| s.for_warehouse(w)))
                .collect()
        })
        .unwrap_or_default();
    for def in stages {
        working_set::load_newest_available(cold, state, &def, now)?;
    }
    Ok(())
}
