//! Read models → wire types. Protobuf stops here.

use chrono::{DateTime, Utc};
use waybill_ledger::domain::window::{self, Openness};
use waybill_ledger::domain::{
    auto_standing_with, available_to, why_none_available, AutoStanding, Current, Freight, Gate,
    NoneAvailable, PolicyMode, ProjectState, Promotion, StageDef,
};
use waybill_ledger::event::ArtifactKind;
use waybill_proto::v1 as pb;

use crate::history::HistoryItem;

pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn mode(m: PolicyMode) -> &'static str {
    match m {
        PolicyMode::Auto => "auto",
        PolicyMode::Gated => "gated",
        PolicyMode::Manual => "manual",
    }
}

/// The promotion policy of `def`, from the pipeline version `version`, and
/// whether it allows a promotion at `now`.
pub fn policy(def: &StageDef, version: u64, now: DateTime<Utc>) -> pb::StagePolicy {
    let p = &def.policy;
    let (state, until, closed_reason) = openness(def, now);
    let minute = |t: chrono::NaiveTime| t.format("%H:%M").to_string();
    let stamp = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M").to_string();
    pb::StagePolicy {
        mode: mode(p.mode).to_string(),
        required_approvals: p.required_approvals,
        separation_of_duties: p.separation_of_duties,
        ticket_pattern: p.ticket_pattern.clone().unwrap_or_default(),
        timezone: p.timezone.clone(),
        windows: p
            .windows
            .iter()
            .map(|w| format!("{} {}-{}", days(&w.days), minute(w.start), minute(w.end)))
            .collect(),
        freezes: p
            .freezes
            .iter()
            .map(|f| {
                let mut text = match (f.from, f.to) {
                    (Some(from), Some(to)) => format!("{} to {}", stamp(from), stamp(to)),
                    (Some(from), None) => format!("from {}", stamp(from)),
                    (None, Some(to)) => format!("until {}", stamp(to)),
                    (None, None) => String::new(),
                };
                if !f.days.is_empty() {
                    let d = days(&f.days);
                    text = if text.is_empty() {
                        d
                    } else {
                        format!("{d}, {text}")
                    };
                }
                if !f.reason.is_empty() {
                    text = format!("{text}: {}", f.reason);
                }
                text
            })
            .collect(),
        gates: p.gates.iter().map(gate).collect(),
        bypass: p.bypass.clone(),
        policy_version: version,
        now: state.to_string(),
        until,
        closed_reason,
        auto_promotion: String::new(),
    }
}

/// Whether `def`'s windows and freezes allow a promotion at `now`: `open`,
/// `frozen` or `closed`, until when (RFC 3339, or empty), and why.
/// Whether `f` is verified in `stage` now, in a word or two (see
/// `VerifiedIn.now`).
fn verified_now(f: &Freight, stage: &str, v: &waybill_ledger::domain::Verified) -> String {
    if v.since.is_some() {
        return "verified".into();
    }
    if !f.currently_in.contains_key(stage) {
        return "left".into();
    }
    let failed: Vec<&str> = f
        .checks
        .get(stage)
        .into_iter()
        .flat_map(|checks| checks.iter())
        .filter(|(_, r)| !r.passed)
        .map(|(check, _)| check.as_str())
        .collect();
    if failed.is_empty() {
        "not verified".into()
    } else {
        format!("failed: {}", failed.join(", "))
    }
}

/// A gate as the policy shows it: "check integration-tests",
/// "metric p99_ms <= 250".
fn gate(g: &Gate) -> String {
    match (&g.check, &g.metric) {
        (Some(check), _) => format!("check {check}"),
        (None, Some(metric)) => {
            let mut text = format!("metric {metric}");
            if let Some(min) = g.min {
                text.push_str(&format!(" >= {min}"));
            }
            if let Some(max) = g.max {
                text.push_str(&format!(" <= {max}"));
            }
            text
        }
        (None, None) => String::new(),
    }
}

