//! `status`: every stage of a project, or one in detail (`at` shows the
//! same table as it was at a position or a time).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tonic::Status;
use waybill_proto::v1 as pb;

use super::command::StatusArgs;
use super::format::{freight_label, short, when, Table, NONE};
use super::rpc::{Out, Queries};
use crate::client::Output;

/// The stages table, then a footer with the position and policy version.
pub fn stages_text(reply: &pb::ListStagesReply, now: DateTime<Utc>) -> String {
    let mut table = Table::new(&[
        "STAGE", "MODE", "FREIGHT", "SINCE", "VERIFIED", "QUEUE", "HOLD", "RUNNING",
    ]);
    let closed = |name: &str| reply.closed_now.iter().find(|c| c.stage == name);
    for s in &reply.stages {
        let mode = match closed(&s.name) {
            Some(c) => format!("{}, {}", mode(s), c.now),
            None => mode(s),
        };
        // A stage that runs freight of several warehouses has a line for
        // each (the stage's own columns on the first), each freight named
        // with its warehouse when the stage takes several.
        let views = views(s);
        for (i, v) in views.iter().enumerate() {
            let current = v.current.as_ref().filter(|c| !c.freight.is_empty());
            let first = i == 0;
            let label = |c: &pb::CurrentFreight| match takes_several(s) {
                false => freight_label(&c.freight, &c.alias),
                true => format!("{} ({})", freight_label(&c.freight, &c.alias), warehouse(v)),
            };
            let freight = current.map_or_else(String::new, label);
            let since = current.map_or_else(String::new, |c| when(&c.since, now));
            if first {
                table.row(vec![
                    s.name.clone(),
                    mode.clone(),
                    freight,
                    since,
                    verified(v),
                    queue(&s.queue),
                    hold_label(v),
                    s.running.clone(),
                ]);
            } else {
                table.continued(vec![
                    String::new(),
                    String::new(),
                    freight,
                    since,
                    verified(v),
                    String::new(),
                    hold_label(v),
                ]);
            }
        }
    }
    let mut out = if table.is_empty() {
        format!(
            "project {} has no stages (no pipeline applied)\n",
            reply.project
        )
    } else {
        table.render()
    };
    for c in &reply.closed_now {
        out.push_str(&format!("{}\n", super::policy::closed_line(c, now)));
    }
    out.push_str(&format!(
        "project {}: {} stage{}, reflects position {}, policy version {}\n",
        reply.project,
        reply.stages.len(),
        if reply.stages.len() == 1 { "" } else { "s" },
        reply.position,
        reply.policy_version,
    ));
    out
}

/// The stage as it runs each warehouse's freight: one copy of `s` per entry
/// of `runs`, with that freight as `current` (its checks, whether it is
/// verified, its hold) and its warehouse as the only one; `s` itself when
/// it runs no freight, or takes and runs freight of one warehouse (or the
/// server does not say).
pub fn views(s: &pb::Stage) -> Vec<pb::Stage> {
    if s.runs.is_empty() || (s.runs.len() == 1 && !takes_several(s)) {
        return vec![s.clone()];
    }
    s.runs
        .iter()
        .map(|r| pb::Stage {
            current: r.current.clone(),
            checks: r.checks.clone(),
            verified: r.verified,
            hold: match (&r.current, r.held) {
                (Some(c), true) => c.freight.clone(),
                _ => String::new(),
            },
            warehouses: vec![r.warehouse.clone()],
            runs: Vec::new(),
            ..s.clone()
        })
        .collect()
}

/// Whether stage `s` takes freight from several warehouses (so that its
/// freight is named with its warehouse).
fn takes_several(s: &pb::Stage) -> bool {
    s.warehouses.len() > 1
}

/// The warehouse of a view of [`views`] (its only one).
fn warehouse(v: &pb::Stage) -> &str {
    v.warehouses.first().map_or("", String::as_str)
}

