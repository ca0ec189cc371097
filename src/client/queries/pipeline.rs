//! `waybill pipeline`: the definition in force, as a pipeline file (text)
//! or with where it came from (JSON).

use serde_json::json;
use tonic::Status;
use waybill_commands::pipeline_file::render_pipeline;
use waybill_ledger::domain::PipelineDefinition;
use waybill_proto::v1 as pb;

use super::command::PipelineArgs;
use super::rpc::{Out, Queries};
use crate::client::Output;

pub async fn run(svc: &mut Queries, a: PipelineArgs, output: Output) -> Result<(), Status> {
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
    let mut out = Out::default();
    match output {
        Output::Text => out.block(&text(&reply, &definition)),
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
            })
            .to_string(),
        ),
    }
    Ok(())
}

/// The definition as YAML, after comment lines saying which version it is
/// and where it came from.
fn text(reply: &pb::PipelineReply, definition: &PipelineDefinition) -> String {
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
    format!(
        "# The pipeline of project {} {which}: policy version {}, applied {}{from}.\n\
         # Fields at their defaults are written out; `waybill apply -f` reads this file\n\
         # as the same definition.\n{}",
        definition.project,
        reply.policy_version,
        super::format::clock(&reply.applied_at),
        render_pipeline(definition)
    )
}
