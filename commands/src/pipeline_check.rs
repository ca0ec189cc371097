//! The rules a pipeline definition must follow before it is applied. Each
//! problem names the path of the offending value (`stages[2].policy.gates[0]`)
//! so that a file reader can point at its line.

use std::collections::{BTreeMap, BTreeSet};

use waybill_ledger::domain::{AutoSelection, PipelineDefinition, PolicyMode, StageDef};
use waybill_ledger::name::{did_you_mean, name_problem};

use crate::policy::compile_ticket_pattern;

/// Most approvals a stage may require.
pub const MAX_APPROVALS: u32 = 20;

/// One thing wrong with a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a path such as `stages[1].requested_freight[0].origin`.
    pub path: String,
    pub message: String,
}

/// Every problem with `def`, in document order (empty when it is valid).
pub fn check_definition(def: &PipelineDefinition) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |path: String, message: String| out.push(Problem { path, message });
    if let Some(p) = name_problem(&def.project) {
        problem(
            "project".into(),
            format!("{:?} is not a valid project name: {p}", def.project),
        );
    }
    if def.warehouses.is_empty() {
        problem(
            "warehouses".into(),
            "a pipeline needs at least one warehouse".into(),
        );
    }
    let mut warehouses = BTreeSet::new();
    for (i, w) in def.warehouses.iter().enumerate() {
        if let Some(p) = name_problem(&w.name) {
            problem(
                format!("warehouses[{i}].name"),
                format!("{:?}: {p}", w.name),
            );
        }
        if !warehouses.insert(w.name.as_str()) {
            problem(
                format!("warehouses[{i}].name"),
                format!("warehouse {:?} is defined twice", w.name),
            );
        }
    }
    if def.stages.is_empty() {
        problem(
            "stages".into(),
            "a pipeline needs at least one stage".into(),
        );
    }
    let mut stages = BTreeSet::new();
    for (i, s) in def.stages.iter().enumerate() {
        if let Some(p) = name_problem(&s.name) {
            problem(format!("stages[{i}].name"), format!("{:?}: {p}", s.name));
        }
        if !stages.insert(s.name.as_str()) {
            problem(
                format!("stages[{i}].name"),
                format!("stage {:?} is defined twice", s.name),
            );
        }
    }
    for (i, s) in def.stages.iter().enumerate() {
        check_stage(def, i, s, &warehouses, &stages, &mut problem);
    }
    if let Some((i, name)) = cycle(def) {
        problem(
            format!("stages[{i}].requested_freight"),
            format!("stage {name:?} is part of a cycle of upstream stages"),
        );
    }
    out
}

fn check_stage(
    def: &PipelineDefinition,
    i: usize,
    s: &StageDef,
    warehouses: &BTreeSet<&str>,
    stages: &BTreeSet<&str>,
    problem: &mut impl FnMut(String, String),
) {
    let at = format!("stages[{i}]");
    if s.requested_freight.is_empty() {
        problem(
            format!("{at}.requested_freight"),
            "a stage must request freight from a warehouse".into(),
        );
    }
    let mut origins = BTreeSet::new();
    for (j, r) in s.requested_freight.iter().enumerate() {
        let rat = format!("{at}.requested_freight[{j}]");
        if !warehouses.contains(r.origin.as_str()) {
            problem(
                format!("{rat}.origin"),
                format!(
                    "no warehouse {:?}{}",
                    r.origin,
                    did_you_mean(&r.origin, warehouses.iter().copied())
                ),
            );
        }
        if !origins.insert(r.origin.as_str()) {
            problem(
                format!("{rat}.origin"),
                format!("warehouse {:?} is requested twice", r.origin),
            );
        }
        if !r.sources.direct && r.sources.stages.is_empty() {
            problem(
                format!("{rat}.sources"),
                "set `direct: true` or list upstream `stages`".into(),
            );
        }
        for (k, up) in r.sources.stages.iter().enumerate() {
            let path = format!("{rat}.sources.stages[{k}]");
            if up == &s.name {
                problem(path, "a stage cannot be its own upstream".into());
            } else if !stages.contains(up.as_str()) {
                let like = did_you_mean(up, stages.iter().copied().filter(|n| *n != s.name));
                problem(path, format!("no stage {up:?}{like}"));
            } else if def
                .stage(up)
                .is_some_and(|u| u.request_for(&r.origin).is_none())
            {
                problem(
                    path,
                    format!(
                        "stage {up:?} does not take freight from warehouse {:?}, so none of it can pass through there",
                        r.origin
                    ),
                );
            }
        }
        if s.auto_selection == AutoSelection::MatchUpstream && r.sources.stages.len() != 1 {
            problem(
                format!("{rat}.sources.stages"),
                format!(
                    "auto_selection MatchUpstream takes what the upstream stage runs: it needs exactly one upstream stage for warehouse {:?} (this lists {})",
                    r.origin,
                    r.sources.stages.len()
                ),
            );
        }
    }
    let mut checks = BTreeSet::new();
    for (j, c) in s.verification.iter().enumerate() {
        if let Some(p) = name_problem(c) {
            problem(
                format!("{at}.verification[{j}]"),
                format!("{c:?} is not a valid check name: {p}"),
            );
        }
        if !checks.insert(c.as_str()) {
            problem(
                format!("{at}.verification[{j}]"),
                format!("check {c:?} is listed twice"),
            );
        }
    }
    check_policy(&at, s, problem);
}

