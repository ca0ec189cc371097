//! History items: one per event, with who, when, what, why, under which
//! policy version, and its position and hash.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use waybill_ledger::{EventPayload, Position, StoredEvent};

/// One event as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub position: Position,
    pub project: String,
    pub project_seq: u64,
    /// Event type, e.g. `PromotionRequested`.
    pub event_type: String,
    pub time: DateTime<Utc>,
    pub actor: String,
    pub auth_method: String,
    pub command_id: String,
    pub stage: String,
    pub freight: String,
    pub promotion: String,
    /// Reason, comment or details given with the event.
    pub reason: String,
    pub ticket: String,
    /// Where a verification's evidence is (e.g. the CI run).
    pub evidence_url: String,
    /// An emergency bypass.
    pub bypass: bool,
    /// The policy version in force (position of the pipeline applied).
    pub policy_version: Position,
    /// Chain hash, hex.
    pub hash: String,
    /// A one-line description.
    pub summary: String,
    /// For an event about a promotion: the promotion's status right after it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub promotion_status: String,
    /// For a pipeline applied: what it changed against the policy version
    /// before it, a line per field
    /// ([`waybill_ledger::domain::pipeline_changes`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipeline_changes: Vec<String>,
}

impl HistoryItem {
    /// A pipeline applied changed these fields (lines of
    /// [`waybill_ledger::domain::pipeline_changes`]) against the policy
    /// version before it (`first`: there was none); the summary counts them.
    pub fn set_pipeline_changes(&mut self, changes: Vec<String>, first: bool) {
        if !first {
            self.summary.push_str(&match changes.len() {
                0 => " (no change)".to_string(),
                1 => " (1 change)".to_string(),
                n => format!(" ({n} changes)"),
            });
        }
        self.pipeline_changes = changes;
    }

    /// The history item of `ev`, given the policy version, the promotion's
    /// stage and freight (for events that name only the promotion), and the
    /// alias of the freight it names (empty: none), which its summary names
    /// it by, as every table does.
    pub fn of(
        ev: &StoredEvent,
        policy_version: Position,
        promotion_target: Option<(&str, &str)>,
        alias: &str,
    ) -> HistoryItem {
        let e = &ev.event;
        let mut item = HistoryItem {
            position: ev.position,
            project: e.project.clone(),
            project_seq: e.project_seq,
            event_type: e.payload.event_type().name().to_string(),
            time: e.time,
            actor: e.actor.principal.clone(),
            auth_method: e.actor.auth_method.clone(),
            command_id: e.command_id.clone(),
            stage: String::new(),
            freight: String::new(),
            promotion: String::new(),
            reason: String::new(),
            ticket: String::new(),
            evidence_url: String::new(),
            bypass: false,
            policy_version,
            hash: ev.hash.to_hex(),
            summary: String::new(),
            promotion_status: String::new(),
            pipeline_changes: Vec::new(),
        };
        let (stage, freight) = promotion_target.unwrap_or(("", ""));
        let named = |id: &str| match alias {
            "" => short(id).to_string(),
            alias => alias.to_string(),
        };
        match &e.payload {
            EventPayload::PipelineConfigured(p) => {
                // Where the definition came from is its "why"; the summary
                // says what it did (a new policy version).
                item.reason = match p.source_revision.as_str() {
                    "" => p.source_uri.clone(),
                    revision => format!("{} at {revision}", p.source_uri),
                };
                item.policy_version = ev.position;
                item.summary = format!("pipeline applied: policy version {}", ev.position);
            }
            EventPayload::FreightDiscovered(d) => {
                item.freight = d.freight_id.clone();
                item.summary = format!(
                    "freight {} discovered in {}{}",
                    short(&d.freight_id),
                    d.warehouse,
                    if d.alias.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", d.alias)
                    }
                );
            }
            EventPayload::VerificationRecorded(v) => {
                item.stage = v.stage.clone();
                item.freight = v.freight_id.clone();
                // What the check found is its "why"; the evidence is where
                // to see it.
                item.reason = v.details.clone();
                item.evidence_url = v.evidence_url.clone();
                let metrics = v
                    .metrics
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>();
                item.summary = format!(
                    "{} {} for {} in {}{}",
                    v.check,
                    if v.passed { "passed" } else { "failed" },
                    named(&v.freight_id),
                    v.stage,
                    if metrics.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", metrics.join(", "))
                    }
                );
            }
            EventPayload::FreightApproved(a) => {
                item.stage = a.stage.clone();
                item.freight = a.freight_id.clone();
                item.reason = a.reason.clone();
                item.ticket = a.ticket.clone();
                item.bypass = a.bypass;
                item.summary = format!(
                    "{}freight {} approved for {}",
                    if a.bypass { "EMERGENCY BYPASS: " } else { "" },
                    named(&a.freight_id),
                    a.stage
                );
            }
            EventPayload::PromotionRequested(r) => {
                item.stage = r.stage.clone();
                item.freight = r.freight_id.clone();
                item.promotion = r.promotion_id.clone();
                item.reason = r.reason.clone();
                item.ticket = r.ticket.clone();
                item.summary = format!(
                    "promotion {} of {} into {} requested",
                    r.promotion_id,
                    named(&r.freight_id),
                    r.stage
                );
            }
            EventPayload::PromotionApproved(a) => {
                fill(
                    &mut item,
                    &named(freight),
                    &a.promotion_id,
                    stage,
                    freight,
                    &a.comment,
                    "approved",
                );
            }
            EventPayload::PromotionRejected(r) => {
                fill(
                    &mut item,
                    &named(freight),
                    &r.promotion_id,
                    stage,
                    freight,
                    &r.reason,
                    "rejected",
                );
            }
            EventPayload::PromotionStarted(s) => {
                fill(
                    &mut item,
                    &named(freight),
                    &s.promotion_id,
                    stage,
                    freight,
                    &s.executor,
                    "started",
                );
            }
            EventPayload::PromotionSucceeded(s) => {
                fill(
                    &mut item,
                    &named(freight),
                    &s.promotion_id,
                    stage,
                    freight,
                    &s.details,
                    "succeeded",
                );
            }
            EventPayload::PromotionFailed(f) => {
                fill(
                    &mut item,
                    &named(freight),
                    &f.promotion_id,
                    stage,
                    freight,
                    &f.account(),
                    "failed",
                );
            }
            EventPayload::PromotionAborted(a) => {
                fill(
                    &mut item,
                    &named(freight),
                    &a.promotion_id,
                    stage,
                    freight,
                    &a.reason,
                    "aborted",
                );
            }
            EventPayload::CheckpointSigned(c) => {
                item.summary = format!("checkpoint at tree size {}", c.tree_size);
            }
        }
        item
    }
}

fn fill(
    item: &mut HistoryItem,
    named: &str,
    promotion: &str,
    stage: &str,
    freight: &str,
    reason: &str,
    verb: &str,
) {
    item.promotion = promotion.to_string();
    item.stage = stage.to_string();
    item.freight = freight.to_string();
    item.reason = reason.to_string();
    item.summary = format!("promotion {promotion} of {named} into {stage} {verb}");
}

/// The first 12 characters of an id.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}
