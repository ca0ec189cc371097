//! What a command did (its reply), and what it left its promotion at: after
//! `promote`, `approve`, `reject`, `abort` and `rollback` the CLI says where
//! the promotion stands (how many approvals it still needs, or how it
//! ended), so that nobody has to ask with `waybill promotions ID` whether
//! theirs was the last approval.

use serde_json::json;
use waybill_proto::v1 as pb;

use super::queries::rpc::Queries;
use super::Output;

/// One line on promotion `id` as the read models reflect `position` (the
/// command's event), or `None` when the query service cannot say (it runs
/// elsewhere, or is behind by more than its wait).
pub async fn describe(
    queries: &mut Queries,
    project: &str,
    id: &str,
    position: u64,
) -> Option<String> {
    let p = queries
        .get_promotion(pb::GetPromotionRequest {
            project: project.to_string(),
            promotion_id: id.to_string(),
            min_position: position,
        })
        .await
        .ok()?
        .into_inner()
        .promotion?;
    Some(line(&p))
}

/// The line for `p`.
fn line(p: &pb::Promotion) -> String {
    let by: Vec<&str> = p.approvals.iter().map(|a| a.by.as_str()).collect();
    let need = (p.approvals_required > 0).then_some(p.approvals_required);
    let approvals = match (need, by.is_empty()) {
        (Some(need), true) => format!(", 0 of {need} approvals"),
        (Some(need), false) => format!(", {} of {need} approvals ({})", by.len(), by.join(", ")),
        (None, true) => String::new(),
        (None, false) => format!(", approved by {}", by.join(", ")),
    };
    let details = if p.details.is_empty() {
        String::new()
    } else {
        format!(": {}", p.details)
    };
    format!(
        "promotion {} into {} is {}{approvals}{details}",
        p.id, p.stage, p.status
    )
}

/// The reply to a command: what it did, the event and its position.
pub fn print_reply(output: Output, what: &str, r: &pb::CommandReply) {
    match output {
        Output::Json => println!(
            "{}",
            json!({
                "project": r.project, "event_id": r.event_id, "position": r.position,
                "already_done": r.already_done, "freight_id": r.freight_id,
                "promotion_id": r.promotion_id, "validated_only": r.validated_only,
            })
        ),
        Output::Text if r.validated_only => println!(
            "dry run: would be accepted: project {}, freight {} (decided as the log stood at \
             position {}; nothing appended)",
            r.project, r.freight_id, r.position
        ),
        Output::Text => {
            let mut line = format!("{what}: project {}", r.project);
            if !r.freight_id.is_empty() {
                line.push_str(&format!(", freight {}", r.freight_id));
            }
            if !r.promotion_id.is_empty() {
                line.push_str(&format!(", promotion {}", r.promotion_id));
            }
            line.push_str(&format!(
                " (event {} at position {}",
                r.event_id, r.position
            ));
            if r.already_done {
                line.push_str(", already recorded: nothing new appended");
            }
            line.push(')');
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promotion(status: &str, approvers: &[&str], need: u32, details: &str) -> pb::Promotion {
        pb::Promotion {
            approvals_required: need,
            id: "prm-1".into(),
            stage: "prod".into(),
            status: status.into(),
            details: details.into(),
            approvals: approvers
                .iter()
                .map(|by| pb::Approval {
                    by: by.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_line_says_what_is_still_needed_or_how_it_ended() {
        assert_eq!(
            line(&promotion("Requested", &["bob"], 2, "")),
            "promotion prm-1 into prod is Requested, 1 of 2 approvals (bob)"
        );
        assert_eq!(
            line(&promotion("Requested", &[], 2, "")),
            "promotion prm-1 into prod is Requested, 0 of 2 approvals"
        );
        assert_eq!(
            line(&promotion(
                "Succeeded",
                &["bob", "carol"],
                0,
                "record-only stage: completed at authorization"
            )),
            "promotion prm-1 into prod is Succeeded, approved by bob, carol: record-only stage: \
             completed at authorization"
        );
    }
}
