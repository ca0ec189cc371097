//! `freight`: one freight in detail, or the freight of a project, optionally
//! with whether each is available to a stage.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tonic::Status;
use waybill_proto::v1 as pb;

use super::command::FreightArgs;
use super::format::{duration, short, when, Table, NONE};
use super::pages;
use super::rpc::{Out, Queries};
use crate::client::Output;

/// `image`, `git` or `chart`.
pub fn kind(a: &pb::Artifact) -> &'static str {
    match pb::artifact::Kind::try_from(a.kind) {
        Ok(pb::artifact::Kind::Image) => "image",
        Ok(pb::artifact::Kind::Git) => "git",
        Ok(pb::artifact::Kind::Chart) => "chart",
        Ok(pb::artifact::Kind::Unspecified) | Err(_) => "unknown",
    }
}

/// An artifact as it was given: `repo:tag@digest`, `url@commit`, `name:version`.
pub fn artifact(a: &pb::Artifact) -> String {
    let mut s = a.name.clone();
    if !a.version.is_empty() {
        s.push(':');
        s.push_str(&a.version);
    }
    if !a.digest.is_empty() {
        s.push('@');
        s.push_str(&a.digest);
    }
    s
}

/// An artifact as JSON: its kind, its parts, and the reference they make
/// (`repo:tag@digest`), which a deployment job can use as it is.
pub fn artifact_json(a: &pb::Artifact) -> Value {
    json!({
        "kind": kind(a),
        "name": a.name,
        "version": a.version,
        "digest": a.digest,
        "ref": artifact(a),
    })
}