/// The freight a manual promotion holds the stage at (see `Stage.hold`),
/// by its alias when it is the current freight, as the FREIGHT column names it;
/// `-` for none.
fn hold_label(s: &pb::Stage) -> String {
    match s.current.as_ref().filter(|c| c.freight == s.hold) {
        Some(c) => freight_label(&c.freight, &c.alias),
        None if s.hold.is_empty() => NONE.to_string(),
        None => short(&s.hold).to_string(),
    }
}

/// `auto`, `gated` or `manual`, and whether the stage only records.
fn mode(s: &pb::Stage) -> String {
    if s.record_only {
        format!("{} (record-only)", s.mode)
    } else {
        s.mode.clone()
    }
}

/// `yes`, `no (failed: smoke)`, `pending (1/2, waiting: e2e)`; `-` without freight.
pub fn verified(s: &pb::Stage) -> String {
    let has_freight = s.current.as_ref().is_some_and(|c| !c.freight.is_empty());
    let total = s.checks.len();
    let passed = s.checks.iter().filter(|c| c.result == "passed").count();
    let names = |result: &str| -> Vec<&str> {
        s.checks
            .iter()
            .filter(|c| c.result == result)
            .map(|c| c.check.as_str())
            .collect()
    };
    if s.verified {
        return if total == 0 {
            "yes".to_string()
        } else {
            format!("yes ({passed}/{total})")
        };
    }
    if !has_freight {
        return NONE.to_string();
    }
    let failed = names("failed");
    if !failed.is_empty() {
        return format!("no (failed: {})", failed.join(", "));
    }
    if total == 0 {
        return "no".to_string();
    }
    let waiting: Vec<&str> = s
        .checks
        .iter()
        .filter(|c| c.result != "passed")
        .map(|c| c.check.as_str())
        .collect();
    if waiting.is_empty() {
        // Every check passed but the stage does not count it yet (soak time).
        format!("pending ({passed}/{total} passed)")
    } else {
        format!(
            "pending ({passed}/{total}, waiting: {})",
            waiting.join(", ")
        )
    }
}

/// `-`, or the count and the first promotion waiting: `2 (next prm-…)`.
pub fn queue(queue: &[String]) -> String {
    match queue.first() {
        None => NONE.to_string(),
        Some(first) => format!("{} (next {first})", queue.len()),
    }
}

/// One stage in detail (`status -p P STAGE`).
pub fn stage_text(
    s: &pb::Stage,
    known: &[pb::Promotion],
    policy: Option<&pb::StagePolicy>,
    position: u64,
    now: DateTime<Utc>,
) -> String {
    let mut out = stage_body(s, known, policy, now);
    out.push_str(&format!("reflects position {position}\n"));
    out
}

