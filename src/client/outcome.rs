//! What a command did (its reply), and what it left its promotion at: after
//! `promote`, `approve`, `reject`, `abort` and `rollback` the CLI says where
//! the promotion stands (how many approvals it still needs, or how it
//! ended), so that nobody has to ask with `waybill promotions ID` whether
//! theirs was the last approval. After `record-verification` it says where
//! the freight's verification in the stage stands, and warns when the
//! result counts towards nothing yet (a check the stage does not require,
//! freight that does not run there).

use std::time::Duration;

use serde_json::{json, Value};
use waybill_ledger::domain::{is_id_prefix, PipelineDefinition};
use waybill_proto::v1 as pb;

use super::queries::rpc::Queries;
use super::Output;

/// How long a command waits for the query service to answer what it only
/// adds to the reply: longer than the service's own bounded wait for a
/// position (`MIN_POSITION_WAIT`), so that one that lags but lives answers,
/// while one that accepted the connection and hangs holds nothing up for
/// long. The command itself has succeeded by then.
const ASIDE: Duration = Duration::from_secs(10);

/// `call`, given up after [`ASIDE`].
pub async fn aside<T>(
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(ASIDE, call).await.unwrap_or_else(|_| {
        Err(tonic::Status::deadline_exceeded(format!(
            "the query service did not answer within {} s",
            ASIDE.as_secs()
        )))
    })
}

/// Waits (bounded) until the read models reflect `position`, so that the
/// next query shows the command's effect; gives up quietly when the query
/// service cannot say (it runs elsewhere, is down, lags or hangs).
pub async fn settle(queries: &mut Queries, project: &str, position: u64) {
    let _ = aside(super::queries::stages::reflect(queries, project, position)).await;
}

/// One line on promotion `id` as the read models reflect `position` (the
/// command's event); `None` when the query service does not know it, or the
/// status it answered (it runs elsewhere, is down, or is behind by more than
/// its wait), or `DEADLINE_EXCEEDED` when it did not answer in time.
pub async fn describe(
    queries: &mut Queries,
    project: &str,
    id: &str,
    position: u64,
) -> Result<Option<String>, tonic::Status> {
    let p = aside(queries.get_promotion(pb::GetPromotionRequest {
        project: project.to_string(),
        promotion_id: id.to_string(),
        min_position: position,
    }))
    .await?
    .into_inner()
    .promotion;
    Ok(p.as_ref().map(line))
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
    let freight = match p.freight_alias.as_str() {
        "" => p.freight.get(..12).unwrap_or(&p.freight),
        alias => alias,
    };
    format!(
        "promotion {} of {freight} into {} is {}{approvals}{details}",
        p.id, p.stage, p.status
    )
}

/// The reply to `record-verification`, and where verification in `stage`
/// stands after its result of `check` for `freight` (its id or alias): as
/// text, one line on standard output when the freight runs there, and a
/// note on standard error when the stage does not require the check or the
/// freight does not run there (the result is kept, and counts once it
/// does); as JSON, the reply with a `verification` object. Only the reply
/// when the query service cannot say.
pub async fn verification(
    queries: &mut Queries,
    output: Output,
    what: &str,
    reply: &pb::CommandReply,
    stage: &str,
    freight: &str,
    check: &str,
) {
    let s = aside(queries.get_stage(pb::GetStageRequest {
        project: reply.project.clone(),
        stage: stage.to_string(),
        min_position: reply.position,
    }))
    .await
    .ok()
    .and_then(|r| r.into_inner().stage);
    match output {
        Output::Json => {
            let mut doc = reply_json(reply);
            doc["verification"] = s.map_or(Value::Null, |s| {
                verification_json(&view_of(&s, freight), freight, check)
            });
            outln!("{doc}");
        }
        Output::Text => {
            print_reply(output, what, reply);
            for line in s
                .map(|s| verification_lines(&s, freight, check))
                .unwrap_or_default()
            {
                match line {
                    Said::Out(l) => outln!("{l}"),
                    Said::Note(l) => eprintln!("note: {l}"),
                }
            }
        }
    }
}

/// The stage `s` as it runs `freight`'s warehouse (see
/// [`stages::views`](super::queries::stages::views)): the view whose freight
/// is `freight`, else the stage as a whole.
fn view_of(s: &pb::Stage, freight: &str) -> pb::Stage {
    super::queries::stages::views(s)
        .into_iter()
        .find(|v| v.current.as_ref().is_some_and(|c| names(c, freight)))
        .unwrap_or_else(|| s.clone())
}

/// Where verification in the stage `s` stands for `freight`, as JSON.
fn verification_json(s: &pb::Stage, freight: &str, check: &str) -> Value {
    let runs_there = s
        .current
        .as_ref()
        .is_some_and(|c| !c.freight.is_empty() && names(c, freight));
    json!({
        "stage": s.name,
        "check_required": s.checks.iter().any(|c| c.check == check),
        "runs_there": runs_there,
        "verified": runs_there && s.verified,
        "checks": s.checks.iter().map(|c| json!({
            "check": c.check,
            "result": c.result,
        })).collect::<Vec<_>>(),
    })
}

