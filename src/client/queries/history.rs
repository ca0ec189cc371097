//! `history`: what happened, oldest first, filtered; and the one-line entry
//! format that `watch` shares.

use serde_json::{json, Value};
use tonic::Status;
use waybill_proto::v1 as pb;

use super::command::HistoryArgs;
use super::format::{clock, one_line};
use super::rpc::{Out, Queries};
use crate::client::Output;

/// Width of the actor column (longer names push the rest of their line right).
const ACTOR_WIDTH: usize = 18;
/// Width of the event type column (the longest type is 20 characters).
const TYPE_WIDTH: usize = 20;

/// One entry on one line: position, `BYPASS` when it was one (in a column of
/// its own, near the start, so it stands out and lines up), time, the project
/// (if asked), actor, event type, summary, then reason and ticket when given;
/// under a pipeline applied, what it changed, a line each.
pub fn entry_line(e: &pb::HistoryEntry, with_project: bool) -> String {
    let flag = if e.bypass { "BYPASS" } else { "" };
    let mut line = format!("{:>7} {flag:<6}  {}", e.position, clock(&e.time));
    if with_project {
        line.push_str(&format!("  {}", one_line(&e.project)));
    }
    line.push_str(&format!(
        "  {:<ACTOR_WIDTH$}  {:<TYPE_WIDTH$}  ",
        one_line(&e.actor),
        one_line(&e.event_type),
    ));
    line.push_str(&one_line(&e.summary));
    let mut extras = Vec::new();
    if !e.reason.is_empty() {
        extras.push(format!("reason: {}", one_line(&e.reason)));
    }
    if !e.ticket.is_empty() {
        extras.push(format!("ticket: {}", one_line(&e.ticket)));
    }
    if !e.evidence_url.is_empty() {
        extras.push(format!("evidence: {}", one_line(&e.evidence_url)));
    }
    if !e.promotion_status.is_empty() && implied(&e.event_type) != Some(&e.promotion_status) {
        extras.push(format!("now {}", e.promotion_status));
    }
    if !extras.is_empty() {
        line.push_str(&format!("  [{}]", extras.join("; ")));
    }
    for change in &e.pipeline_changes {
        line.push_str(&format!("\n{:CHANGE_INDENT$}{}", "", one_line(change)));
    }
    line
}

/// How far the lines of a pipeline's changes are indented under its entry
/// (past the position and the bypass column).
const CHANGE_INDENT: usize = 16;

/// The status a promotion event leaves its promotion in by itself (an
/// approval may or may not authorize it: none).
fn implied(event_type: &str) -> Option<&'static str> {
    Some(match event_type {
        "PromotionRequested" => "Requested",
        "PromotionRejected" => "Rejected",
        "PromotionStarted" => "Running",
        "PromotionSucceeded" => "Succeeded",
        "PromotionFailed" => "Failed",
        "PromotionAborted" => "Aborted",
        _ => return None,
    })
}

/// One entry as a JSON object (with `freight_artifacts` when the server
/// sent them, as `Watch` does).
pub fn entry_json(e: &pb::HistoryEntry) -> Value {
    let mut v = json!({
        "position": e.position,
        "project": e.project,
        "event_type": e.event_type,
        "time": e.time,
        "actor": e.actor,
        "auth_method": e.auth_method,
        "stage": e.stage,
        "freight": e.freight,
        "promotion": e.promotion,
        "reason": e.reason,
        "ticket": e.ticket,
        "evidence_url": e.evidence_url,
        "bypass": e.bypass,
        "policy_version": e.policy_version,
        "hash": e.hash,
        "summary": e.summary,
        "command_id": e.command_id,
        "promotion_status": e.promotion_status,
    });
    if e.event_type == "PipelineConfigured" {
        v["pipeline_changes"] = json!(e.pipeline_changes);
    }
    if !e.freight_artifacts.is_empty() {
        v["freight_artifacts"] = e
            .freight_artifacts
            .iter()
            .map(super::freight::artifact_json)
            .collect();
    }
    v
}

/// Writes one entry in the chosen format.
pub fn emit(out: &mut Out, output: Output, e: &pb::HistoryEntry, with_project: bool) {
    match output {
        Output::Text => out.line(&entry_line(e, with_project)),
        Output::Json => out.line(&entry_json(e).to_string()),
    }
}

/// `history`: the filtered request, streamed.
pub async fn run(svc: &mut Queries, a: HistoryArgs, output: Output) -> Result<(), Status> {
    let req = pb::HistoryRequest {
        project: a.read.project,
        stage: a.stage.unwrap_or_default(),
        freight: a.freight.unwrap_or_default(),
        actor: a.actor.unwrap_or_default(),
        event_type: a.event_type.unwrap_or_default(),
        promotion: a.promotion.unwrap_or_default(),
        since: a.since.unwrap_or_default(),
        until: a.until.unwrap_or_default(),
        from_position: a.from,
        limit: a.last.unwrap_or(a.limit),
        newest_first: a.last.is_some(),
        min_position: a.read.min_position,
    };
    match a.last {
        Some(_) => last(svc, req, output).await,
        None => history(svc, req, output).await,
    }
}

