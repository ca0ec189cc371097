//! The one availability predicate, used by command checks, queries and
//! auto-promotion alike (DESIGN §1), and the auto-promotion candidate.
//!
//! Freight F is available to stage S iff S requests F's origin and one of:
//! F is approved for S; the request is `direct`; `All`: F is verified and
//! soaked (`>=`) in every listed upstream; `OneOf`: in at least one.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::duration::Seconds;
use super::pipeline::{AutoSelection, Availability, Gate, PolicyMode, StageDef};
use super::state::{Freight, ProjectState};
use super::window::{self, Openness};

/// Why a freight is not available to a stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Unavailable {
    /// The project has no pipeline yet.
    NoPipeline,
    UnknownStage {
        stage: String,
    },
    UnknownFreight {
        freight: String,
    },
    /// The stage does not take freight from this warehouse.
    OriginNotRequested {
        origin: String,
        stage: String,
    },
    /// Not verified in the listed upstream stages.
    NotVerifiedUpstream {
        missing: Vec<String>,
    },
    /// Verified upstream, but not for long enough.
    SoakIncomplete {
        upstream: String,
        soaked: Seconds,
        required: Seconds,
        /// When the soak completes if the freight keeps running verified
        /// upstream; `None` when it no longer does (its soak is not going on).
        complete_at: Option<DateTime<Utc>>,
    },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NoPipeline => write!(f, "the project has no pipeline"),
            Unavailable::UnknownStage { stage } => write!(f, "no stage {stage:?}"),
            Unavailable::UnknownFreight { freight } => write!(f, "no freight {freight:?}"),
            Unavailable::OriginNotRequested { origin, stage } => {
                write!(
                    f,
                    "stage {stage} does not take freight from warehouse {origin}"
                )
            }
            Unavailable::NotVerifiedUpstream { missing } => {
                write!(
                    f,
                    "not verified in upstream stage(s) {}",
                    missing.join(", ")
                )
            }
            Unavailable::SoakIncomplete {
                upstream,
                soaked,
                required,
                complete_at,
            } => {
                write!(
                    f,
                    "soaked {soaked} of the required {required} in upstream stage {upstream}"
                )?;
                match complete_at {
                    Some(at) => write!(
                        f,
                        " (complete at {}, if it keeps running there verified)",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    None => write!(f, " (it no longer runs there verified)"),
                }
            }
        }
    }
}

/// Is `freight` available to `stage` at `now`?
pub fn check_available(
    state: &ProjectState,
    freight: &str,
    stage: &str,
    now: DateTime<Utc>,
) -> Result<(), Unavailable> {
    let def = state.definition().ok_or(Unavailable::NoPipeline)?;
    let stage_def = def.stage(stage).ok_or_else(|| Unavailable::UnknownStage {
        stage: stage.to_string(),
    })?;
    let f = state
        .freight
        .get(freight)
        .ok_or_else(|| Unavailable::UnknownFreight {
            freight: freight.to_string(),
        })?;
    available_to(f, stage_def, now)
}

/// The predicate on an already resolved freight and stage.
pub fn available_to(f: &Freight, stage: &StageDef, now: DateTime<Utc>) -> Result<(), Unavailable> {
    let request =
        stage
            .request_for(&f.warehouse)
            .ok_or_else(|| Unavailable::OriginNotRequested {
                origin: f.warehouse.clone(),
                stage: stage.name.clone(),
            })?;
    if f.approved_for.contains_key(&stage.name) || request.sources.direct {
        return Ok(());
    }
    let upstreams = &request.sources.stages;
    let mut missing = Vec::new();
    let mut short_soak = None;
    let mut any_ok = false;
    for up in upstreams {
        match f.verified_in.get(up) {
            None => missing.push(up.clone()),
            Some(v) => {
                let soaked = v.soak(now);
                if soaked >= request.required_soak {
                    any_ok = true;
                } else if short_soak.is_none() {
                    short_soak = Some(Unavailable::SoakIncomplete {
                        upstream: up.clone(),
                        soaked,
                        required: request.required_soak,
                        complete_at: v
                            .since
                            .map(|since| since + request.required_soak.as_duration()),
                    });
                }
            }
        }
    }
    let all_ok = missing.is_empty() && short_soak.is_none() && !upstreams.is_empty();
    let ok = match request.availability {
        Availability::OneOf => any_ok,
        Availability::All => all_ok,
    };
    if ok {
        return Ok(());
    }
    if !missing.is_empty() && (request.availability == Availability::All || short_soak.is_none()) {
        return Err(Unavailable::NotVerifiedUpstream { missing });
    }
    Err(short_soak.unwrap_or(Unavailable::NotVerifiedUpstream { missing }))
}

