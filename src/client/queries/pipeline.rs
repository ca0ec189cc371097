//! `waybill pipeline`: the definition in force (or an earlier policy
//! version), as a pipeline file (text) or with where it came from (JSON);
//! with `--diff FILE`, what a file changes against it ([`Changes`], which
//! `apply --dry-run` prints too).

use serde_json::json;
use tonic::Status;
use waybill_commands::pipeline_file::{parse_pipeline, render_pipeline};
use waybill_ledger::domain::{pipeline_changes, PipelineDefinition};
use waybill_proto::v1 as pb;

use super::command::PipelineArgs;
use super::rpc::{Out, Queries};
use crate::client::Output;

/// What a definition changes against the pipeline in force.
#[derive(Debug)]
pub struct Changes {
    /// The policy version in force (0: the project has no pipeline).
    pub version: u64,
    /// A line per change (`stage prod: policy.required_approvals: 2 → 3`).
    pub lines: Vec<String>,
}

impl Changes {
    /// What `definition` changes against the pipeline of `project` in
    /// force once the read models reflect `min_position`.
    pub async fn against_in_force(
        svc: &mut Queries,
        project: &str,
        min_position: u64,
        definition: &PipelineDefinition,
    ) -> Result<Changes, Status> {
        let in_force = svc
            .get_pipeline(pb::GetPipelineRequest {
                project: project.to_string(),
                policy_version: 0,
                min_position,
            })
            .await;
        let in_force = match in_force {
            Ok(r) => Some(r.into_inner()),
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => return Err(s),
        };
        let old = in_force
            .as_ref()
            .map(|r| serde_json::from_str::<PipelineDefinition>(&r.definition_json))
            .transpose()
            .map_err(|e| Status::internal(format!("the pipeline in force does not read: {e}")))?;
        Ok(Changes {
            version: in_force.as_ref().map_or(0, |r| r.policy_version),
            lines: pipeline_changes(old.as_ref(), definition),
        })
    }

    /// A heading and a line per change; nothing when there is none.
    pub fn text(&self) -> String {
        let mut out = match (self.version, self.lines.is_empty()) {
            (_, true) => return String::new(),
            (0, false) => "changes (the project has no pipeline yet):\n".to_string(),
            (v, false) => format!("changes against policy version {v}:\n"),
        };
        for line in &self.lines {
            out.push_str(&format!("  {line}\n"));
        }
        out
    }
}

/// The project `file` defines, for `pipeline --diff FILE` without `-p`.
pub fn project_of(file: &std::path::Path) -> anyhow::Result<String> {
    Ok(definition_in(file)?.project)
}

/// The definition in the pipeline file `file`, or its errors (each with
/// file, line and what is wrong).
fn definition_in(file: &std::path::Path) -> anyhow::Result<PipelineDefinition> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    parse_pipeline(&file.display().to_string(), &text).map_err(|errors| anyhow::anyhow!("{errors}"))
}

pub async fn run(svc: &mut Queries, a: PipelineArgs, output: Output) -> Result<(), Status> {
    if let Some(file) = &a.diff {
        let definition =
            definition_in(file).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if definition.project != a.read.project {
            return Err(Status::invalid_argument(format!(
                "{} defines project {}, not {}",
                file.display(),
                definition.project,
                a.read.project
            )));
        }
        let changes =
            Changes::against_in_force(svc, &a.read.project, a.read.min_position, &definition)
                .await?;
        let mut out = Out::default();
        match output {
            Output::Text if changes.lines.is_empty() => out.line(&format!(
                "no change: {} is the pipeline in force (policy version {})",
                file.display(),
                changes.version
            )),
            Output::Text => out.block(&changes.text()),
            Output::Json => out.line(
                &json!({
                    "project": a.read.project,
                    "in_force_version": changes.version,
                    "changes": changes.lines,
                })
                .to_string(),
            ),
        }
        return Ok(());
    }
    let reply = svc
        .get_pipeline(pb::GetPipelineRequest {
            project: a.read.project,
            policy_version: a.version.unwrap_or(0),
            min_position: a.read.min_position,
        })
        .await?
        .into_inner();
    let definition: PipelineDefinition = serde_json::from_str(&reply.definition_json)
        .map_err(|e| Status::internal(format!("the pipeline in force does not read: {e}")))?;
    let changes = changes_made(svc, &definition.project, reply.policy_version).await;
    let mut out = Out::default();
    match output {
        Output::Text => out.block(&text(&reply, &definition, changes.as_deref())),
        Output::Json => out.line(
            &json!({
                "definition": serde_json::from_str::<serde_json::Value>(&reply.definition_json)
                    .unwrap_or_default(),
                "policy_version": reply.policy_version,
                "applied_at": reply.applied_at,
                "source_uri": reply.source_uri,
                "source_revision": reply.source_revision,
                "source_digest": reply.source_digest,
                "in_force": reply.in_force,
                "position": reply.position,
                "changes": changes,
            })
            .to_string(),
        ),
    }
    Ok(())
}

/// What policy `version` of `project` changed against the version before
/// it, as its history entry says (a line per field; for a project's first
/// pipeline, one naming what it brought); `None` when the history does not
/// say (a server older than these entries, or no history to read).
pub async fn changes_made(svc: &mut Queries, project: &str, version: u64) -> Option<Vec<String>> {
    let mut entries = svc
        .history(pb::HistoryRequest {
            project: project.to_string(),
            event_type: "PipelineConfigured".into(),
            from_position: version,
            limit: 1,
            // Just applied: wait (bounded) for the read models to show it.
            min_position: version,
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner();
    let entry = entries.message().await.ok()??;
    (entry.position == version && !entry.pipeline_changes.is_empty())
        .then_some(entry.pipeline_changes)
}

/// The definition as YAML, after comment lines saying which version it is,
/// where it came from and what it changed.
fn text(
    reply: &pb::PipelineReply,
    definition: &PipelineDefinition,
    changes: Option<&[String]>,
) -> String {
    let mut from = String::new();
    if !reply.source_uri.is_empty() {
        from.push_str(&format!(" from {}", reply.source_uri));
    }
    if !reply.source_revision.is_empty() {
        from.push_str(&format!(" (revision {})", reply.source_revision));
    }
    let which = match reply.in_force {
        true => "in force",
        false => "no longer in force",
    };
    let mut changed = String::new();
    if let Some(changes) = changes {
        changed.push_str("# What it changed against the version before:\n");
        for line in changes {
            changed.push_str(&format!("#   {}\n", super::format::one_line(line)));
        }
    }
    format!(
        "# The pipeline of project {} {which}: policy version {}, applied {}{from}.\n\
         {changed}\
         # Fields at their defaults are written out; `waybill apply -f` reads this file\n\
         # as the same definition.\n{}",
        definition.project,
        reply.policy_version,
        super::format::clock(&reply.applied_at),
        render_pipeline(definition)
    )
}
