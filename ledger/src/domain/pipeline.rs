//! Pipeline definitions: warehouses, stages, what each stage requests and the
//! promotion policy of each stage. Written by people as YAML
//! (`waybill apply -f pipeline.yaml`), recorded as canonical JSON in
//! `PipelineConfigured`, and read back by every decision made under it.
//!
//! These are plain data; the rules that check a definition live with the
//! command service, which is the only place definitions are accepted.

use chrono::{NaiveDateTime, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

use super::duration::Seconds;

/// A whole project: its freight sources and its stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineDefinition {
    pub project: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub warehouses: Vec<WarehouseDef>,
    pub stages: Vec<StageDef>,
}

/// A source of freight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseDef {
    pub name: String,
    #[serde(default)]
    pub kind: WarehouseKind,
    /// Image repository, git URL or chart repository; empty for `pushed`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// Where a warehouse's freight comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarehouseKind {
    Image,
    Git,
    Chart,
    /// Pushed by CI through the API.
    #[default]
    Pushed,
}

/// An environment freight is promoted into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    pub name: String,
    /// One entry per origin warehouse.
    pub requested_freight: Vec<FreightRequest>,
    /// Checks that must pass for the current freight to be verified here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification: Vec<String>,
    /// Which freight auto-promotion picks.
    #[serde(default)]
    pub auto_selection: AutoSelection,
    /// Waybill does not deploy this stage: a promotion completes when it is authorized.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_only: bool,
    #[serde(default)]
    pub policy: PromotionPolicy,
}

/// What a stage takes from one warehouse, and from where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreightRequest {
    /// The warehouse the freight must come from.
    pub origin: String,
    pub sources: Sources,
    #[serde(default)]
    pub availability: Availability,
    /// How long the freight must have stayed verified upstream.
    #[serde(default, skip_serializing_if = "Seconds::is_zero")]
    pub required_soak: Seconds,
}

/// Where requested freight may come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// Straight from the warehouse.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
    /// From these upstream stages, once verified (and soaked) there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
}

/// How many upstream stages must have verified the freight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Availability {
    /// At least one listed upstream.
    #[default]
    OneOf,
    /// Every listed upstream.
    All,
}

/// Which freight auto-promotion picks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AutoSelection {
    /// The newest available (by discovery time; ties: greater id).
    #[default]
    NewestFreight,
    /// Whatever the single upstream stage runs.
    MatchUpstream,
}

/// How promotions into a stage are allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionPolicy {
    #[serde(default)]
    pub mode: PolicyMode,
    /// For `gated`: what must hold for the freight before it is auto-promoted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<Gate>,
    /// Distinct approvers (holding the approver role for the stage) required.
    #[serde(default)]
    pub required_approvals: u32,
    /// The requester never counts as an approver.
    #[serde(default = "yes")]
    pub separation_of_duties: bool,
    /// A regular expression the change ticket must match (whole ticket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_pattern: Option<String>,
    /// IANA time zone of windows and freezes.
    #[serde(default = "utc")]
    pub timezone: String,
    /// When set, promotions are allowed only inside one of these windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// No promotion during a freeze (an emergency bypass excepted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freezes: Vec<Freeze>,
    /// Subjects (`user:x`, `group:y`) allowed to bypass; empty = anyone with the bypass role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bypass: Vec<String>,
}

fn yes() -> bool {
    true
}

fn utc() -> String {
    "UTC".to_string()
}

impl Default for PromotionPolicy {
    fn default() -> Self {
        PromotionPolicy {
            mode: PolicyMode::default(),
            gates: Vec::new(),
            required_approvals: 0,
            separation_of_duties: true,
            ticket_pattern: None,
            timezone: utc(),
            windows: Vec::new(),
            freezes: Vec::new(),
            bypass: Vec::new(),
        }
    }
}

/// The four policy modes (the fourth, emergency bypass, is a command, not a mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Promote new available freight automatically.
    Auto,
    /// As auto, once the gates pass.
    Gated,
    /// A person requests; approvals, tickets, windows and freezes apply.
    #[default]
    Manual,
}

/// A condition on a freight, checked against verifications recorded upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// A check that must have passed for the freight in some stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// A metric recorded on a passing verification of the freight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A recurring window, in the policy's time zone, when promotions are allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Days of the week (empty = every day).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// A period without promotions: whole weekdays, or a date-time range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDateTime>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl PipelineDefinition {
    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&StageDef> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The warehouse named `name`.
    pub fn warehouse(&self, name: &str) -> Option<&WarehouseDef> {
        self.warehouses.iter().find(|w| w.name == name)
    }

    /// Canonical JSON: what `PipelineConfigured` records.
    pub fn to_canonical_json(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string(self).expect("a pipeline definition serializes")
    }
}

impl StageDef {
    /// The request for freight from `warehouse`, if the stage takes it.
    pub fn request_for(&self, warehouse: &str) -> Option<&FreightRequest> {
        self.requested_freight
            .iter()
            .find(|r| r.origin == warehouse)
    }

    /// The stage as it takes freight from `warehouse` alone (its one
    /// request for that warehouse): freight available to it is the freight
    /// of `warehouse` available to the stage.
    pub fn for_warehouse(&self, warehouse: &str) -> Option<StageDef> {
        let request = self.request_for(warehouse)?;
        if self.requested_freight.len() == 1 {
            return Some(self.clone());
        }
        let mut one = self.clone();
        one.requested_freight = vec![request.clone()];
        Some(one)
    }

    /// The warehouses the stage takes freight from, in the order it lists them.
    pub fn warehouses(&self) -> impl Iterator<Item = &str> {
        self.requested_freight.iter().map(|r| r.origin.as_str())
    }

    /// Every upstream stage this stage takes freight from.
    pub fn upstreams(&self) -> impl Iterator<Item = &str> {
        self.requested_freight
            .iter()
            .flat_map(|r| r.sources.stages.iter().map(String::as_str))
    }
}
