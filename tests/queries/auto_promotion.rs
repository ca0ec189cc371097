//! `GetStage` says what auto-promotion does for a stage now, and if
//! nothing, why: the reactor's own judgement (`auto_standing`), so "why has
//! staging not taken my freight?" has an answer; and `GetFreight` whether
//! the freight is verified in each stage now.

use waybill_proto::v1 as pb;

use crate::common::{self, Served};
use crate::{discover, promote, Commands, Queries};

async fn standing(q: &mut Queries, stage: &str, min: u64) -> String {
    q.get_stage(pb::GetStageRequest {
        project: "shop".into(),
        stage: stage.into(),
        min_position: min,
    })
    .await
    .expect("get stage")
    .into_inner()
    .policy
    .expect("policy")
    .auto_promotion
}

async fn apply(c: &mut Commands, yaml: String) {
    c.apply_pipeline(pb::ApplyPipelineRequest {
        yaml,
        source_uri: "pipeline.yaml".into(),
        ..Default::default()
    })
    .await
    .expect("apply");
}

async fn verify(c: &mut Commands, freight: &str, p99: f64) -> u64 {
    c.record_verification(pb::RecordVerificationRequest {
        project: "shop".into(),
        freight: freight.into(),
        stage: "dev".into(),
        check: "integration-tests".into(),
        passed: true,
        metrics: [("p99_ms".to_string(), p99)].into(),
        ..Default::default()
    })
    .await
    .expect("verify")
    .into_inner()
    .position
}

/// The example pipeline with a metric gate on staging besides its check.
fn gated_example() -> String {
    let example = std::fs::read_to_string(common::EXAMPLE_PIPELINE).expect("example");
    let gated = example.replacen(
        "        - check: integration-tests\n",
        "        - check: integration-tests\n        - metric: p99_ms\n          max: 250\n",
        1,
    );
    assert_ne!(gated, example, "the example's staging gate moved");
    gated
}

/// Each standing in turn on the gated example, and the freight view's
/// verified-now column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_says_what_auto_promotion_waits_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No reactors: the standing stays as the log leaves it.
    let served = Served::insecure_dev(&dir.path().join("data"));
    let channel = served.channel().await;
    let (mut c, mut q) = (Commands::new(channel.clone()), Queries::new(channel));
    let gated = gated_example();
    apply(&mut c, gated.clone()).await;
    let (freight, found) = discover(&mut c, "1.0.0").await;
    assert_eq!(
        standing(&mut q, "dev", found).await,
        "due: promoting v1.0.0"
    );
    let p = promote(&mut c, "dev", &freight).await.position;
    assert_eq!(standing(&mut q, "dev", p).await, "done: v1.0.0 runs here");
    assert_eq!(
        standing(&mut q, "staging", p).await,
        "waiting: no freight is available to the stage: dev runs v1.0.0, which is not: not \
         verified in upstream stage(s) dev"
    );
    assert_eq!(standing(&mut q, "prod", p).await, "", "manual");

    let p = verify(&mut c, &freight, 300.0).await;
    assert_eq!(
        standing(&mut q, "staging", p).await,
        "waiting: v1.0.0 does not pass gate metric p99_ms <= 250 (recorded: 300)"
    );
    let p = verify(&mut c, &freight, 200.0).await;
    assert_eq!(
        standing(&mut q, "staging", p).await,
        "due: promoting v1.0.0"
    );
    let p = promote(&mut c, "staging", &freight).await.position;
    assert_eq!(
        standing(&mut q, "staging", p).await,
        "done: v1.0.0 runs here"
    );

    // The freight view says whether it is verified in each stage now: a
    // later failure in dev stops its soak there (it stays available).
    let p = c
        .record_verification(pb::RecordVerificationRequest {
            project: "shop".into(),
            freight: freight.clone(),
            stage: "dev".into(),
            check: "integration-tests".into(),
            passed: false,
            ..Default::default()
        })
        .await
        .expect("a failing result")
        .into_inner()
        .position;
    assert_eq!(
        verified_now(&mut q, &freight, p).await,
        [
            ("dev".to_string(), "failed: integration-tests".to_string()),
            ("staging".to_string(), "verified".to_string())
        ]
    );
    let (newer, _) = discover(&mut c, "2.0.0").await;
    let p = promote(&mut c, "dev", &newer).await.position;
    assert_eq!(verified_now(&mut q, &freight, p).await[0].1, "left");

    // A rollback holds dev on v1.0.0; the stage names what waits.
    let back = c
        .rollback(pb::RollbackRequest {
            project: "shop".into(),
            stage: "dev".into(),
            ..Default::default()
        })
        .await
        .expect("rollback")
        .into_inner();
    assert_eq!(back.freight_id, freight);
    assert_eq!(
        standing(&mut q, "dev", back.position).await,
        "held by the manual promotion of v1.0.0: v2.0.0 waits (promoting it here releases \
         the hold)"
    );
    let p = promote(&mut c, "dev", &newer).await.position;
    assert_eq!(standing(&mut q, "dev", p).await, "done: v2.0.0 runs here");

    // Auto-promotion asks as anyone does: a freeze on dev holds newer
    // freight back, and the stage says so rather than "due".
    let frozen = gated.replacen(
        "      mode: auto",
        "      freezes: [{from: \"2000-01-01T00:00:00\", to: \"2100-01-01T00:00:00\", \
         reason: code freeze}]\n      mode: auto",
        1,
    );
    apply(&mut c, frozen).await;
    let (_, found) = discover(&mut c, "3.0.0").await;
    assert_eq!(
        standing(&mut q, "dev", found).await,
        "waiting: v3.0.0 is due, but a freeze is in force (code freeze)"
    );
    assert!(served.terminate().success());
}

/// Each stage `freight` was verified in, and whether it is now.
async fn verified_now(q: &mut Queries, freight: &str, min: u64) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = q
        .get_freight(pb::GetFreightRequest {
            project: "shop".into(),
            freight: freight.into(),
            min_position: min,
        })
        .await
        .expect("get freight")
        .into_inner()
        .freight
        .expect("freight")
        .verified_in
        .into_iter()
        .map(|v| (v.stage, v.now))
        .collect();
    v.sort();
    v
}

/// The line looks for the freight auto-promotion would take among the
/// freight the query side keeps out of memory too (it keeps 64 a project):
/// the one a gate holds back runs nowhere, and many were found since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_names_what_it_waits_for_among_many_freight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::insecure_dev(&dir.path().join("data"));
    let channel = served.channel().await;
    let (mut c, mut q) = (Commands::new(channel.clone()), Queries::new(channel));
    apply(&mut c, gated_example()).await;
    let (held_back, _) = discover(&mut c, "1.0.0").await;
    promote(&mut c, "dev", &held_back).await;
    verify(&mut c, &held_back, 300.0).await;
    let (next, _) = discover(&mut c, "1.1.0").await;
    promote(&mut c, "dev", &next).await;
    let mut last = 0;
    for i in 0..80 {
        last = discover(&mut c, &format!("2.0.{i}")).await.1;
    }
    assert_eq!(
        standing(&mut q, "staging", last).await,
        "waiting: v1.0.0 does not pass gate metric p99_ms <= 250 (recorded: 300)"
    );
    assert!(served.terminate().success());
}
