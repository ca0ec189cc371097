//! The read models of each project in sled: the project (position, stages),
//! its pipeline, every freight and every promotion, each under its own key
//! (layout in [`crate::keys`]), written in the runner's atomic batches with
//! the checkpoint.
//!
//! The runner applies events to an in-memory [`ProjectState`] that holds only
//! a project's working set: its pipeline and stages, the freight its stages
//! run, its active promotions, and what recent events touched. Before an
//! event is applied, what it reads is loaded ([`prefetch`]); after a batch,
//! what it changed is written ([`write()`]); once written, the rest may leave
//! memory ([`evict`]). So memory does not grow with the history, and the
//! store at the checkpoint is the whole state: a restart loads the working
//! sets ([`load_all`]) and resumes after the checkpoint.
//!
//! Invariant: every freight and promotion is in memory, or in sled with its
//! latest value (a record is evicted only once the batch that wrote it has
//! landed).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use waybill_ledger::domain::working_set::{self, Cold};
use waybill_ledger::domain::{Freight, ProjectState, Promotion, StageDef, StageState};
use waybill_ledger::{EventPayload, Position, StoredEvent};

use crate::error::ProjectionError;
use crate::keys::{self, model};
use crate::known::KnownFreight;
use crate::store::Writes;

/// Freight and promotions a project keeps in memory beyond its working set
/// before the unneeded ones are evicted.
pub const HOT: usize = 64;

/// The project record: everything but the pipeline, freight and promotions.
#[derive(Serialize)]
struct CoreRef<'a> {
    position: Position,
    seq: u64,
    latest_time: Option<DateTime<Utc>>,
    stages: &'a BTreeMap<String, StageState>,
}

#[derive(Deserialize)]
struct Core {
    position: Position,
    seq: u64,
    latest_time: Option<DateTime<Utc>>,
    stages: BTreeMap<String, StageState>,
}

/// What a project's events changed since its records were last written.
#[derive(Debug, Default)]
pub struct Touched {
    pipeline: bool,
    freight: BTreeSet<String>,
    promotions: BTreeSet<String>,
    /// Promotions requested by these events (their id index is new).
    requested: BTreeSet<String>,
    /// Promotions that were active before these events (their entry in the
    /// index of active promotions may have to go).
    were_active: BTreeSet<String>,
    /// Freight discovered for the first time.
    discovered: Vec<(DateTime<Utc>, String)>,
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, ProjectionError> {
    Ok(serde_json::to_vec(v)?)
}

/// The project's records in the store, for loading into its working set.
struct Stored<'a> {
    tree: &'a sled::Tree,
    project: &'a str,
    /// The freight the store may hold; `None`: ask the store every time.
    known: Option<&'a KnownFreight>,
}

impl Cold for Stored<'_> {
    type Error = ProjectionError;

    fn freight(&self, id: &str) -> Result<Option<Freight>, ProjectionError> {
        if self.known.is_some_and(|k| !k.may_hold(self.project, id)) {
            return Ok(None);
        }
        freight(self.tree, self.project, id)
    }

    fn promotion(&self, id: &str) -> Result<Option<Promotion>, ProjectionError> {
        promotion(self.tree, self.project, id)
    }

    fn newest_first(
        &self,
        _: &StageDef,
    ) -> Box<dyn Iterator<Item = Result<String, ProjectionError>> + '_> {
        Box::new(
            discovered_newest_first(self.tree, self.project, None).map(|r| r.map(|(_, id)| id)),
        )
    }
}