/// [`stage_text`] without the position it reflects.
pub fn stage_body(
    s: &pb::Stage,
    known: &[pb::Promotion],
    policy: Option<&pb::StagePolicy>,
    now: DateTime<Utc>,
) -> String {
    let known_as = |id: &str| known.iter().find(|p| p.id == id);
    let mut out = format!("stage {}  {}\n", s.name, mode(s));
    let mut field = |name: &str, value: String| {
        if !value.is_empty() {
            out.push_str(&format!("  {:<15} {value}\n", format!("{name}:")));
        }
    };
    field("upstreams", s.upstreams.join(", "));
    field("warehouses", s.warehouses.join(", "));
    let views = views(s);
    let several = takes_several(s);
    for v in &views {
        match v.current.as_ref().filter(|c| !c.freight.is_empty()) {
            Some(c) => {
                let alias = if c.alias.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.alias)
                };
                let from = if several {
                    format!(", from {}", warehouse(v))
                } else {
                    String::new()
                };
                field("freight", format!("{}{alias}{from}", c.freight));
                field("since", when(&c.since, now));
                field("promotion", c.promotion.clone());
                field("promoted by", c.promoted_by.clone());
            }
            None => field("freight", "none".to_string()),
        }
        field("verified", verified(v));
        if !v.hold.is_empty() {
            field(
                "hold",
                format!(
                    "{} was promoted here by hand: no auto-promotion{} until the freight it would choose is promoted here",
                    hold_label(v),
                    if several {
                        format!(" of freight from {}", warehouse(v))
                    } else {
                        String::new()
                    }
                ),
            );
        }
    }
    field("running", s.running.clone());
    field(
        "last promotion",
        last_promotion(s, known_as(&s.last_promotion), now),
    );
    let policy = policy.map(|p| super::policy::lines(p, now));
    for (name, value) in policy.unwrap_or_default() {
        field(name, value);
    }
    if !s.queue.is_empty() {
        out.push_str(&format!("  queue ({}):\n", s.queue.len()));
        let mut table = Table::new(&[
            "PROMOTION",
            "FREIGHT",
            "STATUS",
            "REQUESTED BY",
            "REQUESTED",
        ]);
        for id in &s.queue {
            table.row(match known_as(id) {
                Some(p) => vec![
                    id.clone(),
                    freight_label(&p.freight, &p.freight_alias),
                    p.status.clone(),
                    p.requested_by.clone(),
                    when(&p.requested_at, now),
                ],
                None => vec![
                    id.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ],
            });
        }
        for line in table.render().lines() {
            out.push_str(&format!("    {}\n", line.trim_end()));
        }
    }
    for v in views.iter().filter(|v| !v.checks.is_empty()) {
        match v
            .current
            .as_ref()
            .filter(|c| several && !c.freight.is_empty())
        {
            Some(c) => out.push_str(&format!(
                "  checks of {}:\n",
                freight_label(&c.freight, &c.alias)
            )),
            None => out.push_str("  checks:\n"),
        }
        let mut table = Table::new(&["CHECK", "RESULT", "AT", "EVIDENCE"]);
        for c in &v.checks {
            table.row(vec![
                c.check.clone(),
                c.result.clone(),
                when(&c.at, now),
                c.evidence_url.clone(),
            ]);
        }
        for line in table.render().lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

/// The stage's last promotion: its id, and how it stands when known
/// (`prm-… Failed 3m ago (2026-…): executor reported failure: …`).
fn last_promotion(s: &pb::Stage, last: Option<&pb::Promotion>, now: DateTime<Utc>) -> String {
    let Some(p) = last.filter(|p| p.id == s.last_promotion) else {
        return s.last_promotion.clone();
    };
    let details = if p.details.is_empty() {
        String::new()
    } else {
        format!(": {}", p.details)
    };
    let freight = if p.freight_alias.is_empty() {
        short(&p.freight)
    } else {
        &p.freight_alias
    };
    format!(
        "{} of {freight} {} {}{details}",
        p.id,
        p.status,
        when(&p.updated_at, now)
    )
}

/// A stage as JSON.
pub fn stage_json(s: &pb::Stage) -> Value {
    json!({
        "name": s.name,
        "mode": s.mode,
        "record_only": s.record_only,
        "upstreams": s.upstreams,
        "warehouses": s.warehouses,
        "current": s.current.as_ref().filter(|c| !c.freight.is_empty()).map(|c| json!({
            "freight": c.freight,
            "alias": c.alias,
            "since": c.since,
            "promotion": c.promotion,
            "promoted_by": c.promoted_by,
        })),
        "checks": s.checks.iter().map(|c| json!({
            "check": c.check,
            "result": c.result,
            "at": c.at,
            "evidence_url": c.evidence_url,
        })).collect::<Vec<_>>(),
        "verified": s.verified,
        "queue": s.queue,
        "running": s.running,
        "hold": s.hold,
        "last_promotion": s.last_promotion,
        "runs": s.runs.iter().map(|r| json!({
            "warehouse": r.warehouse,
            "freight": r.current.as_ref().map(|c| c.freight.as_str()),
            "alias": r.current.as_ref().map(|c| c.alias.as_str()),
            "since": r.current.as_ref().map(|c| c.since.as_str()),
            "promotion": r.current.as_ref().map(|c| c.promotion.as_str()),
            "promoted_by": r.current.as_ref().map(|c| c.promoted_by.as_str()),
            "checks": r.checks.iter().map(|c| json!({
                "check": c.check,
                "result": c.result,
                "at": c.at,
                "evidence_url": c.evidence_url,
            })).collect::<Vec<_>>(),
            "verified": r.verified,
            "held": r.held,
        })).collect::<Vec<_>>(),
    })
}

/// Every stage of a project as JSON.
pub fn stages_json(reply: &pb::ListStagesReply) -> Value {
    json!({
        "project": reply.project,
        "position": reply.position,
        "policy_version": reply.policy_version,
        "stages": reply.stages.iter().map(stage_json).collect::<Vec<_>>(),
        "closed_now": reply.closed_now.iter().map(|c| json!({
            "stage": c.stage,
            "now": c.now,
            "until": c.until,
            "reason": c.reason,
        })).collect::<Vec<_>>(),
    })
}

/// `status`: every stage, or one in detail.
/// How many queued promotions `status -p P STAGE` asks for (in order of
/// request; the rest are shown by id).
const QUEUE_SHOWN: u32 = 20;

pub async fn status(svc: &mut Queries, a: StatusArgs, output: Output) -> Result<(), Status> {
    let mut out = Out::default();
    match a.stage().map(str::to_string) {
        Some(stage) => {
            let project = a.read.project.clone();
            let reply = svc
                .get_stage(pb::GetStageRequest {
                    project: project.clone(),
                    stage,
                    min_position: a.read.min_position,
                })
                .await?
                .into_inner();
            let stage = reply
                .stage
                .ok_or_else(|| Status::internal("the server sent no stage"))?;
            // How the stage's last promotion stands (a failure is news), and
            // what waits in its queue (the stage's authorized promotions).
            let mut known = Vec::new();
            if !stage.last_promotion.is_empty() {
                let p = svc
                    .get_promotion(pb::GetPromotionRequest {
                        project: project.clone(),
                        promotion_id: stage.last_promotion.clone(),
                        min_position: reply.position,
                    })
                    .await?
                    .into_inner()
                    .promotion;
                known.extend(p);
            }
            if !stage.queue.is_empty() {
                let queued = svc
                    .list_promotions(pb::ListPromotionsRequest {
                        project: project.clone(),
                        stage: stage.name.clone(),
                        status: "Authorized".into(),
                        page_size: QUEUE_SHOWN,
                        min_position: reply.position,
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .promotions;
                known.extend(queued);
            }
            let last = known.iter().find(|p| p.id == stage.last_promotion);
            match output {
                Output::Text => out.block(&stage_text(
                    &stage,
                    &known,
                    reply.policy.as_ref(),
                    reply.position,
                    Utc::now(),
                )),
                Output::Json => out.line(
                    &json!({
                        "stage": stage_json(&stage),
                        "last_promotion": last.map(|p| json!({
                            "id": p.id,
                            "freight": p.freight,
                            "freight_alias": p.freight_alias,
                            "status": p.status,
                            "details": p.details,
                            "updated_at": p.updated_at,
                        })),
                        "policy": reply.policy.as_ref().map(super::policy::json),
                        "position": reply.position,
                    })
                    .to_string(),
                ),
            }
        }
        None => {
            let reply = svc
                .list_stages(pb::ListStagesRequest {
                    project: a.read.project,
                    min_position: a.read.min_position,
                })
                .await?
                .into_inner();
            // How far the read models are behind the log (best effort).
            let lag = svc
                .projection_status(pb::ProjectionStatusRequest {})
                .await
                .ok()
                .map(|r| r.into_inner().lag);
            match output {
                Output::Text => {
                    out.block(&stages_text(&reply, Utc::now()));
                    if let Some(lag) = lag.filter(|l| *l > 0) {
                        out.line(&format!("the read models are {lag} events behind the log"));
                    }
                }
                Output::Json => {
                    let mut doc = stages_json(&reply);
                    if let (Some(lag), Some(obj)) = (lag, doc.as_object_mut()) {
                        obj.insert("lag".into(), json!(lag));
                    }
                    out.line(&doc.to_string());
                }
            }
        }
    }
    Ok(())
}

/// `StateAt` and `Watch` take no `min_position`: wait for it with a
/// `ListStages` of the project first.
pub async fn reflect(svc: &mut Queries, project: &str, min_position: u64) -> Result<(), Status> {
    if min_position > 0 {
        svc.list_stages(pb::ListStagesRequest {
            project: project.to_string(),
            min_position,
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::client::queries::format::parse_time;

    fn now() -> DateTime<Utc> {
        parse_time("2024-05-01T12:00:00Z").expect("valid")
    }

    fn check(name: &str, result: &str) -> pb::CheckStatus {
        pb::CheckStatus {
            check: name.into(),
            result: result.into(),
            ..Default::default()
        }
    }

    pub(in crate::client::queries) fn stage(name: &str) -> pb::Stage {
        pb::Stage {
            name: name.into(),
            mode: "auto".into(),
            current: Some(pb::CurrentFreight {
                freight: "0123456789abcdef0123456789abcdef01234567".into(),
                since: "2024-05-01T11:55:00Z".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn verified_column() {
        let mut s = stage("test");
        assert_eq!(verified(&s), "no");
        s.checks = vec![check("smoke", "passed"), check("e2e", "pending")];
        assert_eq!(verified(&s), "pending (1/2, waiting: e2e)");
        s.checks[1].result = "failed".into();
        assert_eq!(verified(&s), "no (failed: e2e)");
        s.checks[1].result = "passed".into();
        assert_eq!(verified(&s), "pending (2/2 passed)");
        s.verified = true;
        assert_eq!(verified(&s), "yes (2/2)");
        s.current = None;
        s.verified = false;
        assert_eq!(verified(&s), "-");
    }

    #[test]
    fn the_queue_says_what_each_promotion_it_knows_is() {
        let mut s = stage("dev");
        s.queue = vec!["prm-1".into(), "prm-2".into()];
        s.last_promotion = "prm-2".into();
        let known = [pb::Promotion {
            id: "prm-2".into(),
            freight: "fedcba9876543210fedcba9876543210fedcba98".into(),
            freight_alias: "v2".into(),
            status: "Authorized".into(),
            requested_by: "svc:auto-promoter".into(),
            requested_at: "2024-05-01T11:58:00Z".into(),
            ..Default::default()
        }];
        let text = stage_body(&s, &known, None, now());
        let queue: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("  queue (2):"))
            .skip(1)
            .take(3)
            .collect();
        assert_eq!(
            queue,
            [
                "    PROMOTION  FREIGHT  STATUS      REQUESTED BY       REQUESTED",
                "    prm-1      -        -           -                  -",
                "    prm-2      v2       Authorized  svc:auto-promoter  2m ago (2024-05-01 11:58:00Z)",
            ],
            "{text}"
        );
        assert!(
            text.contains("last promotion: prm-2 of v2 Authorized"),
            "{text}"
        );
    }

    #[test]
    fn hold_is_named_as_the_freight_column_names_it() {
        let mut s = stage("dev");
        assert_eq!(hold_label(&s), "-");
        assert!(!stage_body(&s, &[], None, now()).contains("hold"));
        s.hold = "0123456789abcdef0123456789abcdef01234567".into();
        assert_eq!(hold_label(&s), "0123456789ab");
        s.current.as_mut().expect("current").alias = "v1.4.2".into();
        assert_eq!(hold_label(&s), "v1.4.2");
        assert!(
            stage_body(&s, &[], None, now()).contains(
                "hold:           v1.4.2 was promoted here by hand: no auto-promotion until"
            ),
            "{}",
            stage_body(&s, &[], None, now())
        );
        s.hold = "fedcba9876543210fedcba9876543210fedcba98".into();
        assert_eq!(hold_label(&s), "fedcba987654");
    }

    #[test]
    fn queue_column() {
        assert_eq!(queue(&[]), "-");
        assert_eq!(
            queue(&["prm-1".to_string(), "prm-2".to_string()]),
            "2 (next prm-1)"
        );
    }

    /// A stage that takes freight from two warehouses names each freight's
    /// warehouse, also while it has received freight of one only.
    #[test]
    fn freight_of_a_stage_of_several_warehouses_is_named_with_its_warehouse() {
        let run = |warehouse: &str, alias: &str| pb::StageFreight {
            warehouse: warehouse.into(),
            current: Some(pb::CurrentFreight {
                alias: alias.into(),
                ..stage("x").current.expect("set")
            }),
            ..Default::default()
        };
        let mut prod = stage("prod");
        prod.warehouses = vec!["images".into(), "config".into()];
        prod.runs = vec![run("config", "c1")];
        prod.current = prod.runs[0].current.clone();
        let mut dev = prod.clone();
        dev.name = "dev".into();
        dev.runs.insert(0, run("images", "v1"));
        let mut qa = stage("qa");
        qa.warehouses = vec!["images".into()];
        qa.runs = vec![run("images", "v1")];
        qa.current = qa.runs[0].current.clone();
        let reply = pb::ListStagesReply {
            project: "shop".into(),
            stages: vec![dev, prod, qa],
            ..Default::default()
        };
        let text = stages_text(&reply, now());
        let header = text.lines().next().expect("a header");
        let column = header.find("FREIGHT").expect("FREIGHT")..header.find("SINCE").expect("SINCE");
        let freight: Vec<&str> = text
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("project "))
            .filter_map(|l| l.get(column.clone()))
            .map(str::trim)
            .collect();
        assert_eq!(
            freight,
            ["v1 (images)", "c1 (config)", "c1 (config)", "v1"],
            "{text}"
        );
    }

    #[test]
    fn status_table_and_footer() {
        let mut prod = stage("prod");
        prod.mode = "gated".into();
        prod.current = None;
        prod.queue = vec!["prm-aaaa".into()];
        let mut test = stage("test");
        test.verified = true;
        test.current.as_mut().expect("set above").alias = "v1.2".into();
        let mut reply = pb::ListStagesReply {
            project: "shop".into(),
            stages: vec![test, prod],
            policy_version: 3,
            closed_now: Vec::new(),
            position: 42,
        };
        assert_eq!(
            stages_text(&reply, now()),
            "STAGE  MODE   FREIGHT  SINCE                          VERIFIED  QUEUE              HOLD  RUNNING\n\
             test   auto   v1.2     5m ago (2024-05-01 11:55:00Z)  yes       -                  -     -\n\
             prod   gated  -        -                              -         1 (next prm-aaaa)  -     -\n\
             project shop: 2 stages, reflects position 42, policy version 3\n"
        );
        // A frozen stage says so in its row and below the table.
        reply.closed_now.push(pb::ClosedStage {
            stage: "prod".into(),
            now: "frozen".into(),
            until: "2024-05-01T14:00:00Z".into(),
            reason: "release freeze".into(),
        });
        let text = stages_text(&reply, now());
        assert!(text.contains("\nprod   gated, frozen  -"), "{text}");
        assert!(
            text.contains("\nprod: frozen until in 2h (2024-05-01 14:00:00Z): release freeze\n"),
            "{text}"
        );
        assert_eq!(stages_json(&reply)["closed_now"][0]["now"], "frozen");
    }
}
