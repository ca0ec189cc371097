//! `projects`: every project the caller may view, with its stages and how
//! far its history goes.

use chrono::{DateTime, Utc};
use serde_json::json;
use tonic::Status;
use waybill_proto::v1 as pb;

use super::command::ProjectsArgs;
use super::format::{when, Table};
use super::rpc::{Out, Queries};
use crate::client::Output;

/// The projects table, then a footer with the position it reflects.
pub fn projects_text(reply: &pb::ListProjectsReply, now: DateTime<Utc>) -> String {
    let mut table = Table::new(&["PROJECT", "STAGES", "EVENTS", "LAST EVENT", "POLICY"]);
    for p in &reply.projects {
        table.row(vec![
            p.project.clone(),
            p.stages.join(" → "),
            p.events.to_string(),
            when(&p.latest_event_time, now),
            p.policy_version.to_string(),
        ]);
    }
    let mut out = if table.is_empty() {
        "no projects you may view (none applied yet, or no viewer role on any)\n".to_string()
    } else {
        table.render()
    };
    let n = reply.projects.len();
    out.push_str(&format!(
        "{n} project{}, reflects position {}\n",
        if n == 1 { "" } else { "s" },
        reply.position
    ));
    out
}

pub async fn run(svc: &mut Queries, a: ProjectsArgs, output: Output) -> Result<(), Status> {
    let reply = svc
        .list_projects(pb::ListProjectsRequest {
            min_position: a.min_position,
        })
        .await?
        .into_inner();
    let mut out = Out::default();
    match output {
        Output::Text => out.block(&projects_text(&reply, Utc::now())),
        Output::Json => {
            let projects: Vec<_> = reply
                .projects
                .iter()
                .map(|p| {
                    json!({
                        "project": p.project,
                        "stages": p.stages,
                        "events": p.events,
                        "last_position": p.last_position,
                        "latest_event_time": p.latest_event_time,
                        "policy_version": p.policy_version,
                    })
                })
                .collect();
            out.line(&json!({ "projects": projects, "position": reply.position }).to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_footer() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let reply = pb::ListProjectsReply {
            projects: vec![pb::ProjectSummary {
                project: "shop".into(),
                stages: vec!["dev".into(), "staging".into(), "prod".into()],
                policy_version: 1,
                events: 42,
                last_position: 97,
                latest_event_time: "2026-11-30T11:00:00Z".into(),
            }],
            position: 100,
        };
        let text = projects_text(&reply, now);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("PROJECT"), "{text}");
        assert!(
            lines[1].contains("shop") && lines[1].contains("dev → staging → prod"),
            "{text}"
        );
        assert!(
            lines[1].contains("42") && lines[1].contains("1h ago"),
            "{text}"
        );
        assert_eq!(lines[2], "1 project, reflects position 100");
        let empty = projects_text(
            &pb::ListProjectsReply {
                projects: vec![],
                position: 3,
            },
            now,
        );
        assert!(empty.starts_with("no projects you may view"), "{empty}");
        assert!(
            empty.ends_with("0 projects, reflects position 3\n"),
            "{empty}"
        );
    }
}
