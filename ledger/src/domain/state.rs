//! The state of one project, derived from its events by [`ProjectState::apply`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::duration::Seconds;
use super::pipeline::PipelineDefinition;
use crate::envelope::Actor;
use crate::event::Artifact;
use crate::log::Position;

/// Everything known about a project at a position of its log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectState {
    pub project: String,
    /// Last event applied.
    pub position: Position,
    /// Events applied.
    pub seq: u64,
    /// The latest event time seen (event times need not be monotonic: they
    /// come from the clocks of several command replicas).
    #[serde(default)]
    pub latest_time: Option<DateTime<Utc>>,
    /// The pipeline and policy in force.
    pub pipeline: Option<AppliedPipeline>,
    pub freight: BTreeMap<String, Box<Freight>>,
    /// (discovery time, id) of every freight, oldest first: an index of
    /// `freight` for "the newest freight that ..." (auto-promotion, "newest
    /// available"). Not serialized (it would repeat every freight id in a
    /// snapshot): rebuilt by [`ProjectState::reindex`] when a state is loaded.
    #[serde(skip)]
    pub by_discovery: BTreeSet<(DateTime<Utc>, String)>,
    /// Alias → freight id.
    pub aliases: BTreeMap<String, String>,
    pub stages: BTreeMap<String, StageState>,
    pub promotions: BTreeMap<String, Box<Promotion>>,
    /// Stage → freight → ids of its active promotions (requested, authorized
    /// or running): an index of `promotions`, so that deciding on a project
    /// does not scan every promotion it ever had. Not serialized (derived):
    /// rebuilt by [`ProjectState::reindex`] when a state is loaded.
    #[serde(skip)]
    pub active: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    /// Command id → the event it produced (idempotency, kept for ever),
    /// looked up with [`ProjectState::command`]. Not serialized: read models
    /// do not keep it.
    #[serde(skip)]
    pub commands: HashMap<CommandKey, CommandOutcome>,
}

/// An idempotency key as the command state keeps it: the first 16 bytes of
/// its SHA-256. A key of any length costs 16 bytes and no allocation (the
/// state keeps one per event); two different keys share one with a
/// probability of about n²/2¹²⁹ for n keys, and finding such a pair takes
/// about 2⁶⁴ hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandKey([u8; 16]);

impl CommandKey {
    /// The key of command id `id`.
    pub fn of(id: &str) -> CommandKey {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(id.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        CommandKey(key)
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// The event a command produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub position: Position,
    pub event_id: uuid::Uuid,
}

/// A pipeline definition and when it took effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedPipeline {
    pub definition: PipelineDefinition,
    /// The position of its `PipelineConfigured`: the policy version.
    pub version: Position,
    pub event_id: uuid::Uuid,
    /// The canonical JSON as recorded.
    pub definition_json: String,
    pub at: DateTime<Utc>,
    pub source_uri: String,
    pub source_revision: String,
}

/// A map of a few entries (a freight's stages, checks and metrics): a
/// sorted `Vec`, iterated in key order like a `BTreeMap` and serialized the
/// same way, but without a B-tree node (about 1 KiB) for one or two entries.
/// Every freight has several, and the command side keeps every freight in
/// memory.
pub type SmallMap<K, V> = litemap::LiteMap<K, V>;

/// Inserts `key` → `value` into `map` with room for exactly its entries: a
/// `Vec` that grows makes room for 4 at once, and most of these maps hold
/// one or two entries for ever (every freight has several of them).
pub fn insert_exact<K: Ord, V>(map: &mut SmallMap<K, V>, key: K, value: V) {
    if let Some(slot) = map.get_mut(&key) {
        *slot = value;
        return;
    }
    let Err(at) = map.find_index(&key) else {
        return;
    };
    let mut entries = std::mem::take(map).into_tuple_vec();
    entries.reserve_exact(1);
    entries.insert(at, (key, value));
    *map = SmallMap::from_sorted_store_unchecked(entries);
}

/// A freight and its derived status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Freight {
    pub id: String,
    pub warehouse: String,
    pub artifacts: Vec<Artifact>,
    pub alias: String,
    pub discovered_at: DateTime<Utc>,
    pub discovered: Position,
    pub discovered_id: uuid::Uuid,
    pub verified_in: SmallMap<String, Verified>,
    pub approved_for: SmallMap<String, FreightApproval>,
    /// Stage → since when the freight has been current there.
    pub currently_in: SmallMap<String, DateTime<Utc>>,
    /// Latest result per stage and check.
    pub checks: SmallMap<String, SmallMap<String, CheckResult>>,
}