/// A line for standard output, or a note for standard error.
#[derive(Debug, PartialEq)]
enum Said {
    Out(String),
    Note(String),
}

/// What to say after a verification of `freight` in stage `whole`.
fn verification_lines(whole: &pb::Stage, freight: &str, check: &str) -> Vec<Said> {
    let s = &view_of(whole, freight);
    let mut said = Vec::new();
    let required: Vec<&str> = s.checks.iter().map(|c| c.check.as_str()).collect();
    if !required.contains(&check) {
        let requires = if required.is_empty() {
            "no checks".to_string()
        } else {
            required.join(", ")
        };
        said.push(Said::Note(format!(
            "stage {} does not require check {check} (it requires {requires}): the result \
             is kept as evidence, for gates that read it, and counts towards no \
             verification in {}",
            s.name, s.name
        )));
    }
    let current = s.current.as_ref().filter(|c| !c.freight.is_empty());
    match current {
        Some(c) if names(c, freight) => {
            said.push(Said::Out(format!(
                "freight {} in {}, verified: {}",
                name(c),
                s.name,
                super::queries::stages::verified(s)
            )));
        }
        // Not required: the note above says all there is to say.
        _ if !required.contains(&check) => {}
        _ => said.push(Said::Note(format!(
            "freight {freight} does not run in {} ({}): the result is kept, and counts \
             towards its verification there once it runs there",
            s.name,
            runs(whole)
        ))),
    }
    said
}

/// What stage `s` runs, as "it runs v1" or "it runs v1, c7" ("nothing
/// does" when it runs nothing).
fn runs(s: &pb::Stage) -> String {
    let names: Vec<String> = super::queries::stages::views(s)
        .iter()
        .filter_map(|v| v.current.as_ref().filter(|c| !c.freight.is_empty()))
        .map(|c| name(c).to_string())
        .collect();
    match names.is_empty() {
        true => "nothing does".to_string(),
        false => format!("it runs {}", names.join(", ")),
    }
}

/// Whether `reference` (an id, the start of one, or an alias) names `c`.
fn names(c: &pb::CurrentFreight, reference: &str) -> bool {
    c.freight == reference
        || (!c.alias.is_empty() && c.alias == reference)
        || (is_id_prefix(reference) && c.freight.starts_with(reference))
}

/// A current freight's alias, or the start of its id.
fn name(c: &pb::CurrentFreight) -> &str {
    if c.alias.is_empty() {
        &c.freight[..c.freight.len().min(12)]
    } else {
        &c.alias
    }
}

/// The reply to a command: what it did, the event and its position.
pub fn print_reply(output: Output, what: &str, r: &pb::CommandReply) {
    match output {
        Output::Json => outln!("{}", reply_json(r)),
        Output::Text if r.validated_only => outln!(
            "dry run: would be accepted: project {}, freight {} (decided as the log stood at \
             position {}; nothing appended)",
            r.project,
            r.freight_id,
            r.position
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
            outln!("{line}");
        }
    }
}

/// The reply to `apply --dry-run` (accepted, or the pipeline in force
/// already), and what `definition` changes against the pipeline in force
/// as the reply's position saw it. An error when the query service cannot
/// say what is in force (after the verdict, in text).
pub async fn plan(
    queries: &mut Queries,
    output: Output,
    reply: &pb::CommandReply,
    definition: &PipelineDefinition,
) -> Result<(), tonic::Status> {
    if output == Output::Text {
        let verdict = match reply.already_done {
            true => "no change: it is the pipeline in force",
            false => "would be accepted",
        };
        outln!(
            "dry run: {verdict}: project {} (decided as the log stood at position {}; \
             nothing appended)",
            reply.project,
            reply.position
        );
    }
    let changes = aside(super::queries::pipeline::Changes::against_in_force(
        queries,
        &reply.project,
        reply.position,
        definition,
    ))
    .await?;
    match output {
        Output::Json => {
            let mut doc = reply_json(reply);
            doc["in_force_version"] = json!(changes.version);
            doc["changes"] = json!(changes.lines);
            doc["effects"] = json!(reply.effects);
            outln!("{doc}");
        }
        Output::Text => {
            print!("{}", changes.text());
            if !reply.effects.is_empty() {
                outln!("promotions under way it would move on:");
                for e in &reply.effects {
                    outln!("  {e}");
                }
            }
        }
    }
    Ok(())
}

