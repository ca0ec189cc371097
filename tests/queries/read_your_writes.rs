//! Read your own writes and the stages: a reply's position, given as
//! `min_position`, shows its effect; the stage graph and its policy (prod's
//! weekend freeze, listed as closed only when in force); a promotion into
//! dev, its pending check, and the verification that passes it.

use waybill_proto::v1 as pb;

use crate::{current, discover, promote, stages, Commands, Queries};

/// From the applied pipeline to dev verified; returns the first freight and
/// its promotion into dev, which the later phases look back on.
pub(crate) async fn stages_and_checks(
    mut c: Commands,
    mut q: Queries,
    applied: &pb::CommandReply,
) -> (String, pb::CommandReply) {
    // Read your own writes: every reply's position, given as min_position, shows the effect.
    let graph = stages(&mut q, applied.position).await;
    assert_eq!(
        graph
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["dev", "staging", "prod"]
    );
    assert_eq!(graph.stages[2].upstreams, ["staging"]);
    assert_eq!(graph.policy_version, applied.position);
    assert!(graph.position >= applied.position);
    // Only prod has a freeze (weekends in Berlin); the list names it when
    // GetStage's policy says it is in force, and nothing else.
    let prod = q
        .get_stage(pb::GetStageRequest {
            project: "shop".into(),
            stage: "prod".into(),
            min_position: 0,
        })
        .await
        .expect("get stage")
        .into_inner()
        .policy
        .expect("policy");
    assert_eq!(prod.freezes, ["Sat, Sun: weekend freeze"]);
    assert!(["open", "frozen"].contains(&prod.now.as_str()), "{prod:?}");
    let listed: Vec<(&str, &str)> = graph
        .closed_now
        .iter()
        .map(|c| (c.stage.as_str(), c.now.as_str()))
        .collect();
    match prod.now.as_str() {
        "open" => assert!(listed.is_empty(), "{listed:?}"),
        _ => assert_eq!(listed, [("prod", "frozen")]),
    }

    let (f1, _) = discover(&mut c, "1.0").await;
    let p1 = promote(&mut c, "dev", &f1).await;
    assert_eq!(
        current(&stages(&mut q, p1.position).await, "dev"),
        Some(f1.clone())
    );
    let stage = q
        .get_stage(pb::GetStageRequest {
            project: "shop".into(),
            stage: "dev".into(),
            min_position: p1.position,
        })
        .await
        .expect("get stage")
        .into_inner()
        .stage
        .expect("stage");
    assert_eq!(stage.checks[0].check, "integration-tests");
    assert_eq!(stage.checks[0].result, "pending");
    assert!(!stage.verified);

    let v = c
        .record_verification(pb::RecordVerificationRequest {
            project: "shop".into(),
            freight: "v1.0".into(),
            stage: "dev".into(),
            check: "integration-tests".into(),
            passed: true,
            evidence_url: "https://ci.example/1".into(),
            details: "412 tests passed".into(),
            metrics: [("p99_ms".to_string(), 120.0)].into(),
            ..Default::default()
        })
        .await
        .expect("verify")
        .into_inner();
    let stage = q
        .get_stage(pb::GetStageRequest {
            project: "shop".into(),
            stage: "dev".into(),
            min_position: v.position,
        })
        .await
        .expect("get stage")
        .into_inner()
        .stage
        .expect("stage");
    assert!(stage.verified);
    assert_eq!(stage.checks[0].evidence_url, "https://ci.example/1");
    // Its history entry: what the check found is the why, the evidence is
    // where to see it, the metrics are in the summary.
    let entry = q
        .history(pb::HistoryRequest {
            project: "shop".into(),
            from_position: v.position,
            limit: 1,
            min_position: v.position,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .message()
        .await
        .expect("entry")
        .expect("an entry");
    assert_eq!(
        (
            entry.event_type.as_str(),
            entry.reason.as_str(),
            entry.evidence_url.as_str()
        ),
        (
            "VerificationRecorded",
            "412 tests passed",
            "https://ci.example/1"
        )
    );
    assert!(
        entry.summary.ends_with("in dev (p99_ms=120)"),
        "{}",
        entry.summary
    );
    (f1, p1)
}