/// Why no freight is available to a stage (see [`why_none_available`]).
#[derive(Debug, Clone, PartialEq)]
pub enum NoneAvailable<'a> {
    /// `upstream` runs `freight`, which is not available to the stage yet.
    Upstream {
        upstream: &'a str,
        freight: &'a Freight,
        why: Unavailable,
    },
    /// Nothing has reached the stage's sources yet: per warehouse it takes,
    /// "warehouse images has delivered nothing" or "nothing of warehouse
    /// images has run in dev".
    NothingYet(String),
}

/// Why nothing is available to `stage`, for a stage to which nothing is:
/// the first freight an upstream runs that is not available, with the
/// reason, which is what a user waiting for "the newest available" waits
/// for. Reads only what stages run, which a working set always holds.
pub fn why_none_available<'a>(
    state: &'a ProjectState,
    stage: &StageDef,
    now: DateTime<Utc>,
) -> NoneAvailable<'a> {
    let upstream = stage.requested_freight.iter().find_map(|r| {
        r.sources.stages.iter().find_map(|up| {
            let (name, st) = state.stages.get_key_value(up)?;
            let f = state.freight.get(&st.current_for(&r.origin)?.freight)?;
            let why = available_to(f, stage, now).err()?;
            Some(NoneAvailable::Upstream {
                upstream: name.as_str(),
                freight: f,
                why,
            })
        })
    });
    upstream.unwrap_or_else(|| {
        let parts: Vec<String> = stage
            .requested_freight
            .iter()
            .map(|r| match (r.sources.direct, r.sources.stages.as_slice()) {
                (true, _) | (false, []) => {
                    format!("warehouse {} has delivered nothing", r.origin)
                }
                (false, ups) => format!(
                    "nothing of warehouse {} has run in {}",
                    r.origin,
                    ups.join(" or ")
                ),
            })
            .collect();
        NoneAvailable::NothingYet(parts.join("; "))
    })
}

/// Do the stage's gates pass for `f` (checks and metrics recorded anywhere)?
/// Returns the first gate that does not.
pub fn gates_pass<'a>(f: &Freight, gates: &'a [Gate]) -> Result<(), &'a Gate> {
    for gate in gates {
        let mut results = f.checks.values().flat_map(|checks| checks.iter());
        let ok = match (&gate.check, &gate.metric) {
            (Some(check), _) => results.any(|(c, r)| c == check && r.passed),
            (None, Some(metric)) => results.filter(|(_, r)| r.passed).any(|(_, r)| {
                r.metrics.get(metric).is_some_and(|v| {
                    gate.min.is_none_or(|min| *v >= min) && gate.max.is_none_or(|max| *v <= max)
                })
            }),
            (None, None) => true,
        };
        if !ok {
            return Err(gate);
        }
    }
    Ok(())
}

/// The freight of `warehouse` auto-promotion would pick for `stage` at
/// `now`, if any (availability only; holds, failures and gates are the
/// reactor's business). A stage takes freight from each warehouse it
/// requests on its own: auto-promotion picks one candidate per warehouse.
pub fn auto_candidate<'a>(
    state: &'a ProjectState,
    stage: &StageDef,
    warehouse: &str,
    now: DateTime<Utc>,
) -> Option<&'a Freight> {
    let request = stage.request_for(warehouse)?;
    match stage.auto_selection {
        AutoSelection::NewestFreight => {
            state.newest_where(|f| f.warehouse == warehouse && available_to(f, stage, now).is_ok())
        }
        AutoSelection::MatchUpstream => {
            let upstream = request.sources.stages.first()?;
            let current = state.stages.get(upstream)?.current_for(warehouse)?;
            let f = state.freight.get(&current.freight)?;
            available_to(f, stage, now).ok().map(|()| &**f)
        }
    }
}

