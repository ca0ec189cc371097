//! `promotions`: the promotions of a project, page by page or all of them, or
//! one promotion in detail with each approval and its history.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tonic::Status;
use waybill_proto::v1 as pb;

use super::command::{PendingArgs, PromotionsArgs};
use super::format::{freight_label, when, Table};
use super::history::{entry_json, entry_line};
use super::pages;
use super::rpc::{Out, Queries};
use crate::client::Output;
use waybill_ledger::domain::PromotionStatus;

/// Checks a `--status` value, in any case; returns the server's spelling.
pub fn status_arg(s: &str) -> Result<String, String> {
    PromotionStatus::parse(s)
        .map(|known| known.name().to_string())
        .ok_or_else(|| {
            let names: Vec<&str> = PromotionStatus::ALL.iter().map(|k| k.name()).collect();
            format!("{s:?} is not one of {}", names.join(", "))
        })
}

/// The promotions table.
pub fn list_text(promotions: &[pb::Promotion], now: DateTime<Utc>) -> String {
    let mut table = Table::new(&[
        "ID",
        "STAGE",
        "FREIGHT",
        "STATUS",
        "REQUESTED BY",
        "REQUESTED",
        "APPROVALS",
        "TICKET",
        "POLICY",
        "BYPASS",
    ]);
    for p in promotions {
        table.row(vec![
            p.id.clone(),
            p.stage.clone(),
            freight_label(&p.freight, &p.freight_alias),
            p.status.clone(),
            p.requested_by.clone(),
            when(&p.requested_at, now),
            approvals(p),
            p.ticket.clone(),
            p.policy_version.to_string(),
            if p.bypass { "BYPASS" } else { "" }.to_string(),
        ]);
    }
    if table.is_empty() {
        "no promotions\n".to_string()
    } else {
        table.render()
    }
}

/// The footer of a list: how many, the position, and how to go on.
pub fn footer(count: usize, position: u64, next_page_token: &str) -> String {
    let mut s = format!(
        "{count} promotion{}, reflects position {position}",
        if count == 1 { "" } else { "s" }
    );
    if !next_page_token.is_empty() {
        s.push_str(&format!(
            "; more with --page-token {next_page_token} (or --all)"
        ));
    }
    s
}

/// One promotion in detail, with `events`, its history.
pub fn detail_text(
    p: &pb::Promotion,
    events: &[pb::HistoryEntry],
    position: u64,
    now: DateTime<Utc>,
) -> String {
    let mut out = format!("promotion {}  {}\n", p.id, p.status);
    let mut field = |name: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("  {:<16}{value}\n", format!("{name}:")));
        }
    };
    if p.bypass {
        let why = if p.bypass_reason.is_empty() {
            String::new()
        } else {
            format!(": {}", p.bypass_reason)
        };
        field(
            "BYPASS",
            format!("freight approved for the stage by an emergency bypass{why}"),
        );
    }
    field("stage", p.stage.clone());
    field(
        "freight",
        match p.freight_alias.as_str() {
            "" => p.freight.clone(),
            alias => format!("{} ({alias})", p.freight),
        },
    );
    for a in &p.freight_artifacts {
        field(
            "artifact",
            format!(
                "{} {}",
                super::freight::kind(a),
                super::freight::artifact(a)
            ),
        );
    }
    field("requested by", p.requested_by.clone());
    field("requested", when(&p.requested_at, now));
    if p.requested_position > 0 {
        field("at position", p.requested_position.to_string());
    }
    field("policy version", p.policy_version.to_string());
    field("ticket", p.ticket.clone());
    field("reason", p.reason.clone());
    field("details", p.details.clone());
    if !p.updated_at.is_empty() {
        field("updated", when(&p.updated_at, now));
    }
    if p.approvals.is_empty() {
        let none = match p.approvals_required {
            0 => "none".to_string(),
            need => format!("0/{need}"),
        };
        out.push_str(&format!("  approvals: {none}\n"));
    } else {
        out.push_str(&format!("  approvals ({}):\n", approvals(p)));
        let mut table = Table::new(&["BY", "AT", "COMMENT"]);
        for a in &p.approvals {
            table.row(vec![a.by.clone(), when(&a.at, now), a.comment.clone()]);
        }
        for line in table.render().lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    if !events.is_empty() {
        out.push_str("  history:\n");
        for e in events {
            out.push_str(&format!("  {}\n", entry_line(e, false)));
        }
    }
    out.push_str(&format!("reflects position {position}\n"));
    out
}

