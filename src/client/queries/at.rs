//! `at`: the pipeline as it was at a position or a time, as `status` shows it.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tonic::Status;
use waybill_proto::v1 as pb;

use super::command::AtArgs;
use super::format::when;
use super::promotions::{detail_text, promotion_json};
use super::rpc::{Out, Queries};
use super::stages::{reflect, stage_body, stage_json, stage_text, stages_json, stages_text, views};
use crate::client::Output;

/// What `at` was asked for: a position or a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtPoint {
    Position(u64),
    /// RFC 3339, in UTC.
    Time(String),
}

impl AtPoint {
    /// Parses `1234`, or a time as [`super::format::time_arg`] reads it.
    pub fn parse(s: &str) -> Result<AtPoint, String> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(AtPoint::Position)
                .map_err(|e| format!("{s:?}: {e}"));
        }
        super::format::time_arg(s).map(AtPoint::Time).map_err(|_| {
            format!(
                "{s:?} is neither a position nor {}",
                super::format::TIME_FORMS
            )
        })
    }

    /// The request field.
    pub fn request(&self) -> pb::state_at_request::At {
        match self {
            AtPoint::Position(p) => pb::state_at_request::At::Position(*p),
            AtPoint::Time(t) => pb::state_at_request::At::Time(t.clone()),
        }
    }

    /// The `as of` header.
    pub fn header(&self, project: &str, now: DateTime<Utc>) -> String {
        match self {
            AtPoint::Position(p) => format!("project {project} as of position {p}"),
            AtPoint::Time(t) => format!("project {project} as of {}", when(t, now)),
        }
    }

    /// The point as JSON.
    pub fn json(&self) -> Value {
        match self {
            AtPoint::Position(p) => json!({ "position": p }),
            AtPoint::Time(t) => json!({ "time": t }),
        }
    }
}

/// The state at a point: the `as of` header, then as `status`.
pub fn at_text(point: &AtPoint, reply: &pb::ListStagesReply, now: DateTime<Utc>) -> String {
    format!(
        "{}\n{}",
        point.header(&reply.project, now),
        stages_text(reply, now)
    )
}

/// The state at a point as JSON: `status`'s document with `as_of`.
pub fn at_json(point: &AtPoint, reply: &pb::ListStagesReply) -> Value {
    let mut doc = stages_json(reply);
    doc["as_of"] = point.json();
    doc
}

/// Promotion `now` (as it stands today) as it stood right after
/// `entry`, its last history entry at or before the point asked for:
/// that entry's status and time, the approvals given by then, and the
/// executor's details only if it had ended as it ends today.
pub fn as_it_stood(now: &pb::Promotion, entry: &pb::HistoryEntry) -> pb::Promotion {
    let mut then = now.clone();
    if entry.promotion_status.is_empty() {
        return then;
    }
    then.status = entry.promotion_status.clone();
    then.updated_at = entry.time.clone();
    then.approvals
        .retain(|a| super::format::parse_time(&a.at) <= super::format::parse_time(&entry.time));
    if then.status != now.status {
        then.details.clear();
    }
    then
}

/// One stage at a point, and the promotions that put its freight there
/// (one per warehouse whose freight it ran, the latest last). `then`: the
/// stage's last and queued promotions as they stood at the point.
pub fn at_stage_text(
    point: &AtPoint,
    project: &str,
    stage: &pb::Stage,
    promotions: &[pb::Promotion],
    then: &[pb::Promotion],
    position: u64,
    now: DateTime<Utc>,
) -> String {
    let mut out = format!("stage {} of {}\n", stage.name, point.header(project, now));
    match promotions {
        [] => out.push_str(&stage_text(stage, then, None, position, now)),
        // A promotion's detail ends with the position: once is enough.
        [.., last] => {
            out.push_str(&stage_body(stage, then, None, now));
            out.push_str(match promotions.len() {
                1 => "the promotion that put it there:\n",
                _ => "the promotions that put them there:\n",
            });
            let reflects = format!("reflects position {position}\n");
            for p in promotions {
                let text = detail_text(p, &[], position, now);
                match std::ptr::eq(p, last) {
                    true => out.push_str(&text),
                    false => out.push_str(text.strip_suffix(&reflects).unwrap_or(&text)),
                }
            }
        }
    }
    out
}