/// What auto-promotion does for a stage now, and if nothing, why: the one
/// judgement the reactor acts on and the query side shows.
#[derive(Debug, Clone, PartialEq)]
pub enum AutoStanding<'a> {
    /// A manual stage: people request its promotions.
    Manual,
    /// A manual promotion of other freight (a rollback) holds the stage's
    /// freight of this warehouse (promoting by hand what auto-promotion
    /// would take releases it).
    Held { freight: &'a str },
    /// No freight is available to the stage.
    NothingAvailable,
    /// The candidate already runs in the stage.
    Current(&'a Freight),
    /// The candidate's promotion into the stage is under way.
    InFlight(&'a Freight),
    /// The candidate's latest promotion into the stage failed: not retried.
    Failed(&'a Freight),
    /// A gated stage whose gate the candidate does not pass.
    GateNotPassed {
        freight: &'a Freight,
        gate: &'a Gate,
    },
    /// The candidate is due, but a freeze or the stage's windows refuse
    /// promotions now, auto-promotion's as anyone's (an emergency bypass of
    /// the freight for the stage excepted): it is requested once they allow.
    Closed {
        freight: &'a Freight,
        openness: Openness,
    },
    /// Auto-promotion requests the candidate.
    Due(&'a Freight),
}

/// What auto-promotion does for `stage`'s freight of `warehouse` in `state`
/// at `now` (DESIGN §1: skip when held, when the candidate is current or in
/// flight, when its latest promotion failed, and, gated, until the gates
/// pass).
pub fn auto_standing<'a>(
    state: &'a ProjectState,
    stage: &'a StageDef,
    warehouse: &str,
    now: DateTime<Utc>,
) -> AutoStanding<'a> {
    auto_standing_with(state, stage, warehouse, now, || {
        auto_candidate(state, stage, warehouse, now)
    })
}

/// [`auto_standing`] with the candidate found by `candidate` (asked only
/// when the stage is not manual or held): a working set that holds part of
/// the freight finds it in its store as well.
pub fn auto_standing_with<'a>(
    state: &'a ProjectState,
    stage: &'a StageDef,
    warehouse: &str,
    now: DateTime<Utc>,
    candidate: impl FnOnce() -> Option<&'a Freight>,
) -> AutoStanding<'a> {
    if stage.policy.mode == PolicyMode::Manual {
        return AutoStanding::Manual;
    }
    let Some(st) = state.stages.get(&stage.name) else {
        return AutoStanding::NothingAvailable;
    };
    let current = st.current_for(warehouse);
    if let Some(held) = current.filter(|c| c.held) {
        return AutoStanding::Held {
            freight: &held.freight,
        };
    }
    let Some(candidate) = candidate() else {
        return AutoStanding::NothingAvailable;
    };
    if current.map(|c| c.freight.as_str()) == Some(candidate.id.as_str()) {
        AutoStanding::Current(candidate)
    } else if state.in_flight(&stage.name, &candidate.id).is_some() {
        AutoStanding::InFlight(candidate)
    } else if st.failed.contains(&candidate.id) {
        AutoStanding::Failed(candidate)
    } else if stage.policy.mode == PolicyMode::Gated {
        match gates_pass(candidate, &stage.policy.gates) {
            Ok(()) => due_unless_closed(candidate, stage, now),
            Err(gate) => AutoStanding::GateNotPassed {
                freight: candidate,
                gate,
            },
        }
    } else {
        due_unless_closed(candidate, stage, now)
    }
}

/// `Due`, unless the stage's windows or a freeze refuse the candidate now.
fn due_unless_closed<'a>(
    candidate: &'a Freight,
    stage: &StageDef,
    now: DateTime<Utc>,
) -> AutoStanding<'a> {
    match window::openness(&stage.policy, now) {
        // A time zone the tz database does not know was refused when the
        // pipeline was applied; the request would say so.
        Ok(Openness::Open) | Err(_) => AutoStanding::Due(candidate),
        Ok(_) if candidate.bypassed_for(&stage.name) => AutoStanding::Due(candidate),
        Ok(openness) => AutoStanding::Closed {
            freight: candidate,
            openness,
        },
    }
}
