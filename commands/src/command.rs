//! Commands: what callers ask for, in the imperative. Each is decided against
//! the project's state and, if allowed, becomes exactly one event.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use waybill_ledger::event::Artifact;
use waybill_ledger::Actor;

/// Which freight a promotion request names.
#[derive(Debug, Clone, PartialEq)]
pub enum FreightSelector {
    /// A freight id or alias.
    Named(String),
    /// The newest freight available to the stage.
    NewestAvailable,
    /// The newest freight of this warehouse available to the stage.
    NewestOf(String),
}

/// What an executor reports about a promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotionResult {
    Started,
    Succeeded,
    Failed,
}

/// A command on one project.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    ApplyPipeline {
        /// The definition as canonical JSON (already parsed and checked).
        definition: waybill_ledger::domain::PipelineDefinition,
        source_uri: String,
        source_revision: String,
        source_digest: String,
    },
    RecordDiscovery {
        warehouse: String,
        artifacts: Vec<Artifact>,
        alias: String,
    },
    RecordVerification {
        freight: String,
        stage: String,
        check: String,
        passed: bool,
        metrics: BTreeMap<String, f64>,
        evidence_url: String,
        details: String,
    },
    RequestPromotion {
        stage: String,
        freight: FreightSelector,
        ticket: String,
        reason: String,
    },
    ApprovePromotion {
        promotion: String,
        comment: String,
    },
    RejectPromotion {
        promotion: String,
        reason: String,
    },
    AbortPromotion {
        promotion: String,
        reason: String,
    },
    /// The emergency bypass: approve freight straight for a stage.
    ApproveFreight {
        freight: String,
        stage: String,
        reason: String,
        ticket: String,
    },
    ReportPromotionResult {
        promotion: String,
        result: PromotionResult,
        details: String,
    },
    /// Promote the previous freight of the stage that is still available.
    Rollback {
        stage: String,
        /// The warehouse whose freight to roll back (empty: the stage's
        /// only one).
        warehouse: String,
        ticket: String,
        reason: String,
    },
}

impl Command {
    /// The command's name, as in the API (`RequestPromotion`).
    pub fn name(&self) -> &'static str {
        match self {
            Command::ApplyPipeline { .. } => "ApplyPipeline",
            Command::RecordDiscovery { .. } => "RecordDiscovery",
            Command::RecordVerification { .. } => "RecordVerification",
            Command::RequestPromotion { .. } => "RequestPromotion",
            Command::ApprovePromotion { .. } => "ApprovePromotion",
            Command::RejectPromotion { .. } => "RejectPromotion",
            Command::AbortPromotion { .. } => "AbortPromotion",
            Command::ApproveFreight { .. } => "ApproveFreight",
            Command::ReportPromotionResult { .. } => "ReportPromotionResult",
            Command::Rollback { .. } => "Rollback",
        }
    }

    /// The stage the command acts on, when it names one directly.
    pub fn stage(&self) -> Option<&str> {
        match self {
            Command::RecordVerification { stage, .. }
            | Command::RequestPromotion { stage, .. }
            | Command::ApproveFreight { stage, .. }
            | Command::Rollback { stage, .. } => Some(stage),
            _ => None,
        }
    }

    /// The freight the command names by id or alias, if any (a promotion
    /// of the newest available names none).
    pub fn freight_named(&self) -> Option<&str> {
        match self {
            Command::RecordVerification { freight, .. }
            | Command::ApproveFreight { freight, .. }
            | Command::RequestPromotion {
                freight: FreightSelector::Named(freight),
                ..
            } => Some(freight),
            _ => None,
        }
    }

    /// [`Command::freight_named`], to change.
    pub fn freight_named_mut(&mut self) -> Option<&mut String> {
        match self {
            Command::RecordVerification { freight, .. }
            | Command::ApproveFreight { freight, .. }
            | Command::RequestPromotion {
                freight: FreightSelector::Named(freight),
                ..
            } => Some(freight),
            _ => None,
        }
    }

    /// The promotion the command acts on, if any.
    pub fn promotion(&self) -> Option<&str> {
        match self {
            Command::ApprovePromotion { promotion, .. }
            | Command::RejectPromotion { promotion, .. }
            | Command::AbortPromotion { promotion, .. }
            | Command::ReportPromotionResult { promotion, .. } => Some(promotion),
            _ => None,
        }
    }

    /// [`Command::promotion`], to change.
    pub fn promotion_mut(&mut self) -> Option<&mut String> {
        match self {
            Command::ApprovePromotion { promotion, .. }
            | Command::RejectPromotion { promotion, .. }
            | Command::AbortPromotion { promotion, .. }
            | Command::ReportPromotionResult { promotion, .. } => Some(promotion),
            _ => None,
        }
    }
}

/// Who asks, when, and under which idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub actor: Actor,
    /// The caller's groups (for policy subject lists such as `bypass`).
    pub groups: Vec<String>,
    pub now: DateTime<Utc>,
    pub command_id: String,
}

impl Context {
    /// Does the caller match a policy subject (`user:x`, `group:y`, `service:z`, `*`)?
    pub fn matches(&self, subject: &str) -> bool {
        if subject == "*" {
            return true;
        }
        if let Some(user) = subject.strip_prefix("user:") {
            return self.actor.principal == user;
        }
        if let Some(group) = subject.strip_prefix("group:") {
            return self.groups.iter().any(|g| g == group);
        }
        if let Some(service) = subject.strip_prefix("service:") {
            return self.actor.principal == format!("svc:{service}");
        }
        false
    }

    /// Is the caller a service principal (a reactor)?
    pub fn is_service(&self) -> bool {
        self.actor.auth_method == "service"
    }
}