/// The freight auto-promotion would take for `stage` at `now`, in memory or
/// in the read models (memory holds only part of a project's freight).
/// Blocking (sled).
pub fn newest_available(
    tree: &sled::Tree,
    state: &ProjectState,
    stage: &StageDef,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Freight>, ProjectionError> {
    let stored = Stored {
        tree,
        project: &state.project,
        known: None,
    };
    working_set::newest_available(&stored, state, stage, now)
}

/// Loads into `state` what applying `ev` reads, and notes in `touched` what
/// it may change and in `known` the freight it discovers. Blocking (sled).
pub fn prefetch(
    tree: &sled::Tree,
    known: &mut KnownFreight,
    state: &mut ProjectState,
    ev: &StoredEvent,
    touched: &mut Touched,
) -> Result<(), ProjectionError> {
    if matches!(ev.event.payload, EventPayload::PipelineConfigured(_)) {
        touched.pipeline = true;
    }
    let project = state.project.clone();
    let stored = Stored {
        tree,
        project: &project,
        known: Some(known),
    };
    let reads = working_set::load_for_event(&stored, state, ev)?;
    if let Some(id) = reads.discovered {
        known.add(&project, &id);
        touched.discovered.push((ev.event.time, id));
    }
    touched.freight.extend(reads.freight);
    if let Some(id) = reads.promotion {
        if reads.requested {
            touched.requested.insert(id.clone());
        }
        if reads.was_active {
            touched.were_active.insert(id.clone());
        }
        touched.promotions.insert(id);
    }
    Ok(())
}

/// Writes what `touched` says changed, as `state` has it now.
pub fn write(
    state: &mut ProjectState,
    touched: &Touched,
    writes: &mut Writes,
) -> Result<(), ProjectionError> {
    let project = state.project.as_str();
    let core = CoreRef {
        position: state.position,
        seq: state.seq,
        latest_time: state.latest_time,
        stages: &state.stages,
    };
    writes.raw(keys::model(model::PROJECT, project, b""), &json(&core)?);
    if touched.pipeline {
        if let Some(p) = &state.pipeline {
            writes.raw(keys::model(model::PIPELINE, project, b""), &json(p)?);
        }
    }
    for id in &touched.freight {
        if let Some(f) = state.freight.get(id) {
            writes.raw(
                keys::model(model::FREIGHT, project, id.as_bytes()),
                &json(f)?,
            );
        }
    }
    for (time, id) in &touched.discovered {
        writes.raw(keys::discovery(project, *time, id), &[]);
    }
    for (alias, id) in &state.aliases {
        writes.raw(
            keys::model(model::ALIAS, project, alias.as_bytes()),
            id.as_bytes(),
        );
    }
    for id in &touched.promotions {
        let Some(p) = state.promotions.get(id) else {
            continue;
        };
        let at = keys::pos(p.requested);
        writes.raw(keys::model(model::PROMOTION, project, &at), &json(p)?);
        let new = touched.requested.contains(id);
        if new {
            writes.raw(
                keys::model(model::PROMOTION_ID, project, id.as_bytes()),
                &at,
            );
        }
        // The index of active promotions holds what the store last saw active.
        let stored_active = !new && touched.were_active.contains(id);
        let active = keys::model(model::ACTIVE, project, &at);
        match (p.status.is_active(), stored_active) {
            (true, false) => writes.raw(active, &[]),
            (false, true) => writes.remove(active),
            _ => {}
        }
    }
    // Aliases are looked up in sled (written above).
    state.aliases.clear();
    Ok(())
}

/// Drops from memory the freight and promotions the project does not need
/// (neither run by a stage, nor active, nor in `keep`: written by a batch
/// that has not landed yet), once it holds more than [`HOT`] of either.
pub fn evict(state: &mut ProjectState, keep: Option<&Touched>) {
    let kept = |set: fn(&Touched) -> &BTreeSet<String>, id: &String| {
        keep.is_some_and(|t| set(t).contains(id))
    };
    if state.freight.len() > HOT {
        let current: BTreeSet<String> = state
            .stages
            .values()
            .flat_map(|s| s.current.iter().map(|c| c.freight.clone()))
            .collect();
        state
            .freight
            .retain(|id, _| current.contains(id) || kept(|t| &t.freight, id));
        let freight = &state.freight;
        state
            .by_discovery
            .retain(|(_, id)| freight.contains_key(id));
    }
    if state.promotions.len() > HOT {
        state
            .promotions
            .retain(|id, p| p.status.is_active() || kept(|t| &t.promotions, id));
    }
}

/// The working set of every project in the store, as of its checkpoint.
/// Blocking.
pub fn load_all(tree: &sled::Tree) -> Result<Vec<ProjectState>, ProjectionError> {
    let mut out = Vec::new();
    for item in tree.scan_prefix([model::PROJECT]) {
        let (k, v) = item?;
        let project = keys::project_of(&k)
            .ok_or_else(|| ProjectionError::Corrupt("bad project key".into()))?;
        let core: Core = serde_json::from_slice(&v)?;
        let mut state = ProjectState::new(project);
        state.position = core.position;
        state.seq = core.seq;
        state.latest_time = core.latest_time;
        state.stages = core.stages;
        state.pipeline = get_json(tree, keys::model(model::PIPELINE, project, b""))?;
        for item in tree.scan_prefix(keys::model_prefix(model::ACTIVE, project)) {
            let (k, _) = item?;
            let at = keys::index_pos(&k)
                .ok_or_else(|| ProjectionError::Corrupt("bad active key".into()))?;
            if let Some(p) = promotion_at(tree, project, at)? {
                state.promotions.insert(p.id.clone(), Box::new(p));
            }
        }
        let current: Vec<String> = state
            .stages
            .values()
            .flat_map(|s| s.current.iter().map(|c| c.freight.clone()))
            .collect();
        for id in current {
            let stored = Stored {
                tree,
                project,
                known: None,
            };
            working_set::load_freight(&stored, &mut state, &id)?;
        }
        state.reindex();
        out.push(state);
    }
    Ok(out)
}

/// Freight `id` of `project`, as last written.
pub fn freight(
    tree: &sled::Tree,
    project: &str,
    id: &str,
) -> Result<Option<Freight>, ProjectionError> {
    get_json(tree, keys::model(model::FREIGHT, project, id.as_bytes()))
}

/// The freight id an alias names.
pub fn alias(
    tree: &sled::Tree,
    project: &str,
    alias: &str,
) -> Result<Option<String>, ProjectionError> {
    Ok(tree
        .get(keys::model(model::ALIAS, project, alias.as_bytes()))?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Promotion `id` of `project`, as last written.
pub fn promotion(
    tree: &sled::Tree,
    project: &str,
    id: &str,
) -> Result<Option<Promotion>, ProjectionError> {
    match tree.get(keys::model(model::PROMOTION_ID, project, id.as_bytes()))? {
        Some(at) => {
            let at = keys::decode_pos(&at)
                .ok_or_else(|| ProjectionError::Corrupt("bad promotion index".into()))?;
            promotion_at(tree, project, at)
        }
        None => Ok(None),
    }
}

/// The promotion requested at `at`.
pub fn promotion_at(
    tree: &sled::Tree,
    project: &str,
    at: Position,
) -> Result<Option<Promotion>, ProjectionError> {
    get_json(tree, keys::model(model::PROMOTION, project, &keys::pos(at)))
}

/// The project's promotions requested after position `after`, in the order
/// of their requests.
pub fn promotions_after(
    tree: &sled::Tree,
    project: &str,
    after: Position,
) -> impl Iterator<Item = Result<Promotion, ProjectionError>> {
    let start = keys::model(model::PROMOTION, project, &keys::pos(Position(after.0 + 1)));
    let end = keys::model(model::PROMOTION, project, &[0xff; 9]);
    tree.range(start..end).map(|item| {
        let (_, v) = item?;
        Ok(serde_json::from_slice(&v)?)
    })
}

/// The project's promotions requested before position `before`, newest
/// first.
pub fn promotions_before(
    tree: &sled::Tree,
    project: &str,
    before: Position,
) -> impl Iterator<Item = Result<Promotion, ProjectionError>> {
    let start = keys::model(model::PROMOTION, project, &keys::pos(Position::ZERO));
    let end = keys::model(model::PROMOTION, project, &keys::pos(before));
    tree.range(start..end).rev().map(|item| {
        let (_, v) = item?;
        Ok(serde_json::from_slice(&v)?)
    })
}

/// The project's promotions into `stage` requested after `after`, in the
/// order of their requests. The stage's history index names every event
/// about the stage; those that requested a promotion are keys of the
/// promotions read model. Reads the stage's events, not the whole project's.
pub fn stage_promotions_after<'a>(
    tree: &'a sled::Tree,
    project: &'a str,
    stage: &'a str,
    after: Position,
) -> impl Iterator<Item = Result<Promotion, ProjectionError>> + 'a {
    let prefix = keys::index_prefix(keys::Index::Stage, &format!("{project}/{stage}"));
    positions(crate::postings::scan(tree, prefix, after.next()))
        .filter_map(move |p| stage_promotion(tree, project, stage, p))
}

/// The positions in posting-list buckets, one by one.
fn positions(
    buckets: impl Iterator<Item = Result<Vec<(Position, String)>, ProjectionError>>,
) -> impl Iterator<Item = Result<Position, ProjectionError>> {
    buckets.flat_map(|bucket| match bucket {
        Ok(entries) => entries.into_iter().map(|(p, _)| Ok(p)).collect(),
        Err(e) => vec![Err(e)],
    })
}

/// The promotion into `stage` requested at `p`, an event of the stage's
/// index; `None` when that event requested no promotion (or one elsewhere).
fn stage_promotion(
    tree: &sled::Tree,
    project: &str,
    stage: &str,
    p: Result<Position, ProjectionError>,
) -> Option<Result<Promotion, ProjectionError>> {
    match p.and_then(|p| promotion_at(tree, project, p)) {
        Ok(Some(pr)) if pr.stage == stage => Some(Ok(pr)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

/// [`stage_promotions_after`] backwards: the promotions into `stage`
/// requested before `before`, newest first.
pub fn stage_promotions_before<'a>(
    tree: &'a sled::Tree,
    project: &'a str,
    stage: &'a str,
    before: Position,
) -> impl Iterator<Item = Result<Promotion, ProjectionError>> + 'a {
    let prefix = keys::index_prefix(keys::Index::Stage, &format!("{project}/{stage}"));
    positions(crate::postings::scan_back(tree, prefix, before))
        .filter_map(move |p| stage_promotion(tree, project, stage, p))
}

/// The project's active promotions (requested, authorized or running)
/// requested after `after`, in the order of their requests, from the index
/// of active promotions.
pub fn active_promotions_after<'a>(
    tree: &'a sled::Tree,
    project: &'a str,
    after: Position,
) -> impl Iterator<Item = Result<Promotion, ProjectionError>> + 'a {
    let prefix = keys::model_prefix(model::ACTIVE, project);
    let start = keys::model(model::ACTIVE, project, &keys::pos(after.next()));
    tree.range(start..)
        .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
        .filter_map(move |kv| active_promotion(tree, project, kv))
}