/// Its approvals, and while it waits for them how many it needs: `1/2`.
fn approvals(p: &pb::Promotion) -> String {
    match p.approvals_required {
        0 => p.approvals.len().to_string(),
        need => format!("{}/{need}", p.approvals.len()),
    }
}

/// A promotion as JSON.
pub fn promotion_json(p: &pb::Promotion) -> Value {
    json!({
        "id": p.id,
        "stage": p.stage,
        "freight": p.freight,
        "freight_alias": p.freight_alias,
        "requested_by": p.requested_by,
        "requested_at": p.requested_at,
        "requested_position": p.requested_position,
        "ticket": p.ticket,
        "reason": p.reason,
        "approvals_required": p.approvals_required,
        "approvals": p.approvals.iter().map(|a| json!({
            "by": a.by,
            "at": a.at,
            "comment": a.comment,
        })).collect::<Vec<_>>(),
        "status": p.status,
        "policy_version": p.policy_version,
        "details": p.details,
        "updated_at": p.updated_at,
        "bypass": p.bypass,
        "bypass_reason": p.bypass_reason,
        "freight_artifacts": p.freight_artifacts.iter().map(super::freight::artifact_json)
            .collect::<Vec<_>>(),
    })
}

/// The events of promotion `id`, oldest first, as of `position`.
async fn lifecycle(
    svc: &mut Queries,
    project: &str,
    id: &str,
    position: u64,
) -> Result<Vec<pb::HistoryEntry>, Status> {
    let mut stream = svc
        .history(pb::HistoryRequest {
            project: project.to_string(),
            promotion: id.to_string(),
            min_position: position,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(e) = stream.message().await? {
        if e.position > position {
            break;
        }
        // (A server older than the filter would send the whole project's.)
        if e.promotion == id {
            events.push(e);
        }
    }
    Ok(events)
}

/// `promotions`: one in detail, or a page, or every page.
pub async fn run(svc: &mut Queries, a: PromotionsArgs, output: Output) -> Result<(), Status> {
    let mut out = Out::default();
    if let Some(id) = a.promotion {
        let project = a.read.project.clone();
        let reply = svc
            .get_promotion(pb::GetPromotionRequest {
                project: a.read.project,
                promotion_id: id,
                min_position: a.read.min_position,
            })
            .await?
            .into_inner();
        let p = reply
            .promotion
            .ok_or_else(|| Status::internal("the server sent no promotion"))?;
        let events = lifecycle(svc, &project, &p.id, reply.position).await?;
        match output {
            Output::Text => out.block(&detail_text(&p, &events, reply.position, Utc::now())),
            Output::Json => out.line(
                &json!({
                    "promotion": promotion_json(&p),
                    "history": events.iter().map(entry_json).collect::<Vec<_>>(),
                    "position": reply.position,
                })
                .to_string(),
            ),
        }
        return Ok(());
    }
    let req = pb::ListPromotionsRequest {
        project: a.read.project,
        stage: a.stage.unwrap_or_default(),
        status: a.status.unwrap_or_default(),
        freight: a.freight.unwrap_or_default(),
        page_size: a.page.page_size,
        page_token: String::new(),
        newest_first: !a.oldest_first,
        min_position: a.read.min_position,
    };
    let (all, position, next) = pages::walk(req, &a.page, async |req| {
        let reply = svc.list_promotions(req).await?.into_inner();
        Ok((reply.promotions, reply.position, reply.next_page_token))
    })
    .await?;
    match output {
        Output::Text => {
            out.block(&list_text(&all, Utc::now()));
            out.line(&footer(all.len(), position, &next));
        }
        Output::Json => out.line(
            &json!({
                "promotions": all.iter().map(promotion_json).collect::<Vec<_>>(),
                "next_page_token": next,
                "position": position,
            })
            .to_string(),
        ),
    }
    Ok(())
}

/// `waybill pending`: the promotions waiting for the caller's approval.
pub async fn pending(svc: &mut Queries, a: PendingArgs, output: Output) -> Result<(), Status> {
    let mut out = Out::default();
    let reply = svc
        .pending_approvals(pb::PendingApprovalsRequest {
            project: a.project.unwrap_or_default(),
            min_position: a.min_position,
        })
        .await?
        .into_inner();
    match output {
        Output::Text => {
            if reply.promotions.is_empty() {
                out.line(&format!(
                    "nothing waits for your approval (reflects position {})",
                    reply.position
                ));
            } else {
                out.block(&list_text(&reply.promotions, Utc::now()));
                out.line(&footer(reply.promotions.len(), reply.position, ""));
            }
        }
        Output::Json => out.line(
            &json!({
                "promotions": reply.promotions.iter().map(promotion_json).collect::<Vec<_>>(),
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

    fn now() -> DateTime<Utc> {
        parse_time("2024-05-01T12:00:00Z").expect("valid")
    }

    fn promotion() -> pb::Promotion {
        pb::Promotion {
            id: "prm-0123456789abcdef".into(),
            stage: "prod".into(),
            freight: "0123456789abcdef0123456789abcdef01234567".into(),
            requested_by: "alice".into(),
            requested_at: "2024-05-01T11:50:00Z".into(),
            ticket: "OPS-1".into(),
            approvals: vec![pb::Approval {
                by: "bob".into(),
                at: "2024-05-01T11:55:00Z".into(),
                comment: "lgtm".into(),
            }],
            status: "Authorized".into(),
            policy_version: 3,
            requested_position: 40,
            ..Default::default()
        }
    }

    #[test]
    fn statuses_in_any_case() {
        assert_eq!(status_arg("succeeded").as_deref(), Ok("Succeeded"));
        assert!(status_arg("done").is_err());
    }

    #[test]
    fn table() {
        assert_eq!(
            list_text(&[promotion()], now()),
            "ID                    STAGE  FREIGHT       STATUS      REQUESTED BY  \
             REQUESTED                       APPROVALS  TICKET  POLICY  BYPASS\n\
             prm-0123456789abcdef  prod   0123456789ab  Authorized  alice         \
             10m ago (2024-05-01 11:50:00Z)  1          OPS-1   3       -\n"
        );
        assert_eq!(list_text(&[], now()), "no promotions\n");
        // Freight with an alias goes by it, as in `status`.
        let mut aliased = promotion();
        aliased.freight_alias = "v1.4.2".into();
        assert!(
            list_text(&[aliased.clone()], now()).contains("  prod   v1.4.2   "),
            "{}",
            list_text(&[aliased.clone()], now())
        );
        assert!(detail_text(&aliased, &[], 41, now())
            .contains("freight:        0123456789abcdef0123456789abcdef01234567 (v1.4.2)\n"));
        let mut waiting = promotion();
        waiting.status = "Requested".into();
        waiting.approvals_required = 2;
        assert!(list_text(&[waiting.clone()], now()).contains("  1/2  "));
        let detail = detail_text(&waiting, &[], 41, now());
        assert!(detail.contains("  approvals (1/2):\n"), "{detail}");
        waiting.approvals.clear();
        let detail = detail_text(&waiting, &[], 41, now());
        assert!(detail.contains("  approvals: 0/2\n"), "{detail}");
    }

    #[test]
    fn footer_says_how_to_go_on() {
        assert_eq!(footer(1, 9, ""), "1 promotion, reflects position 9");
        assert_eq!(
            footer(2, 9, "abc"),
            "2 promotions, reflects position 9; more with --page-token abc (or --all)"
        );
    }

    #[test]
    fn detail_lists_approvals_bypass_and_history() {
        let mut p = promotion();
        p.bypass = true;
        p.bypass_reason = "outage".into();
        let approved = pb::HistoryEntry {
            position: 40,
            event_type: "PromotionApproved".into(),
            time: "2024-05-01T11:55:00Z".into(),
            actor: "bob".into(),
            promotion: p.id.clone(),
            summary: "promotion approved".into(),
            reason: "lgtm".into(),
            ..Default::default()
        };
        p.freight_artifacts = vec![pb::Artifact {
            kind: pb::artifact::Kind::Image as i32,
            name: "ghcr.io/acme/shop".into(),
            version: "1.4.2".into(),
            digest: "sha256:abc".into(),
        }];
        let text = detail_text(&p, &[approved], 41, now());
        assert!(
            text.contains("  artifact:       image ghcr.io/acme/shop:1.4.2@sha256:abc\n"),
            "{text}"
        );
        assert_eq!(
            promotion_json(&p)["freight_artifacts"][0]["ref"],
            "ghcr.io/acme/shop:1.4.2@sha256:abc"
        );
        assert!(
            text.contains(
                "  history:\n       40         2024-05-01 11:55:00Z  bob                 \
                 PromotionApproved     promotion approved  [reason: lgtm]\n"
            ),
            "{text}"
        );
        assert!(
            text.starts_with("promotion prm-0123456789abcdef  Authorized\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  BYPASS:         freight approved for the stage by an emergency bypass: outage\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("    bob  5m ago (2024-05-01 11:55:00Z)  lgtm\n"),
            "{text}"
        );
        assert!(text.ends_with("reflects position 41\n"), "{text}");
    }
}