/// The stages a freight is in now, comma separated.
fn currently_in(f: &pb::Freight) -> String {
    f.currently_in
        .iter()
        .map(|c| c.stage.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The freight table; with `available_for`, an AVAILABLE column.
pub fn list_text(reply: &pb::ListFreightReply, available_for: bool, now: DateTime<Utc>) -> String {
    let mut headers = vec!["ID", "ALIAS", "WAREHOUSE", "DISCOVERED", "IN"];
    if available_for {
        headers.push("AVAILABLE");
    }
    let mut table = Table::new(&headers);
    for f in &reply.freight {
        let mut row = vec![
            short(&f.id).to_string(),
            f.alias.clone(),
            f.warehouse.clone(),
            when(&f.discovered_at, now),
            currently_in(f),
        ];
        if available_for {
            row.push(if f.available {
                "yes".to_string()
            } else if f.unavailable_reason.is_empty() {
                "no".to_string()
            } else {
                format!("no: {}", f.unavailable_reason)
            });
        }
        table.row(row);
    }
    let mut out = if table.is_empty() {
        "no freight\n".to_string()
    } else {
        table.render()
    };
    out.push_str(&format!(
        "{} freight, reflects position {}",
        reply.freight.len(),
        reply.position
    ));
    if !reply.next_page_token.is_empty() {
        out.push_str(&format!(
            "; more with --page-token {} (or --all)",
            reply.next_page_token
        ));
    }
    out.push('\n');
    out
}

/// One freight in detail.
pub fn detail_text(
    f: &pb::Freight,
    promotions: &[pb::Promotion],
    position: u64,
    now: DateTime<Utc>,
) -> String {
    let mut out = format!("freight {}", f.id);
    if !f.alias.is_empty() {
        out.push_str(&format!(" ({})", f.alias));
    }
    out.push('\n');
    out.push_str(&format!("  warehouse:   {}\n", f.warehouse));
    out.push_str(&format!("  discovered:  {}\n", when(&f.discovered_at, now)));
    let section = |out: &mut String, title: &str, table: Table| {
        if table.is_empty() {
            out.push_str(&format!("  {title}: none\n"));
        } else {
            out.push_str(&format!("  {title}:\n"));
            for line in table.render().lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    };
    let mut artifacts = Table::new(&["KIND", "ARTIFACT"]);
    for a in &f.artifacts {
        artifacts.row(vec![kind(a).to_string(), artifact(a)]);
    }
    section(&mut out, "artifacts", artifacts);
    let mut verified = Table::new(&["STAGE", "VERIFIED", "SOAK", "NOW"]);
    for v in &f.verified_in {
        verified.row(vec![
            v.stage.clone(),
            when(&v.at, now),
            duration(v.soak_seconds),
            // Empty from a server older than the field.
            if v.now.is_empty() {
                NONE.to_string()
            } else {
                v.now.clone()
            },
        ]);
    }
    section(&mut out, "verified in", verified);
    let mut approved = Table::new(&["STAGE", "BY", "AT", "BYPASS", "REASON", "TICKET"]);
    for a in &f.approved_for {
        approved.row(vec![
            a.stage.clone(),
            a.by.clone(),
            when(&a.at, now),
            if a.bypass { "BYPASS" } else { "" }.to_string(),
            a.reason.clone(),
            a.ticket.clone(),
        ]);
    }
    section(&mut out, "approved for", approved);
    let mut current = Table::new(&["STAGE", "SINCE"]);
    for c in &f.currently_in {
        current.row(vec![c.stage.clone(), when(&c.since, now)]);
    }
    section(&mut out, "currently in", current);
    let mut promoted = Table::new(&["PROMOTION", "STAGE", "STATUS", "UPDATED", "DETAILS"]);
    for p in promotions {
        promoted.row(vec![
            p.id.clone(),
            p.stage.clone(),
            p.status.clone(),
            when(&p.updated_at, now),
            p.details.clone(),
        ]);
    }
    section(&mut out, "promotions (newest first)", promoted);
    out.push_str(&format!("reflects position {position}\n"));
    out
}

/// A freight as JSON.
pub fn freight_json(f: &pb::Freight) -> Value {
    json!({
        "id": f.id,
        "warehouse": f.warehouse,
        "alias": f.alias,
        "artifacts": f.artifacts.iter().map(artifact_json).collect::<Vec<_>>(),
        "discovered_at": f.discovered_at,
        "verified_in": f.verified_in.iter().map(|v| json!({
            "stage": v.stage,
            "at": v.at,
            "soak_seconds": v.soak_seconds,
            "now": v.now,
        })).collect::<Vec<_>>(),
        "approved_for": f.approved_for.iter().map(|a| json!({
            "stage": a.stage,
            "at": a.at,
            "by": a.by,
            "bypass": a.bypass,
            "reason": a.reason,
            "ticket": a.ticket,
        })).collect::<Vec<_>>(),
        "currently_in": f.currently_in.iter().map(|c| json!({
            "stage": c.stage,
            "since": c.since,
        })).collect::<Vec<_>>(),
        "available": f.available,
        "unavailable_reason": f.unavailable_reason,
    })
}

/// `freight`: one in detail, or the list.
pub async fn run(svc: &mut Queries, a: FreightArgs, output: Output) -> Result<(), Status> {
    let mut out = Out::default();
    match a.freight {
        Some(id) => {
            let project = a.read.project.clone();
            let reply = svc
                .get_freight(pb::GetFreightRequest {
                    project: a.read.project,
                    freight: id,
                    min_position: a.read.min_position,
                })
                .await?
                .into_inner();
            let f = reply
                .freight
                .ok_or_else(|| Status::internal("the server sent no freight"))?;
            // Where it went: its promotions, newest first (one page).
            let promotions = svc
                .list_promotions(pb::ListPromotionsRequest {
                    project: project.clone(),
                    freight: f.id.clone(),
                    newest_first: true,
                    min_position: reply.position,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .promotions;
            match output {
                Output::Text => {
                    out.block(&detail_text(&f, &promotions, reply.position, Utc::now()))
                }
                Output::Json => out.line(
                    &json!({
                        "freight": freight_json(&f),
                        "promotions": promotions.iter().map(super::promotions::promotion_json)
                            .collect::<Vec<_>>(),
                        "position": reply.position,
                    })
                    .to_string(),
                ),
            }
        }
        None => {
            let available_for = a.available_for.unwrap_or_default();
            let req = pb::ListFreightRequest {
                project: a.read.project,
                warehouse: a.warehouse.unwrap_or_default(),
                available_for: available_for.clone(),
                page_size: a.page.page_size,
                page_token: String::new(),
                min_position: a.read.min_position,
            };
            let (freight, position, next_page_token) = pages::walk(req, &a.page, async |req| {
                let reply = svc.list_freight(req).await?.into_inner();
                Ok((reply.freight, reply.position, reply.next_page_token))
            })
            .await?;
            let reply = pb::ListFreightReply {
                freight,
                next_page_token,
                position,
            };
            match output {
                Output::Text => {
                    out.block(&list_text(&reply, !available_for.is_empty(), Utc::now()))
                }
                Output::Json => out.line(
                    &json!({
                        "freight": reply.freight.iter().map(freight_json)
                            .collect::<Vec<_>>(),
                        "next_page_token": reply.next_page_token,
                        "position": reply.position,
                    })
                    .to_string(),
                ),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::queries::format::parse_time;

    fn now() -> DateTime<Utc> {
        parse_time("2024-05-01T12:00:00Z").expect("valid")
    }

    fn freight() -> pb::Freight {
        pb::Freight {
            id: "0123456789abcdef0123456789abcdef01234567".into(),
            warehouse: "main".into(),
            alias: "v1.2".into(),
            artifacts: vec![pb::Artifact {
                kind: pb::artifact::Kind::Image as i32,
                name: "ghcr.io/acme/api".into(),
                version: "1.2".into(),
                digest: "sha256:ab".into(),
            }],
            discovered_at: "2024-05-01T10:00:00Z".into(),
            verified_in: vec![pb::VerifiedIn {
                stage: "test".into(),
                at: "2024-05-01T11:00:00Z".into(),
                soak_seconds: 3_900,
                now: "failed: smoke".into(),
            }],
            approved_for: vec![pb::ApprovedFor {
                stage: "prod".into(),
                at: "2024-05-01T11:30:00Z".into(),
                by: "alice".into(),
                bypass: true,
                reason: "outage".into(),
                ticket: "INC-9".into(),
            }],
            currently_in: vec![pb::CurrentlyIn {
                stage: "test".into(),
                since: "2024-05-01T10:30:00Z".into(),
            }],
            available: false,
            unavailable_reason: "not verified in test".into(),
        }
    }

    #[test]
    fn list_with_availability() {
        let mut reply = pb::ListFreightReply {
            freight: vec![freight()],
            next_page_token: String::new(),
            position: 9,
        };
        assert_eq!(
            list_text(&reply, true, now()),
            "ID            ALIAS  WAREHOUSE  DISCOVERED                     IN    AVAILABLE\n\
             0123456789ab  v1.2   main       2h ago (2024-05-01 10:00:00Z)  test  no: not verified in test\n\
             1 freight, reflects position 9\n"
        );
        reply.next_page_token = "before-00ff".into();
        assert!(list_text(&reply, true, now()).ends_with(
            "1 freight, reflects position 9; more with --page-token before-00ff (or --all)\n"
        ));
    }

    #[test]
    fn detail_shows_soak_and_bypass() {
        let failed = pb::Promotion {
            id: "prm-1".into(),
            stage: "test".into(),
            status: "Failed".into(),
            updated_at: "2024-05-01T11:50:00Z".into(),
            details: "executor reported failure: crashloop".into(),
            ..Default::default()
        };
        let text = detail_text(&freight(), &[failed], 9, now());
        assert!(
            text.contains(
                "prm-1      test   Failed  10m ago (2024-05-01 11:50:00Z)  executor reported failure: crashloop"
            ),
            "{text}"
        );
        let text = detail_text(&freight(), &[], 9, now());
        assert!(text.contains("promotions (newest first): none"), "{text}");
        assert!(text.starts_with("freight 0123456789abcdef0123456789abcdef01234567 (v1.2)\n"));
        assert!(
            text.contains("image  ghcr.io/acme/api:1.2@sha256:ab"),
            "{text}"
        );
        assert!(
            text.contains("test   1h ago (2024-05-01 11:00:00Z)  1h 5m  failed: smoke"),
            "{text}"
        );
        assert!(
            text.contains("prod   alice  30m ago (2024-05-01 11:30:00Z)  BYPASS  outage  INC-9"),
            "{text}"
        );
    }

    #[test]
    fn json_names_the_artifact_kind() {
        let v = freight_json(&freight());
        assert_eq!(v["artifacts"][0]["kind"], "image");
        assert_eq!(v["approved_for"][0]["bypass"], true);
        assert_eq!(v["verified_in"][0]["soak_seconds"], 3_900);
        assert_eq!(v["verified_in"][0]["now"], "failed: smoke");
    }
}