/// [`active_promotions_after`] backwards: the active promotions requested
/// before `before`, newest first.
pub fn active_promotions_before<'a>(
    tree: &'a sled::Tree,
    project: &'a str,
    before: Position,
) -> impl Iterator<Item = Result<Promotion, ProjectionError>> + 'a {
    let start = keys::model(model::ACTIVE, project, &keys::pos(Position::ZERO));
    let end = keys::model(model::ACTIVE, project, &keys::pos(before));
    tree.range(start..end)
        .rev()
        .filter_map(move |kv| active_promotion(tree, project, kv))
}

/// The promotion an entry of the index of active promotions names.
fn active_promotion(
    tree: &sled::Tree,
    project: &str,
    kv: sled::Result<(sled::IVec, sled::IVec)>,
) -> Option<Result<Promotion, ProjectionError>> {
    let at = kv.map_err(ProjectionError::from).and_then(|(k, _)| {
        keys::index_pos(&k).ok_or_else(|| ProjectionError::Corrupt("active index".into()))
    });
    at.and_then(|at| promotion_at(tree, project, at))
        .transpose()
}

/// A record stored as JSON under `key`.
fn get_json<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: Vec<u8>,
) -> Result<Option<T>, ProjectionError> {
    match tree.get(key)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
        None => Ok(None),
    }
}