fn check_policy(at: &str, s: &StageDef, problem: &mut impl FnMut(String, String)) {
    let p = &s.policy;
    let pat = format!("{at}.policy");
    match p.mode {
        PolicyMode::Gated if p.gates.is_empty() => {
            problem(
                format!("{pat}.gates"),
                "gated mode needs at least one gate".into(),
            );
        }
        PolicyMode::Auto | PolicyMode::Manual if !p.gates.is_empty() => {
            problem(
                format!("{pat}.gates"),
                "gates apply only to `mode: gated`".into(),
            );
        }
        _ => {}
    }
    if p.mode != PolicyMode::Manual && p.required_approvals > 0 {
        problem(
            format!("{pat}.required_approvals"),
            "approvals apply only to `mode: manual`".into(),
        );
    }
    if p.required_approvals > MAX_APPROVALS {
        problem(
            format!("{pat}.required_approvals"),
            format!("at most {MAX_APPROVALS} approvals can be required"),
        );
    }
    for (g, gate) in p.gates.iter().enumerate() {
        let path = format!("{pat}.gates[{g}]");
        match (&gate.check, &gate.metric) {
            (Some(_), Some(_)) | (None, None) => {
                problem(path, "a gate names either a `check` or a `metric`".into());
            }
            (Some(c), None) => {
                if gate.min.is_some() || gate.max.is_some() {
                    problem(
                        path.clone(),
                        "`min`/`max` go with `metric`, not `check`".into(),
                    );
                }
                if let Some(e) = name_problem(c) {
                    problem(path, format!("{c:?} is not a valid check name: {e}"));
                }
            }
            (None, Some(_)) => {
                if gate.min.is_none() && gate.max.is_none() {
                    problem(path, "a metric gate needs `min`, `max` or both".into());
                } else if let (Some(min), Some(max)) = (gate.min, gate.max) {
                    if min > max {
                        problem(path, format!("min {min} is above max {max}"));
                    }
                }
            }
        }
    }
    if let Some(pattern) = &p.ticket_pattern {
        if let Err(e) = compile_ticket_pattern(pattern) {
            problem(
                format!("{pat}.ticket_pattern"),
                format!("not a valid regular expression: {e}"),
            );
        }
    }
    if p.timezone.parse::<chrono_tz::Tz>().is_err() {
        problem(
            format!("{pat}.timezone"),
            format!(
                "unknown time zone {:?}{}",
                p.timezone,
                did_you_mean(
                    &p.timezone,
                    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
                )
            ),
        );
    }
    for (w, win) in p.windows.iter().enumerate() {
        if win.start == win.end {
            problem(
                format!("{pat}.windows[{w}]"),
                "a window cannot start when it ends".into(),
            );
        }
    }
    for (f, freeze) in p.freezes.iter().enumerate() {
        let path = format!("{pat}.freezes[{f}]");
        if freeze.days.is_empty() && freeze.from.is_none() && freeze.to.is_none() {
            problem(path, "a freeze needs `days` or a `from`/`to` range".into());
        } else if let (Some(from), Some(to)) = (freeze.from, freeze.to) {
            if from >= to {
                problem(path, "`from` must be before `to`".into());
            }
        }
    }
    for (b, subject) in p.bypass.iter().enumerate() {
        let ok = subject == "*"
            || ["user:", "group:", "service:"]
                .iter()
                .any(|prefix| subject.strip_prefix(prefix).is_some_and(|r| !r.is_empty()));
        if !ok {
            problem(
                format!("{pat}.bypass[{b}]"),
                format!("{subject:?} is not `user:NAME`, `group:NAME`, `service:NAME` or `*`"),
            );
        }
    }
}

/// The first stage (index, name) on a cycle of upstream references.
fn cycle(def: &PipelineDefinition) -> Option<(usize, String)> {
    let ups: BTreeMap<&str, Vec<&str>> = def
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.upstreams().collect()))
        .collect();
    for (i, s) in def.stages.iter().enumerate() {
        let mut stack = vec![s.name.as_str()];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            for up in ups.get(n).into_iter().flatten() {
                if *up == s.name {
                    return Some((i, s.name.clone()));
                }
                if seen.insert(*up) {
                    stack.push(up);
                }
            }
        }
    }
    None
}