impl Freight {
    /// How tables and messages name it: its alias, else the start of its id
    /// (12 hex digits, as `waybill status` prints it).
    pub fn label(&self) -> String {
        if self.alias.is_empty() {
            self.id.chars().take(12).collect()
        } else {
            self.alias.clone()
        }
    }

    /// Whether an emergency bypass approved it for `stage`: its promotion
    /// there skips the upstream chain, windows and freezes.
    pub fn bypassed_for(&self, stage: &str) -> bool {
        self.approved_for.get(stage).is_some_and(|a| a.bypass)
    }
}

/// Verification of a freight in a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// When it was first verified there.
    pub at: DateTime<Utc>,
    /// Start of the current verified tenure (while still current and passing).
    pub since: Option<DateTime<Utc>>,
    /// Longest finished verified tenure.
    pub longest_soak: Seconds,
}

impl Verified {
    /// How long the freight has stayed verified, at `now`: the longest tenure.
    pub fn soak(&self, now: DateTime<Utc>) -> Seconds {
        let current = self
            .since
            .map(|s| Seconds(u64::try_from((now - s).num_seconds()).unwrap_or(0)))
            .unwrap_or_default();
        current.max(self.longest_soak)
    }
}

/// A direct approval of a freight for a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreightApproval {
    pub at: DateTime<Utc>,
    pub by: String,
    pub bypass: bool,
    pub reason: String,
    pub ticket: String,
    pub position: Position,
}

/// The latest outcome of one check for a freight in a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub passed: bool,
    pub at: DateTime<Utc>,
    pub metrics: SmallMap<String, f64>,
    pub evidence_url: String,
    pub position: Position,
}

/// A stage and what runs there.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    pub name: String,
    /// What the stage runs: one freight per warehouse it takes freight from
    /// (as Kargo's freight collection), in warehouse order. A promotion
    /// replaces the freight of its own warehouse only.
    pub current: Vec<Current>,
    /// Authorized promotions waiting for the executor, oldest first.
    pub queue: VecDeque<String>,
    /// The promotion the executor is running.
    pub running: Option<String>,
    pub last_promotion: Option<String>,
    /// Freight whose latest promotion into this stage failed.
    pub failed: BTreeSet<String>,
}

impl StageState {
    /// The freight of `warehouse` the stage runs.
    pub fn current_for(&self, warehouse: &str) -> Option<&Current> {
        self.current.iter().find(|c| c.warehouse == warehouse)
    }

    /// Whether the stage runs `freight`.
    pub fn runs(&self, freight: &str) -> bool {
        self.current.iter().any(|c| c.freight == freight)
    }

    /// The freight promoted into the stage last (the latest to arrive).
    pub fn latest(&self) -> Option<&Current> {
        self.current.iter().max_by_key(|c| c.since)
    }

    /// Freight a manual promotion holds the stage at (see [`Current::held`]).
    pub fn held(&self) -> impl Iterator<Item = &Current> {
        self.current.iter().filter(|c| c.held)
    }

    /// Puts `current` in the place of its warehouse's freight.
    pub(crate) fn set_current(&mut self, current: Current) {
        match self
            .current
            .binary_search_by(|c| c.warehouse.as_str().cmp(&current.warehouse))
        {
            Ok(i) => self.current[i] = current,
            Err(i) => self.current.insert(i, current),
        }
    }
}

/// The freight a stage runs from one warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Current {
    /// The freight's warehouse (its origin).
    pub warehouse: String,
    pub freight: String,
    pub since: DateTime<Utc>,
    pub promotion: String,
    pub promoted_by: String,
    /// Promoted by hand over auto-promotion's candidate (a rollback):
    /// auto-promotion of this warehouse's freight stays away from the stage
    /// until the candidate is promoted again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