/// The ids of the project's freight, newest discovery first, from before
/// `before` (a key suffix this returned), each with its key suffix.
fn discovered_newest_first(
    tree: &sled::Tree,
    project: &str,
    before: Option<&[u8]>,
) -> impl Iterator<Item = Result<(Vec<u8>, String), ProjectionError>> {
    let prefix = keys::model_prefix(model::DISCOVERY, project);
    let skip = prefix.len();
    let end = match before {
        Some(suffix) => [prefix.as_slice(), suffix].concat(),
        None => [prefix.as_slice(), &[0xff; 9]].concat(),
    };
    tree.range(prefix..end).rev().map(move |item| {
        let (k, _) = item?;
        let id = k
            .get(skip + 8..)
            .and_then(|id| std::str::from_utf8(id).ok())
            .ok_or_else(|| ProjectionError::Corrupt("bad discovery key".into()))?;
        Ok((k[skip..].to_vec(), id.to_string()))
    })
}

/// The project's freight, newest discovery first, from before `before` (a
/// key suffix this returned), each with its key suffix.
pub fn freight_newest_first<'a>(
    tree: &'a sled::Tree,
    project: &str,
    before: Option<&[u8]>,
) -> impl Iterator<Item = Result<(Vec<u8>, Freight), ProjectionError>> + 'a {
    let project = project.to_string();
    discovered_newest_first(tree, &project, before).filter_map(move |item| {
        let found =
            item.and_then(|(suffix, id)| Ok(freight(tree, &project, &id)?.map(|f| (suffix, f))));
        found.transpose()
    })
}
