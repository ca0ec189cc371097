//! The pipeline as it was: every version of every stage view, so that
//! `StateAt` reads a handful of keys instead of folding a project's log.
//!
//! After each event the runner renders the project's stages as `ListStages`
//! shows them and writes those that changed, keyed by project, stage and
//! position; a new stage list (a pipeline applied) is written the same way.
//! The state at position `p` is then: the stage list in force at `p`, and
//! for each stage its last version at or before `p`. A time is turned into a
//! position with the project index, whose entries begin with the latest
//! event time of the project so far (event times need not be monotonic;
//! the latest time so far is).
//!
//! A version is written exactly when the event changed it (compared with
//! the rendering of the state before the event), so a runner that resumes
//! from its checkpoint writes the same keys as a clean rebuild.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prost::Message as _;
use waybill_ledger::domain::ProjectState;
use waybill_ledger::{Position, StoredEvent};
use waybill_proto::v1 as pb;

use crate::error::ProjectionError;
use crate::keys;
use crate::service::convert;
use crate::store::{ProjectionStore, Writes};

/// The stage versions last written, per project.
#[derive(Debug, Default)]
pub struct Timeline {
    written: HashMap<String, Written>,
}

#[derive(Debug, Default)]
struct Written {
    /// The stage list and policy version last written.
    layout: Option<(u64, Vec<String>)>,
    stages: HashMap<String, pb::Stage>,
}

impl Timeline {
    /// Remembers how a project looked before its next event, unless known.
    pub fn before(&mut self, state: &ProjectState) {
        if self.written.contains_key(&state.project) {
            return;
        }
        let mut written = Written::default();
        if let Some(definition) = state.definition() {
            let names = definition.stages.iter().map(|s| s.name.clone()).collect();
            written.layout = Some((state.policy_version().0, names));
            for def in &definition.stages {
                written
                    .stages
                    .insert(def.name.clone(), convert::stage(state, def));
            }
        }
        self.written.insert(state.project.clone(), written);
    }

    /// Records what `ev` (already applied to `state`) changed; `before` saw
    /// the state before it.
    pub fn record(&mut self, state: &ProjectState, ev: &StoredEvent, writes: &mut Writes) {
        let Some(definition) = state.definition() else {
            return;
        };
        let written = self.written.entry(state.project.clone()).or_default();
        let names: Vec<String> = definition.stages.iter().map(|s| s.name.clone()).collect();
        let version = state.policy_version().0;
        if written
            .layout
            .as_ref()
            .is_none_or(|(v, n)| *v != version || *n != names)
        {
            let layout = pb::ListStagesReply {
                project: state.project.clone(),
                stages: names
                    .iter()
                    .map(|n| pb::Stage {
                        name: n.clone(),
                        ..Default::default()
                    })
                    .collect(),
                policy_version: version,
                closed_now: Vec::new(),
                position: ev.position.0,
            };
            writes.raw(
                keys::layout(&state.project, ev.position),
                &layout.encode_to_vec(),
            );
            // A stage dropped and added again gets a version of its own.
            written.stages.retain(|name, _| names.contains(name));
            written.layout = Some((version, names));
        }
        for def in &definition.stages {
            let view = convert::stage(state, def);
            if written.stages.get(&def.name) != Some(&view) {
                writes.raw(
                    keys::stage_version(&state.project, &def.name, ev.position),
                    &view.encode_to_vec(),
                );
                written.stages.insert(def.name.clone(), view);
            }
        }
    }
}

/// Where to look the state up: a position, or a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum At {
    Position(Position),
    Time(DateTime<Utc>),
}

/// The project's last event at or before `at`.
fn last_event(
    store: &ProjectionStore,
    project: &str,
    at: At,
) -> Result<Option<Position>, ProjectionError> {
    let tree = store.views();
    let found = match at {
        At::Position(p) => {
            let lo = keys::index(keys::Index::Project, project, Position::ZERO);
            let hi = keys::index(keys::Index::Project, project, p);
            tree.range(lo..=hi).next_back().transpose()?.map(|(k, _)| k)
        }
        At::Time(t) => return last_event_by(tree, project, t),
    };
    Ok(found.and_then(|k| keys::index_pos(&k)))
}