/// The reply as JSON.
pub fn reply_json(r: &pb::CommandReply) -> Value {
    json!({
        "project": r.project, "event_id": r.event_id, "position": r.position,
        "already_done": r.already_done, "freight_id": r.freight_id,
        "promotion_id": r.promotion_id, "validated_only": r.validated_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promotion(status: &str, approvers: &[&str], need: u32, details: &str) -> pb::Promotion {
        pb::Promotion {
            approvals_required: need,
            id: "prm-1".into(),
            stage: "prod".into(),
            freight: "4b027fcf6cd1904738d2f131f0cef60030d2ff75".into(),
            freight_alias: "v1".into(),
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
            "promotion prm-1 of v1 into prod is Requested, 1 of 2 approvals (bob)"
        );
        assert_eq!(
            line(&promotion("Requested", &[], 2, "")),
            "promotion prm-1 of v1 into prod is Requested, 0 of 2 approvals"
        );
        assert_eq!(
            line(&promotion(
                "Succeeded",
                &["bob", "carol"],
                0,
                "record-only stage: completed at authorization"
            )),
            "promotion prm-1 of v1 into prod is Succeeded, approved by bob, carol: record-only stage: \
             completed at authorization"
        );
        let unnamed = pb::Promotion {
            freight_alias: String::new(),
            ..promotion("Running", &[], 0, "")
        };
        assert_eq!(
            line(&unnamed),
            "promotion prm-1 of 4b027fcf6cd1 into prod is Running"
        );
    }

    fn stage(current: Option<(&str, &str)>, checks: &[(&str, &str)], verified: bool) -> pb::Stage {
        pb::Stage {
            name: "dev".into(),
            current: current.map(|(freight, alias)| pb::CurrentFreight {
                freight: freight.into(),
                alias: alias.into(),
                ..Default::default()
            }),
            checks: checks
                .iter()
                .map(|(check, result)| pb::CheckStatus {
                    check: check.to_string(),
                    result: result.to_string(),
                    ..Default::default()
                })
                .collect(),
            verified,
            ..Default::default()
        }
    }

    #[test]
    fn a_verification_says_where_the_stage_stands_or_why_it_counts_for_nothing_yet() {
        let id = "4b027fcf6cd1904738d2f131f0cef60030d2ff75";
        let running = stage(
            Some((id, "v1")),
            &[("e2e", "passed"), ("smoke", "pending")],
            false,
        );
        assert_eq!(
            verification_lines(&running, "v1", "e2e"),
            [Said::Out(
                "freight v1 in dev, verified: pending (1/2, waiting: smoke)".into()
            )]
        );
        let done = stage(Some((id, "")), &[("e2e", "passed")], true);
        assert_eq!(
            verification_lines(&done, &id[..12], "e2e"),
            [Said::Out(
                "freight 4b027fcf6cd1 in dev, verified: yes (1/1)".into()
            )]
        );
        let said = verification_lines(&running, "v2", "smoke");
        assert!(
            matches!(&said[..], [Said::Note(a)]
                if a.contains("freight v2 does not run in dev (it runs v1)")),
            "{said:?}"
        );
        let said = verification_lines(&running, "v2", "smok");
        assert!(
            matches!(&said[..], [Said::Note(a)]
                if a.contains("does not require check smok (it requires e2e, smoke)")),
            "{said:?}"
        );
        let empty = stage(None, &[("e2e", "pending")], false);
        let said = verification_lines(&empty, "v2", "e2e");
        assert!(
            matches!(&said[..], [Said::Note(a)] if a.contains("(nothing does)")),
            "{said:?}"
        );
        let said = verification_lines(&stage(None, &[], false), "v2", "e2e");
        assert!(
            matches!(&said[..], [Said::Note(a)] if a.contains("(it requires no checks)")),
            "{said:?}"
        );
    }

    #[test]
    fn a_verification_in_a_stage_of_several_warehouses_speaks_of_its_freight() {
        let image = stage(Some(("a1a1a1a1a1a1", "v1")), &[("e2e", "passed")], true);
        let config = stage(Some(("c7c7c7c7c7c7", "c7")), &[("e2e", "failed")], false);
        let mut dev = config.clone();
        dev.runs = [("images", &image), ("config", &config)]
            .into_iter()
            .map(|(warehouse, v)| pb::StageFreight {
                warehouse: warehouse.into(),
                current: v.current.clone(),
                checks: v.checks.clone(),
                verified: v.verified,
                held: false,
            })
            .collect();
        assert_eq!(
            verification_lines(&dev, "v1", "e2e"),
            [Said::Out("freight v1 in dev, verified: yes (1/1)".into())]
        );
        assert_eq!(
            verification_lines(&dev, "c7", "e2e"),
            [Said::Out(
                "freight c7 in dev, verified: no (failed: e2e)".into()
            )]
        );
        let said = verification_lines(&dev, "v2", "e2e");
        assert!(
            matches!(&said[..], [Said::Note(a)] if a.contains("(it runs v1, c7)")),
            "{said:?}"
        );
    }

    #[test]
    fn a_verification_as_json_says_whether_it_counts() {
        let id = "4b027fcf6cd1904738d2f131f0cef60030d2ff75";
        let done = stage(Some((id, "v1")), &[("e2e", "passed")], true);
        let v = verification_json(&done, "v1", "e2e");
        assert_eq!(
            (&v["runs_there"], &v["verified"], &v["check_required"]),
            (&json!(true), &json!(true), &json!(true)),
            "{v}"
        );
        assert_eq!(v["checks"][0]["result"], "passed");
        let v = verification_json(&done, "v2", "smoke");
        assert_eq!(
            (&v["runs_there"], &v["verified"], &v["check_required"]),
            (&json!(false), &json!(false), &json!(false)),
            "{v}"
        );
    }
}