/// A promotion and its lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    pub id: String,
    pub stage: String,
    pub freight: String,
    pub requested_by: Actor,
    pub requested_at: DateTime<Utc>,
    pub ticket: String,
    pub reason: String,
    pub approvals: Vec<PromotionApproval>,
    pub status: PromotionStatus,
    /// The policy version in force when it was requested.
    pub policy_version: Position,
    pub requested: Position,
    pub updated_at: DateTime<Utc>,
    /// Executor or rejection details.
    pub details: String,
}

/// One approval of a promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionApproval {
    pub by: String,
    pub at: DateTime<Utc>,
    pub comment: String,
}

/// Where a promotion is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionStatus {
    /// Waiting for approvals.
    Requested,
    /// Allowed; queued for the executor.
    Authorized,
    Running,
    Succeeded,
    Failed,
    Aborted,
    Rejected,
}

impl PromotionStatus {
    /// Not finished yet.
    pub fn is_active(self) -> bool {
        PromotionStatus::ACTIVE.contains(&self)
    }

    /// Every status, in lifecycle order.
    pub const ALL: [PromotionStatus; 7] = [
        PromotionStatus::Requested,
        PromotionStatus::Authorized,
        PromotionStatus::Running,
        PromotionStatus::Succeeded,
        PromotionStatus::Failed,
        PromotionStatus::Aborted,
        PromotionStatus::Rejected,
    ];

    /// The statuses of a promotion that has not finished.
    pub const ACTIVE: [PromotionStatus; 3] = [
        PromotionStatus::Requested,
        PromotionStatus::Authorized,
        PromotionStatus::Running,
    ];

    /// A status by its name, in any case.
    pub fn parse(name: &str) -> Option<PromotionStatus> {
        PromotionStatus::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            PromotionStatus::Requested => "Requested",
            PromotionStatus::Authorized => "Authorized",
            PromotionStatus::Running => "Running",
            PromotionStatus::Succeeded => "Succeeded",
            PromotionStatus::Failed => "Failed",
            PromotionStatus::Aborted => "Aborted",
            PromotionStatus::Rejected => "Rejected",
        }
    }
}

impl ProjectState {
    /// The state of a project with no events.
    pub fn new(project: &str) -> ProjectState {
        ProjectState {
            project: project.to_string(),
            ..ProjectState::default()
        }
    }

    /// The definition in force, if any.
    pub fn definition(&self) -> Option<&PipelineDefinition> {
        self.pipeline.as_ref().map(|p| &p.definition)
    }

    /// The policy version in force (0 before any pipeline).
    pub fn policy_version(&self) -> Position {
        self.pipeline
            .as_ref()
            .map(|p| p.version)
            .unwrap_or(Position::ZERO)
    }

    /// The event command `id` produced, if it was executed.
    pub fn command(&self, id: &str) -> Option<&CommandOutcome> {
        self.commands.get(&CommandKey::of(id))
    }

    /// Resolves a freight id or alias.
    pub fn resolve_freight(&self, id_or_alias: &str) -> Option<&Freight> {
        self.freight
            .get(id_or_alias)
            .or_else(|| {
                self.aliases
                    .get(id_or_alias)
                    .and_then(|id| self.freight.get(id))
            })
            .map(|f| &**f)
    }

    /// The active promotion of `freight` into `stage` (the first by id, if
    /// the log holds several).
    pub fn in_flight(&self, stage: &str, freight: &str) -> Option<&Promotion> {
        let id = self.active.get(stage)?.get(freight)?.first()?;
        self.promotions.get(id).map(|p| &**p)
    }

    /// Brings the index of active promotions in line with promotion `id`.
    pub(crate) fn track(&mut self, id: &str) {
        let Some(p) = self.promotions.get(id) else {
            return;
        };
        if p.status.is_active() {
            let (stage, freight) = (p.stage.clone(), p.freight.clone());
            self.active
                .entry(stage)
                .or_default()
                .entry(freight)
                .or_default()
                .insert(id.to_string());
        } else {
            self.untrack(id);
        }
    }