/// The project's last event whose latest time so far is at most `t`: a
/// binary search over positions (the latest time grows with them).
fn last_event_by(
    tree: &sled::Tree,
    project: &str,
    t: DateTime<Utc>,
) -> Result<Option<Position>, ProjectionError> {
    let limit = keys::time(t);
    let prefix = keys::index_prefix(keys::Index::Project, project);
    // The first entry at or after position `p`, and whether it is at most `t`.
    let probe = |p: u64| -> Result<Option<(Position, bool)>, ProjectionError> {
        let start = keys::index(keys::Index::Project, project, Position(p));
        let Some((k, v)) = tree.range(start..).next().transpose()? else {
            return Ok(None);
        };
        if !k.starts_with(&prefix) {
            return Ok(None);
        }
        let at = keys::index_pos(&k).ok_or_else(|| ProjectionError::Corrupt("index key".into()))?;
        let time = v
            .get(..8)
            .ok_or_else(|| ProjectionError::Corrupt("short history entry".into()))?;
        Ok(Some((at, time <= &limit[..])))
    };
    // Every entry before `lo` is at most `t`; no entry from `hi` is.
    let (mut lo, mut hi) = (0u64, u64::MAX);
    let mut best = None;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match probe(mid)? {
            Some((at, true)) => {
                best = Some(at);
                lo = at.0.saturating_add(1);
            }
            // The first entry from `mid` is too late: so is every later one.
            Some((_, false)) | None => hi = mid,
        }
    }
    Ok(best)
}

/// The last value under `prefix` whose key ends with a position at most `p`.
fn last_version(
    tree: &sled::Tree,
    prefix: Vec<u8>,
    p: Position,
) -> Result<Option<sled::IVec>, ProjectionError> {
    let mut hi = prefix.clone();
    hi.extend_from_slice(&keys::pos(p));
    Ok(tree
        .range(prefix..=hi)
        .next_back()
        .transpose()?
        .map(|(_, v)| v))
}

/// The project's stages as they were at `at` (`None`: it had no pipeline
/// then). Blocking.
pub fn state_at(
    store: &ProjectionStore,
    project: &str,
    at: At,
) -> Result<Option<pb::ListStagesReply>, ProjectionError> {
    let Some(position) = last_event(store, project, at)? else {
        return Ok(None);
    };
    let tree = store.views();
    let Some(layout) = last_version(tree, keys::layout_prefix(project), position)? else {
        return Ok(None);
    };
    let mut reply = pb::ListStagesReply::decode(&*layout)?;
    for stage in &mut reply.stages {
        let prefix = keys::stage_version_prefix(project, &stage.name);
        let version = last_version(tree, prefix, position)?.ok_or_else(|| {
            ProjectionError::Storage(format!(
                "no version of stage {}/{} at position {position}",
                project, stage.name
            ))
        })?;
        *stage = pb::Stage::decode(&*version)?;
    }
    reply.position = position.0;
    Ok(Some(reply))
}

/// The project's first pipeline: its position, and the time from which
/// [`state_at`] finds it (`None`: the project never had one). Blocking.
pub fn first_pipeline(
    store: &ProjectionStore,
    project: &str,
) -> Result<Option<(Position, DateTime<Utc>)>, ProjectionError> {
    let tree = store.views();
    let prefix = keys::layout_prefix(project);
    let Some((key, _)) = tree.scan_prefix(&prefix).next().transpose()? else {
        return Ok(None);
    };
    let corrupt = |what: &str| ProjectionError::Corrupt(format!("{what} of project {project}"));
    let position = key
        .get(prefix.len()..)
        .and_then(keys::decode_pos)
        .ok_or_else(|| corrupt("layout key"))?;
    let entry = tree
        .get(keys::index(keys::Index::Project, project, position))?
        .ok_or_else(|| corrupt("history entry of the first pipeline"))?;
    let time = keys::decode_time(&entry).ok_or_else(|| corrupt("history entry time"))?;
    Ok(Some((position, time)))
}

/// A project's stages as `ListStages` shows them, at the state's position.
pub fn render(state: &ProjectState) -> pb::ListStagesReply {
    convert::stages(state, state.position.0)
}
