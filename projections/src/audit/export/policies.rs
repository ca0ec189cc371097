//! The policies file: one record per pipeline applied within the exported
//! records — who applied which rules when, from where, and what they changed
//! — which the promotions' `policy_version` names. Taken from the records
//! themselves (the changes against the version before, which may precede the
//! range, from the records read before it), so a verifier checks each
//! against the `PipelineConfigured` record it names.

use serde::{Deserialize, Serialize};
use waybill_ledger::domain::{pipeline_changes, PipelineDefinition};
use waybill_ledger::{Event, EventPayload, Position};

use super::time;

/// The policies file of every export (JSON lines, whatever the promotions'
/// format: a definition is nested).
pub const POLICIES_FILE: &str = "policies.jsonl";

/// One pipeline applied, as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub project: String,
    /// Position of its `PipelineConfigured` record (in `events.jsonl`): the
    /// policy version promotions name.
    pub policy_version: u64,
    pub applied_at: String,
    pub applied_by: String,
    pub applied_auth: String,
    /// Where the definition came from (a file, a git commit) and the SHA-256
    /// of the file as written.
    pub source_uri: String,
    pub source_revision: String,
    pub source_digest: String,
    /// What it changed against the policy version before it, a line per
    /// field (`stage prod: policy.required_approvals: 2 → 3`); for the
    /// project's first pipeline, one line naming what it brought.
    pub changes: Vec<String>,
    /// The whole definition, as recorded.
    pub definition: serde_json::Value,
}

/// Follows a project's records in order, and makes a [`PolicyRecord`] of
/// each pipeline applied among those exported.
#[derive(Debug, Default)]
pub struct Policies {
    /// The definition in force after the records seen so far.
    in_force: Option<PipelineDefinition>,
    pub records: Vec<PolicyRecord>,
}

impl Policies {
    /// Takes in the record at `position`, exported (`in_range`) or read
    /// before the range.
    pub fn saw(&mut self, position: Position, e: &Event, in_range: bool) {
        let EventPayload::PipelineConfigured(p) = &e.payload else {
            return;
        };
        // A definition that does not read was not applied (the fold skips it).
        let Ok(definition) = serde_json::from_str::<PipelineDefinition>(&p.definition_json) else {
            return;
        };
        if in_range {
            self.records.push(PolicyRecord {
                project: e.project.clone(),
                policy_version: position.0,
                applied_at: time(e.time),
                applied_by: e.actor.principal.clone(),
                applied_auth: e.actor.auth_method.clone(),
                source_uri: p.source_uri.clone(),
                source_revision: p.source_revision.clone(),
                source_digest: p.source_digest.clone(),
                changes: pipeline_changes(self.in_force.as_ref(), &definition),
                definition: serde_json::from_str(&p.definition_json).unwrap_or_default(),
            });
        }
        self.in_force = Some(definition);
    }
}

#[cfg(test)]
mod tests {
    use waybill_ledger::event::PipelineConfigured;
    use waybill_ledger::{Actor, ChainHash};

    use super::*;

    fn applied(definition_json: &str) -> Event {
        Event {
            id: uuid::Uuid::now_v7(),
            project: "shop".into(),
            project_seq: 1,
            prev_hash: ChainHash([0; 32]),
            time: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            source: "waybill://test".into(),
            subject: "pipeline".into(),
            actor: Actor {
                principal: "alice".into(),
                auth_method: "token".into(),
            },
            command_id: "cmd".into(),
            correlation_id: String::new(),
            causation_id: String::new(),
            schema_version: 1,
            payload: EventPayload::PipelineConfigured(PipelineConfigured {
                definition_json: definition_json.into(),
                source_uri: "pipeline.yaml".into(),
                source_revision: "abc123".into(),
                source_digest: "d".repeat(64),
            }),
        }
    }

    fn definition(approvals: u32) -> String {
        serde_json::json!({
            "project": "shop",
            "warehouses": [{"name": "images"}],
            "stages": [{
                "name": "prod",
                "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
                "policy": {"mode": "manual", "required_approvals": approvals},
            }],
        })
        .to_string()
    }

    /// A pipeline exported is compared with the one in force before it,
    /// also when that one was applied before the range; one that does not
    /// read (never applied) is left out.
    #[test]
    fn changes_are_against_the_version_before_even_outside_the_range() {
        let mut policies = Policies::default();
        policies.saw(Position(1), &applied(&definition(2)), false);
        policies.saw(Position(4), &applied("{not json"), true);
        policies.saw(Position(7), &applied(&definition(3)), true);
        assert_eq!(policies.records.len(), 1);
        let record = &policies.records[0];
        assert_eq!(record.policy_version, 7);
        assert_eq!(
            record.changes,
            ["stage prod: policy.required_approvals: 2 → 3"]
        );
        assert_eq!(
            (record.applied_by.as_str(), record.applied_auth.as_str()),
            ("alice", "token")
        );
        assert_eq!(
            record.definition["stages"][0]["policy"]["required_approvals"],
            3
        );
        let mut first = Policies::default();
        first.saw(Position(1), &applied(&definition(2)), true);
        assert_eq!(
            first.records[0].changes,
            ["new project shop: warehouses images; stages prod"]
        );
    }
}