    /// Takes promotion `id` out of the index of active promotions.
    pub(crate) fn untrack(&mut self, id: &str) {
        let Some(p) = self.promotions.get(id) else {
            return;
        };
        if let Some(by_freight) = self.active.get_mut(&p.stage) {
            if let Some(ids) = by_freight.get_mut(&p.freight) {
                ids.remove(id);
                if ids.is_empty() {
                    by_freight.remove(&p.freight);
                }
            }
            if by_freight.is_empty() {
                self.active.remove(&p.stage);
            }
        }
    }

    /// The newest freight (by discovery time, then id) that satisfies `pred`.
    pub fn newest_where(&self, pred: impl Fn(&Freight) -> bool) -> Option<&Freight> {
        self.by_discovery
            .iter()
            .rev()
            .filter_map(|(_, id)| self.freight.get(id))
            .map(|f| &**f)
            .find(|f| pred(f))
    }

    /// Rebuilds the indexes of the state (after loading one).
    pub fn reindex(&mut self) {
        self.by_discovery = self
            .freight
            .values()
            .map(|f| (f.discovered_at, f.id.clone()))
            .collect();
        self.active.clear();
        let ids: Vec<String> = self
            .promotions
            .values()
            .filter(|p| p.status.is_active())
            .map(|p| p.id.clone())
            .collect();
        for id in ids {
            self.track(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `insert_exact` keeps keys in order and replaces like `insert`.
    #[test]
    fn insert_exact_is_insert() {
        let (mut exact, mut plain) = (SmallMap::new(), SmallMap::new());
        for (k, v) in [
            ("staging", 1),
            ("dev", 2),
            ("prod", 3),
            ("dev", 4),
            ("a", 5),
        ] {
            insert_exact(&mut exact, k.to_string(), v);
            plain.insert(k.to_string(), v);
        }
        assert_eq!(exact, plain);
        let keys: Vec<&String> = exact.keys().collect();
        assert_eq!(keys, ["a", "dev", "prod", "staging"]);
        assert_eq!(exact.get("dev"), Some(&4));
    }

    /// Read models store freight as JSON: its small maps must read and write
    /// exactly as the `BTreeMap`s they replaced (objects, keys in order).
    #[test]
    fn small_maps_are_stored_as_sorted_json_objects() -> Result<(), serde_json::Error> {
        let at: DateTime<Utc> = "2026-11-30T03:00:00Z".parse().expect("a time");
        let check = |url: &str| CheckResult {
            passed: true,
            at,
            metrics: [("p99".to_string(), 1.5), ("errors".to_string(), 0.0)]
                .into_iter()
                .collect(),
            evidence_url: url.to_string(),
            position: Position(7),
        };
        let mut f = Freight {
            id: "f1".into(),
            warehouse: "images".into(),
            artifacts: Vec::new(),
            alias: "v1".into(),
            discovered_at: at,
            discovered: Position(1),
            discovered_id: uuid::Uuid::nil(),
            verified_in: SmallMap::new(),
            approved_for: SmallMap::new(),
            currently_in: SmallMap::new(),
            checks: SmallMap::new(),
        };
        // Inserted out of order.
        f.currently_in.insert("staging".into(), at);
        f.currently_in.insert("dev".into(), at);
        f.checks
            .entry("staging".into())
            .or_default()
            .insert("smoke".into(), check("s"));
        f.checks
            .entry("dev".into())
            .or_default()
            .insert("unit".into(), check("u"));
        f.checks
            .entry("dev".into())
            .or_default()
            .insert("lint".into(), check("l"));

        let json = serde_json::to_value(&f)?;
        let mut old = BTreeMap::new();
        old.insert("staging", at);
        old.insert("dev", at);
        assert_eq!(json["currently_in"], serde_json::to_value(&old)?);
        let text = serde_json::to_string(&f)?;
        let dev = text
            .find(r#""dev":{"lint""#)
            .expect("dev's checks, lint first");
        let staging = text
            .find(r#""staging":{"smoke""#)
            .expect("staging's checks");
        assert!(dev < staging, "{text}");
        assert!(
            text.contains(r#""metrics":{"errors":0.0,"p99":1.5}"#),
            "{text}"
        );

        // What the BTreeMaps wrote reads back the same.
        let back: Freight = serde_json::from_value(json)?;
        assert_eq!(back, f);
        let keys: Vec<&String> = back.checks.keys().collect();
        assert_eq!(keys, ["dev", "staging"]);
        Ok(())
    }
}