/// What auto-promotion does for the stage at `now`, and if nothing, why
/// (empty for a manual stage), given the freight it would take.
pub fn auto_promotion(
    state: &ProjectState,
    def: &StageDef,
    warehouse: &str,
    now: DateTime<Utc>,
    candidate: Option<&Freight>,
) -> String {
    let label = Freight::label;
    match auto_standing_with(state, def, warehouse, now, || candidate) {
        AutoStanding::Manual => String::new(),
        AutoStanding::Held { freight } => {
            let held = state
                .freight
                .get(freight)
                .map_or_else(|| freight.chars().take(12).collect(), |f| label(f));
            match candidate {
                Some(c) if c.id != *freight => format!(
                    "held by the manual promotion of {held}: {} waits (promoting it here \
                     releases the hold)",
                    label(c)
                ),
                _ => format!("held by the manual promotion of {held}"),
            }
        }
        AutoStanding::NothingAvailable => {
            let one = def.for_warehouse(warehouse);
            let why = match why_none_available(state, one.as_ref().unwrap_or(def), now) {
                NoneAvailable::Upstream {
                    upstream,
                    freight,
                    why,
                } => format!("{upstream} runs {}, which is not: {why}", label(freight)),
                NoneAvailable::NothingYet(why) => why,
            };
            format!("waiting: no freight is available to the stage: {why}")
        }
        AutoStanding::Current(f) => format!("done: {} runs here", label(f)),
        AutoStanding::InFlight(f) => format!("a promotion of {} is under way", label(f)),
        AutoStanding::Failed(f) => format!(
            "stopped: the last promotion of {} here failed, and auto-promotion does not \
             retry it (promote it by hand, or newer freight goes ahead)",
            label(f)
        ),
        AutoStanding::GateNotPassed { freight, gate: g } => {
            let mut text = format!("waiting: {} does not pass gate {}", label(freight), gate(g));
            if let Some(metric) = &g.metric {
                let recorded: Vec<String> = freight
                    .checks
                    .values()
                    .flat_map(|checks| checks.values())
                    .filter(|r| r.passed)
                    .filter_map(|r| r.metrics.get(metric))
                    .map(|v| v.to_string())
                    .collect();
                if recorded.is_empty() {
                    text.push_str(" (no passing check recorded it)");
                } else {
                    text.push_str(&format!(" (recorded: {})", recorded.join(", ")));
                }
            }
            text
        }
        AutoStanding::Closed { freight, openness } => {
            let until = |t: Option<DateTime<Utc>>| t.map(|t| format!(" until {}", time(t)));
            match openness {
                Openness::Frozen { until: end, reason } => format!(
                    "waiting: {} is due, but a freeze is in force{}{}",
                    label(freight),
                    until(end).unwrap_or_default(),
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({reason})")
                    }
                ),
                Openness::Closed { next } => format!(
                    "waiting: {} is due, but outside every promotion window{}",
                    label(freight),
                    until(next).unwrap_or_default()
                ),
                Openness::Open => format!("due: promoting {}", label(freight)),
            }
        }
        AutoStanding::Due(f) => format!("due: promoting {}", label(f)),
    }
}

fn openness(def: &StageDef, now: DateTime<Utc>) -> (&'static str, String, String) {
    let (state, until, reason) = match window::openness(&def.policy, now) {
        Ok(Openness::Open) => ("open", None, String::new()),
        Ok(Openness::Frozen { until, reason }) => ("frozen", until, reason),
        Ok(Openness::Closed { next }) => ("closed", next, String::new()),
        // Checked when the pipeline was applied.
        Err(e) => ("closed", None, e.to_string()),
    };
    (state, until.map(time).unwrap_or_default(), reason)
}

