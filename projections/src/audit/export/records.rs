//! One record per promotion: what a change-management audit samples
//! (SOC 2 CC8.1, SOX ITGC change management): what changed (freight and
//! artifacts with digests), where (stage), who asked and who approved when,
//! whether requester and approvers were distinct, the ticket, the
//! verifications with their evidence, the policy version in force, any
//! emergency bypass with its reason, and the result.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use waybill_ledger::domain::{Freight, Promotion};

/// One promotion, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionRecord {
    pub project: String,
    pub promotion_id: String,
    pub stage: String,
    /// Position of its `PromotionRequested` event (in `events.jsonl`).
    pub requested_position: u64,
    pub requested_by: String,
    pub requested_auth: String,
    pub requested_at: String,
    pub reason: String,
    pub ticket: String,
    /// Position of the `PipelineConfigured` event whose policy decided it.
    pub policy_version: u64,
    pub freight: FreightRecord,
    pub approvals: Vec<ApprovalRecord>,
    /// `distinct` (nobody approved their own request), `requester-approved`,
    /// or `no-approvals`.
    pub separation_of_duties: String,
    /// Verifications of the freight (every stage, every check).
    pub verifications: Vec<VerificationRecord>,
    /// The freight was approved for this stage by an emergency bypass.
    pub bypass: bool,
    pub bypass_by: String,
    pub bypass_reason: String,
    /// Requested, Authorized, Running, Succeeded, Failed, Aborted, Rejected.
    pub status: String,
    /// Executor or rejection details.
    pub result_details: String,
    /// When the status last changed.
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreightRecord {
    pub id: String,
    pub alias: String,
    pub warehouse: String,
    pub artifacts: Vec<ArtifactRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub kind: String,
    pub name: String,
    pub version: String,
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub by: String,
    pub at: String,
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationRecord {
    pub stage: String,
    pub check: String,
    pub passed: bool,
    pub at: String,
    pub evidence_url: String,
    pub position: u64,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl PromotionRecord {
    /// The record of promotion `p` of `project`, with its freight's details.
    pub fn with_freight(
        project: &str,
        p: &Promotion,
        freight: Option<&Freight>,
    ) -> PromotionRecord {
        let approvals: Vec<ApprovalRecord> = p
            .approvals
            .iter()
            .map(|a| ApprovalRecord {
                by: a.by.clone(),
                at: time(a.at),
                comment: a.comment.clone(),
            })
            .collect();
        let separation_of_duties = if approvals.is_empty() {
            "no-approvals"
        } else if approvals.iter().any(|a| a.by == p.requested_by.principal) {
            "requester-approved"
        } else {
            "distinct"
        };
        let bypass = freight
            .and_then(|f| f.approved_for.get(&p.stage))
            .filter(|a| a.bypass);
        PromotionRecord {
            project: project.to_string(),
            promotion_id: p.id.clone(),
            stage: p.stage.clone(),
            requested_position: p.requested.0,
            requested_by: p.requested_by.principal.clone(),
            requested_auth: p.requested_by.auth_method.clone(),
            requested_at: time(p.requested_at),
            reason: p.reason.clone(),
            ticket: p.ticket.clone(),
            policy_version: p.policy_version.0,
            freight: FreightRecord {
                id: p.freight.clone(),
                alias: freight.map(|f| f.alias.clone()).unwrap_or_default(),
                warehouse: freight.map(|f| f.warehouse.clone()).unwrap_or_default(),
                artifacts: freight
                    .map(|f| {
                        f.artifacts
                            .iter()
                            .map(|a| ArtifactRecord {
                                kind: a.kind.name().to_string(),
                                name: a.name.clone(),
                                version: a.version.clone(),
                                digest: a.digest.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            approvals,
            separation_of_duties: separation_of_duties.to_string(),
            verifications: freight
                .map(|f| {
                    f.checks
                        .iter()
                        .flat_map(|(stage, checks)| {
                            checks.iter().map(move |(check, r)| VerificationRecord {
                                stage: stage.clone(),
                                check: check.clone(),
                                passed: r.passed,
                                at: time(r.at),
                                evidence_url: r.evidence_url.clone(),
                                position: r.position.0,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            bypass: bypass.is_some(),
            bypass_by: bypass.map(|b| b.by.clone()).unwrap_or_default(),
            bypass_reason: bypass.map(|b| b.reason.clone()).unwrap_or_default(),
            status: p.status.name().to_string(),
            result_details: p.details.clone(),
            updated_at: time(p.updated_at),
        }
    }

    /// The CSV header, matching [`PromotionRecord::csv_row`].
    pub const CSV_HEADER: [&'static str; 21] = [
        "project",
        "promotion_id",
        "stage",
        "requested_position",
        "requested_by",
        "requested_at",
        "reason",
        "ticket",
        "policy_version",
        "freight_id",
        "freight_alias",
        "artifacts",
        "approvals",
        "separation_of_duties",
        "verifications",
        "bypass",
        "bypass_by",
        "bypass_reason",
        "status",
        "result_details",
        "updated_at",
    ];

    /// One CSV row: lists are joined with `; `.
    pub fn csv_row(&self) -> [String; 21] {
        let artifacts = self
            .freight
            .artifacts
            .iter()
            .map(|a| {
                let artifact = format!("{} {}:{} {}", a.kind, a.name, a.version, a.digest);
                artifact.trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("; ");
        let approvals = self
            .approvals
            .iter()
            .map(|a| format!("{} at {}", a.by, a.at))
            .collect::<Vec<_>>()
            .join("; ");
        let verifications = self
            .verifications
            .iter()
            .map(|v| {
                let outcome = if v.passed { "passed" } else { "failed" };
                let line = format!(
                    "{}/{} {outcome} at {} {}",
                    v.stage, v.check, v.at, v.evidence_url
                );
                line.trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("; ");
        [
            self.project.clone(),
            self.promotion_id.clone(),
            self.stage.clone(),
            self.requested_position.to_string(),
            self.requested_by.clone(),
            self.requested_at.clone(),
            self.reason.clone(),
            self.ticket.clone(),
            self.policy_version.to_string(),
            self.freight.id.clone(),
            self.freight.alias.clone(),
            artifacts,
            approvals,
            self.separation_of_duties.clone(),
            verifications,
            self.bypass.to_string(),
            self.bypass_by.clone(),
            self.bypass_reason.clone(),
            self.status.clone(),
            self.result_details.clone(),
            self.updated_at.clone(),
        ]
    }
}