/// `at`: the pipeline at a position or a time, or one stage of it.
pub async fn run(svc: &mut Queries, a: AtArgs, output: Output) -> Result<(), Status> {
    reflect(svc, &a.read.project, a.read.min_position).await?;
    let project = a.read.project.clone();
    let reply = svc
        .state_at(pb::StateAtRequest {
            project: a.read.project,
            at: Some(a.at.request()),
        })
        .await?
        .into_inner();
    let mut out = Out::default();
    let Some(name) = &a.stage else {
        match output {
            Output::Text => out.block(&at_text(&a.at, &reply, Utc::now())),
            Output::Json => out.line(&at_json(&a.at, &reply).to_string()),
        }
        return Ok(());
    };
    let stage = reply
        .stages
        .iter()
        .find(|s| &s.name == name)
        .ok_or_else(|| {
            let had: Vec<&str> = reply.stages.iter().map(|s| s.name.as_str()).collect();
            Status::not_found(format!(
                "project {project} had no stage {name:?} then (it had: {})",
                had.join(", ")
            ))
        })?;
    // The promotion that put each freight the stage ran there (one per
    // warehouse), the latest last.
    let mut put: Vec<pb::CurrentFreight> = views(stage)
        .into_iter()
        .filter_map(|v| v.current)
        .filter(|c| !c.promotion.is_empty())
        .collect();
    put.sort_by(|a, b| a.since.cmp(&b.since));
    let mut promotions = Vec::new();
    for c in put {
        let found = svc
            .get_promotion(pb::GetPromotionRequest {
                project: project.clone(),
                promotion_id: c.promotion.clone(),
                min_position: 0,
            })
            .await?
            .into_inner()
            .promotion;
        promotions.extend(found);
    }
    // The stage's last promotion and its queue as they stood then: each
    // one's last history entry up to the point says its status then.
    let mut then = Vec::new();
    let named = std::iter::once(&stage.last_promotion).chain(&stage.queue);
    for id in named.filter(|id| !id.is_empty()) {
        if then.iter().any(|p: &pb::Promotion| &p.id == id) {
            continue;
        }
        let today = svc
            .get_promotion(pb::GetPromotionRequest {
                project: project.clone(),
                promotion_id: id.clone(),
                min_position: 0,
            })
            .await?
            .into_inner()
            .promotion;
        let Some(today) = today else { continue };
        let mut last = svc
            .history(pb::HistoryRequest {
                project: project.clone(),
                promotion: id.clone(),
                from_position: reply.position,
                newest_first: true,
                limit: 1,
                ..Default::default()
            })
            .await?
            .into_inner();
        then.push(match last.message().await? {
            Some(entry) => as_it_stood(&today, &entry),
            None => today,
        });
    }
    match output {
        Output::Text => out.block(&at_stage_text(
            &a.at,
            &project,
            stage,
            &promotions,
            &then,
            reply.position,
            Utc::now(),
        )),
        Output::Json => out.line(
            &json!({
                "project": project,
                "as_of": a.at.json(),
                "stage": stage_json(stage),
                "promotion": promotions.last().map(promotion_json),
                "promotions": promotions.iter().map(promotion_json).collect::<Vec<_>>(),
                "standing_then": then.iter().map(promotion_json).collect::<Vec<_>>(),
                "position": reply.position,
            })
            .to_string(),
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::queries::format::parse_time;
    use crate::client::queries::stages::tests::stage;

    fn now() -> DateTime<Utc> {
        parse_time("2024-05-01T12:00:00Z").expect("valid")
    }

    #[test]
    fn at_points() {
        assert_eq!(AtPoint::parse("1200"), Ok(AtPoint::Position(1200)));
        assert_eq!(
            AtPoint::parse("2024-05-01T14:00:00+02:00"),
            Ok(AtPoint::Time("2024-05-01T12:00:00Z".into()))
        );
        assert_eq!(
            AtPoint::parse("2024-05-01 03:12"),
            Ok(AtPoint::Time("2024-05-01T03:12:00Z".into()))
        );
        assert!(AtPoint::parse("yesterday").is_err());
        assert!(AtPoint::parse("").is_err());
        assert_eq!(
            AtPoint::Position(7).header("shop", now()),
            "project shop as of position 7"
        );
    }

    #[test]
    fn a_promotion_as_it_stood_then() {
        let today = pb::Promotion {
            id: "prm-1".into(),
            status: "Failed".into(),
            details: "crashloop".into(),
            updated_at: "2024-05-01T11:00:00Z".into(),
            approvals: vec![
                pb::Approval {
                    by: "bob".into(),
                    at: "2024-05-01T10:00:00Z".into(),
                    comment: String::new(),
                },
                pb::Approval {
                    by: "carol".into(),
                    at: "2024-05-01T10:30:00Z".into(),
                    comment: String::new(),
                },
            ],
            ..Default::default()
        };
        let entry = pb::HistoryEntry {
            promotion_status: "Requested".into(),
            time: "2024-05-01T10:00:00Z".into(),
            ..Default::default()
        };
        let then = as_it_stood(&today, &entry);
        assert_eq!(then.status, "Requested");
        assert_eq!(then.updated_at, "2024-05-01T10:00:00Z");
        let by: Vec<&str> = then.approvals.iter().map(|a| a.by.as_str()).collect();
        assert_eq!(by, ["bob"]);
        assert_eq!(then.details, "", "the failure came later");
        // Its last entry was the failure: as today.
        let failed = pb::HistoryEntry {
            promotion_status: "Failed".into(),
            time: "2024-05-01T11:00:00Z".into(),
            ..Default::default()
        };
        assert_eq!(as_it_stood(&today, &failed), today);
    }

    #[test]
    fn json_has_the_footer_fields() {
        let reply = pb::ListStagesReply {
            project: "shop".into(),
            stages: vec![stage("test")],
            policy_version: 3,
            closed_now: Vec::new(),
            position: 42,
        };
        let doc = at_json(&AtPoint::Position(40), &reply);
        assert_eq!(doc["position"], 42);
        assert_eq!(doc["policy_version"], 3);
        assert_eq!(doc["as_of"]["position"], 40);
        assert_eq!(doc["stages"][0]["name"], "test");
        assert_eq!(doc["stages"][0]["current"]["since"], "2024-05-01T11:55:00Z");
    }
}