/// The stages of `state` whose freezes or windows do not allow a promotion at `now`.
pub fn closed_now(state: &ProjectState, now: DateTime<Utc>) -> Vec<pb::ClosedStage> {
    let Some(def) = state.definition() else {
        return Vec::new();
    };
    def.stages
        .iter()
        .filter_map(|st| {
            let (state, until, reason) = openness(st, now);
            (state != "open").then(|| pb::ClosedStage {
                stage: st.name.clone(),
                now: state.to_string(),
                until,
                reason,
            })
        })
        .collect()
}

/// Weekdays as a person writes them: `Mon-Fri`, `Sat, Sun`, `every day`.
fn days(list: &[chrono::Weekday]) -> String {
    if list.is_empty() {
        return "every day".to_string();
    }
    let mut sorted: Vec<u32> = list.iter().map(|d| d.num_days_from_monday()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let name =
        |n: u32| ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][n as usize % 7].to_string();
    // Runs of three or more consecutive days read as a range.
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}-{}", name(sorted[i]), name(sorted[j])));
        } else {
            parts.extend(sorted[i..=j].iter().map(|&d| name(d)));
        }
        i = j + 1;
    }
    parts.join(", ")
}

pub fn stage(state: &ProjectState, def: &StageDef) -> pb::Stage {
    let st = state.stages.get(&def.name);
    // In the order the stage lists its warehouses (then any it no longer
    // takes freight from, by name).
    let mut current: Vec<&Current> = st.map(|s| s.current.iter().collect()).unwrap_or_default();
    current.sort_by_key(|c| {
        def.warehouses()
            .position(|w| w == c.warehouse)
            .unwrap_or(usize::MAX)
    });
    let runs: Vec<pb::StageFreight> = current
        .into_iter()
        .map(|c| stage_freight(state, def, c))
        .collect();
    let latest = st
        .and_then(|s| s.latest())
        .and_then(|l| runs.iter().find(|r| r.warehouse == l.warehouse));
    pb::Stage {
        name: def.name.clone(),
        mode: mode(def.policy.mode).to_string(),
        record_only: def.record_only,
        upstreams: def.upstreams().map(str::to_string).collect(),
        current: latest.and_then(|r| r.current.clone()),
        checks: match latest {
            Some(r) => r.checks.clone(),
            None => checks(def, None),
        },
        verified: latest.is_some_and(|r| r.verified),
        queue: st
            .map(|s| s.queue.iter().cloned().collect())
            .unwrap_or_default(),
        running: st.and_then(|s| s.running.clone()).unwrap_or_default(),
        hold: st
            .and_then(|s| s.held().next())
            .map(|c| c.freight.clone())
            .unwrap_or_default(),
        last_promotion: st
            .and_then(|s| s.last_promotion.clone())
            .unwrap_or_default(),
        warehouses: def
            .requested_freight
            .iter()
            .map(|r| r.origin.clone())
            .collect(),
        runs,
    }
}

/// The freight of one warehouse a stage runs, with its checks there.
fn stage_freight(state: &ProjectState, def: &StageDef, c: &Current) -> pb::StageFreight {
    let freight = state.freight.get(&c.freight).map(|f| &**f);
    pb::StageFreight {
        warehouse: c.warehouse.clone(),
        current: Some(pb::CurrentFreight {
            freight: c.freight.clone(),
            alias: freight.map(|f| f.alias.clone()).unwrap_or_default(),
            since: time(c.since),
            promotion: c.promotion.clone(),
            promoted_by: c.promoted_by.clone(),
        }),
        checks: checks(def, freight),
        verified: freight.is_some_and(|f| {
            f.verified_in
                .get(&def.name)
                .is_some_and(|v| v.since.is_some())
        }),
        held: c.held,
    }
}