/// The most recent entries, asked for newest first and printed oldest
/// first; when there may be earlier ones, says on stderr how to see them.
async fn last(svc: &mut Queries, req: pb::HistoryRequest, output: Output) -> Result<(), Status> {
    let limit = req.limit;
    let every_project = req.project.is_empty();
    let mut stream = svc.history(req).await?.into_inner();
    let mut entries = Vec::new();
    while let Some(e) = stream.message().await? {
        entries.push(e);
    }
    let mut out = Out::default();
    for e in entries.iter().rev() {
        emit(&mut out, output, e, every_project);
        if !out.is_open() {
            return Ok(());
        }
    }
    match entries.last() {
        Some(first) if limit > 0 && entries.len() >= limit as usize => eprintln!(
            "(the last {}; earlier ones with --last {limit} --from {})",
            match entries.len() {
                1 => "entry".to_string(),
                n => format!("{n} entries"),
            },
            first.position.saturating_sub(1)
        ),
        None if output == Output::Text => eprintln!("(no entries)"),
        _ => {}
    }
    Ok(())
}

/// Streams the history, printing entries as they come; when the limit is
/// reached, says on stderr where to continue.
async fn history(svc: &mut Queries, req: pb::HistoryRequest, output: Output) -> Result<(), Status> {
    let limit = req.limit;
    let every_project = req.project.is_empty();
    let mut stream = svc.history(req).await?.into_inner();
    let mut out = Out::default();
    let mut count: u32 = 0;
    let mut last = None;
    while let Some(e) = stream.message().await? {
        emit(&mut out, output, &e, every_project);
        if !out.is_open() {
            return Ok(());
        }
        count = count.saturating_add(1);
        last = Some(e.position);
    }
    match last {
        Some(p) if limit > 0 && count >= limit => eprintln!(
            "({count} entries, the limit; continue with --from {})",
            p.saturating_add(1)
        ),
        None if output == Output::Text => eprintln!("(no entries)"),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> pb::HistoryEntry {
        pb::HistoryEntry {
            position: 123,
            project: "shop".into(),
            event_type: "PromotionRequested".into(),
            time: "2024-05-01T12:00:00.5Z".into(),
            actor: "alice".into(),
            summary: "promotion prm-1 of v1.2 into prod".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_plain_entry() {
        assert_eq!(
            entry_line(&entry(), false),
            "    123         2024-05-01 12:00:00Z  alice               PromotionRequested    \
             promotion prm-1 of v1.2 into prod"
        );
    }

    #[test]
    fn bypass_reason_and_ticket_are_shown() {
        let mut e = entry();
        e.event_type = "FreightApproved".into();
        e.summary = "freight v1.2 approved for prod".into();
        e.bypass = true;
        e.reason = "outage\nnow".into();
        e.ticket = "INC-9".into();
        assert_eq!(
            entry_line(&e, true),
            "    123 BYPASS  2024-05-01 12:00:00Z  shop  alice               FreightApproved       \
             freight v1.2 approved for prod  [reason: outage now; ticket: INC-9]"
        );
    }

    #[test]
    fn a_pipeline_applied_lists_its_changes_under_it() {
        let mut e = entry();
        e.event_type = "PipelineConfigured".into();
        e.summary = "pipeline applied: policy version 123 (2 changes)".into();
        e.pipeline_changes = vec![
            "stage prod: policy.required_approvals: 2 → 3".into(),
            "stage qa removed".into(),
        ];
        let text = entry_line(&e, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("pipeline applied: policy version 123 (2 changes)"));
        assert_eq!(
            lines[1],
            "                stage prod: policy.required_approvals: 2 → 3"
        );
        assert_eq!(
            lines[1].find("stage"),
            lines[0].find("2024"),
            "under the time"
        );
        assert_eq!(lines[2].trim_start(), "stage qa removed");
        assert_eq!(
            entry_json(&e)["pipeline_changes"][1],
            "stage qa removed",
            "JSON too"
        );
    }

    #[test]
    fn json_keeps_every_field() {
        let v = entry_json(&entry());
        assert_eq!(v["position"], 123);
        assert_eq!(v["bypass"], false);
        assert_eq!(v["time"], "2024-05-01T12:00:00.5Z");
        assert_eq!(v.as_object().map(|o| o.len()), Some(18));
        assert!(v.get("freight_artifacts").is_none());
    }

    #[test]
    fn a_watched_entry_says_what_to_deploy() {
        let mut e = entry();
        e.freight_artifacts = vec![pb::Artifact {
            kind: pb::artifact::Kind::Image as i32,
            name: "ghcr.io/acme/shop".into(),
            version: "1.2.0".into(),
            digest: "sha256:abc".into(),
        }];
        assert_eq!(
            entry_json(&e)["freight_artifacts"][0]["ref"],
            "ghcr.io/acme/shop:1.2.0@sha256:abc"
        );
    }

    #[test]
    fn a_verification_shows_what_it_found_and_its_evidence() {
        let mut e = entry();
        e.event_type = "VerificationRecorded".into();
        e.summary = "smoke passed for 7da251a60fcc in prod (p99_ms=120)".into();
        e.reason = "412 tests passed".into();
        e.evidence_url = "https://ci.example/881".into();
        assert!(entry_line(&e, false).ends_with(
            "smoke passed for 7da251a60fcc in prod (p99_ms=120)  \
             [reason: 412 tests passed; evidence: https://ci.example/881]"
        ));
        assert_eq!(entry_json(&e)["evidence_url"], "https://ci.example/881");
    }
}