/// The stage's required checks and their latest result for `freight` there.
fn checks(def: &StageDef, freight: Option<&Freight>) -> Vec<pb::CheckStatus> {
    def.verification
        .iter()
        .map(|check| {
            let result = freight
                .and_then(|f| f.checks.get(&def.name))
                .and_then(|c| c.get(check));
            pb::CheckStatus {
                check: check.clone(),
                result: match result {
                    Some(r) if r.passed => "passed",
                    Some(_) => "failed",
                    None => "pending",
                }
                .to_string(),
                at: result.map(|r| time(r.at)).unwrap_or_default(),
                evidence_url: result.map(|r| r.evidence_url.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

pub fn stages(state: &ProjectState, position: u64) -> pb::ListStagesReply {
    pb::ListStagesReply {
        project: state.project.clone(),
        stages: state
            .definition()
            .map(|d| d.stages.iter().map(|s| stage(state, s)).collect())
            .unwrap_or_default(),
        policy_version: state.policy_version().0,
        closed_now: Vec::new(),
        position,
    }
}

/// The names of the stages the project's pipeline defines now.
pub fn configured_stages(state: &ProjectState) -> Vec<String> {
    state
        .definition()
        .map(|d| d.stages.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default()
}

/// A freight as queries show it. `configured`: the stages the pipeline
/// defines now; `currently_in` names only those, because a stage that a
/// later definition left out is no longer one Waybill tracks (what ran there
/// stays in its history, and comes back if the stage is defined again).
pub fn freight(
    f: &Freight,
    now: DateTime<Utc>,
    configured: &[String],
    available_for: Option<&StageDef>,
) -> pb::Freight {
    let (available, unavailable_reason) = match available_for {
        Some(def) => match available_to(f, def, now) {
            Ok(()) => (true, String::new()),
            Err(why) => (false, why.to_string()),
        },
        None => (false, String::new()),
    };
    pb::Freight {
        id: f.id.clone(),
        warehouse: f.warehouse.clone(),
        alias: f.alias.clone(),
        artifacts: artifacts(f),
        discovered_at: time(f.discovered_at),
        verified_in: f
            .verified_in
            .iter()
            .map(|(stage, v)| pb::VerifiedIn {
                stage: stage.clone(),
                at: time(v.at),
                soak_seconds: v.soak(now).0,
                now: verified_now(f, stage, v),
            })
            .collect(),
        approved_for: f
            .approved_for
            .iter()
            .map(|(stage, a)| pb::ApprovedFor {
                stage: stage.clone(),
                at: time(a.at),
                by: a.by.clone(),
                bypass: a.bypass,
                reason: a.reason.clone(),
                ticket: a.ticket.clone(),
            })
            .collect(),
        currently_in: f
            .currently_in
            .iter()
            .filter(|(stage, _)| configured.contains(stage))
            .map(|(stage, since)| pb::CurrentlyIn {
                stage: stage.clone(),
                since: time(*since),
            })
            .collect(),
        available,
        unavailable_reason,
    }
}

/// A promotion, with its freight (for the bypass that allowed it, if any).
/// A promotion; `approvals_required`: what the policy in force requires of
/// it while it waits for approvals (see [`crate::runner::Projections::approvals_required`]).
/// What freight `f` holds, as the API gives it.
pub fn artifacts(f: &Freight) -> Vec<pb::Artifact> {
    f.artifacts
        .iter()
        .map(|a| pb::Artifact {
            kind: match a.kind {
                ArtifactKind::Image => pb::artifact::Kind::Image,
                ArtifactKind::Git => pb::artifact::Kind::Git,
                ArtifactKind::Chart => pb::artifact::Kind::Chart,
            } as i32,
            name: a.name.clone(),
            version: a.version.clone(),
            digest: a.digest.clone(),
        })
        .collect()
}

pub fn promotion(
    p: &Promotion,
    freight: Option<&Freight>,
    approvals_required: u32,
) -> pb::Promotion {
    let bypass = freight
        .and_then(|f| f.approved_for.get(&p.stage))
        .filter(|a| a.bypass);
    pb::Promotion {
        id: p.id.clone(),
        stage: p.stage.clone(),
        freight: p.freight.clone(),
        requested_by: p.requested_by.principal.clone(),
        requested_at: time(p.requested_at),
        ticket: p.ticket.clone(),
        reason: p.reason.clone(),
        approvals: p
            .approvals
            .iter()
            .map(|a| pb::Approval {
                by: a.by.clone(),
                at: time(a.at),
                comment: a.comment.clone(),
            })
            .collect(),
        status: p.status.name().to_string(),
        policy_version: p.policy_version.0,
        details: p.details.clone(),
        updated_at: time(p.updated_at),
        bypass: bypass.is_some(),
        bypass_reason: bypass.map(|a| a.reason.clone()).unwrap_or_default(),
        requested_position: p.requested.0,
        approvals_required,
        freight_alias: freight.map(|f| f.alias.clone()).unwrap_or_default(),
        freight_artifacts: freight.map(artifacts).unwrap_or_default(),
    }
}

pub fn entry(h: &HistoryItem) -> pb::HistoryEntry {
    pb::HistoryEntry {
        position: h.position.0,
        project: h.project.clone(),
        event_type: h.event_type.clone(),
        time: time(h.time),
        actor: h.actor.clone(),
        auth_method: h.auth_method.clone(),
        stage: h.stage.clone(),
        freight: h.freight.clone(),
        promotion: h.promotion.clone(),
        reason: h.reason.clone(),
        ticket: h.ticket.clone(),
        evidence_url: h.evidence_url.clone(),
        bypass: h.bypass,
        policy_version: h.policy_version.0,
        hash: h.hash.clone(),
        summary: h.summary.clone(),
        command_id: h.command_id.clone(),
        promotion_status: h.promotion_status.clone(),
        // Watch adds them; a history item does not keep a copy.
        freight_artifacts: Vec::new(),
        pipeline_changes: h.pipeline_changes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Weekday::*;

    use super::days;

    #[test]
    fn a_policy_says_whether_a_promotion_may_happen_now() {
        let def: waybill_ledger::domain::StageDef = serde_json::from_str(
            r#"{"name": "prod", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
                "policy": {"mode": "manual", "required_approvals": 2, "timezone": "Europe/Berlin",
                           "windows": [{"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "08:00:00", "end": "18:00:00"}],
                           "freezes": [{"days": ["Sat", "Sun"], "reason": "weekend freeze"}]}}"#,
        )
        .expect("stage");
        let at = |t: &str| super::policy(&def, 7, t.parse().expect("time"));
        // Wednesday 10:00 UTC is 11:00 in Berlin.
        let open = at("2026-12-02T10:00:00Z");
        assert_eq!((open.now.as_str(), open.until.as_str()), ("open", ""));
        assert_eq!(open.windows, vec!["Mon-Fri 08:00-18:00"]);
        assert_eq!(open.freezes, vec!["Sat, Sun: weekend freeze"]);
        // Wednesday 20:00 Berlin: the next window opens Thursday 08:00 (07:00 UTC).
        let closed = at("2026-12-02T19:00:00Z");
        assert_eq!(
            (closed.now.as_str(), closed.until.as_str()),
            ("closed", "2026-12-03T07:00:00.000Z")
        );
        // Saturday: frozen until Monday 00:00 Berlin (Sunday 23:00 UTC).
        let frozen = at("2026-12-05T12:00:00Z");
        assert_eq!(
            (
                frozen.now.as_str(),
                frozen.until.as_str(),
                frozen.closed_reason.as_str()
            ),
            ("frozen", "2026-12-06T23:00:00.000Z", "weekend freeze")
        );
    }

    #[test]
    fn weekdays_read_as_a_person_writes_them() {
        assert_eq!(days(&[]), "every day");
        assert_eq!(days(&[Mon, Tue, Wed, Thu, Fri]), "Mon-Fri");
        assert_eq!(days(&[Sun, Sat]), "Sat, Sun");
        assert_eq!(days(&[Mon, Wed, Thu, Fri, Sun]), "Mon, Wed-Fri, Sun");
        assert_eq!(days(&[Tue, Tue]), "Tue");
    }
}
