//! A stage that takes freight from two warehouses runs one freight of each
//! (Kargo's freight collection), over real gRPC with the auto-promoter
//! running, on both backends: auto-promotion brings both into dev, the
//! config freight does not push the image out, each is verified on its own
//! and goes downstream on its own, `ListStages` and `StateAt` show what ran
//! by warehouse, and a rollback names the warehouse it rolls back.

use std::time::Duration;

use waybill_ledger::testing::NatsServer;
use waybill_proto::v1 as pb;

use crate::common::{self, Served};
use crate::{serve_embedded, serve_jetstream, Commands, Queries};

const PIPELINE: &str = "\
project: shop
warehouses:
  - name: images
    kind: image
  - name: config
    kind: git
stages:
  - name: dev
    record_only: true
    requested_freight:
      - origin: images
        sources: {direct: true}
      - origin: config
        sources: {direct: true}
    verification: [smoke]
    policy: {mode: auto}
  - name: staging
    record_only: true
    requested_freight:
      - origin: images
        sources: {stages: [dev]}
      - origin: config
        sources: {stages: [dev]}
    policy: {mode: auto}
";

async fn discover_config(c: &mut Commands, commit: char) -> String {
    c.record_discovery(pb::RecordDiscoveryRequest {
        project: "shop".into(),
        warehouse: "config".into(),
        artifacts: vec![pb::Artifact {
            kind: 2,
            name: "https://git.example/config".into(),
            version: "main".into(),
            digest: commit.to_string().repeat(40),
        }],
        alias: format!("c{commit}"),
        ..Default::default()
    })
    .await
    .expect("discover config")
    .into_inner()
    .freight_id
}

/// What `stage` runs, as (warehouse, alias), once `done` holds for it
/// (the auto-promoter acts on its own time).
async fn runs_once(
    q: &mut Queries,
    stage: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for _ in 0..200 {
        let s = q
            .get_stage(pb::GetStageRequest {
                project: "shop".into(),
                stage: stage.into(),
                min_position: 0,
            })
            .await
            .expect("get stage")
            .into_inner()
            .stage
            .expect("stage");
        seen = s
            .runs
            .iter()
            .map(|r| {
                let alias = r.current.as_ref().map(|c| c.alias.clone());
                (r.warehouse.clone(), alias.unwrap_or_default())
            })
            .collect();
        if done(&seen) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{stage} never got there: it runs {seen:?}");
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(w, a)| (w.to_string(), a.to_string()))
        .collect()
}

async fn scenario(mut cmd: std::process::Command) {
    let served = Served::start(cmd.arg("--insecure-dev"));
    let channel = served.channel().await;
    let (mut c, mut q) = (Commands::new(channel.clone()), Queries::new(channel));
    c.apply_pipeline(pb::ApplyPipelineRequest {
        yaml: PIPELINE.into(),
        source_uri: "pipeline.yaml".into(),
        ..Default::default()
    })
    .await
    .expect("apply");
    let image = c
        .record_discovery(pb::RecordDiscoveryRequest {
            alias: "v1".into(),
            ..common::discovery("1.0", "")
        })
        .await
        .expect("discover image")
        .into_inner()
        .freight_id;
    discover_config(&mut c, 'a').await;

    // Auto-promotion brings the newest of each warehouse into dev; the
    // second does not push the first out.
    let both = pairs(&[("images", "v1"), ("config", "ca")]);
    assert_eq!(runs_once(&mut q, "dev", |r| r == both).await, both);

    // The image passes its check in dev and goes on to staging alone.
    c.record_verification(pb::RecordVerificationRequest {
        project: "shop".into(),
        freight: "v1".into(),
        stage: "dev".into(),
        check: "smoke".into(),
        passed: true,
        ..Default::default()
    })
    .await
    .expect("verify");
    let just_v1 = pairs(&[("images", "v1")]);
    assert_eq!(
        runs_once(&mut q, "staging", |r| r == just_v1).await,
        just_v1
    );
    let dev = q
        .get_stage(pb::GetStageRequest {
            project: "shop".into(),
            stage: "dev".into(),
            min_position: 0,
        })
        .await
        .expect("get stage")
        .into_inner();
    let verified: Vec<bool> = dev
        .stage
        .expect("dev")
        .runs
        .iter()
        .map(|r| r.verified)
        .collect();
    assert_eq!(verified, [true, false], "v1 verified in dev, ca not");
    let standing = dev.policy.expect("policy").auto_promotion;
    assert_eq!(
        standing, "images: done: v1 runs here; config: done: ca runs here",
        "auto-promotion speaks of each warehouse"
    );
    let before_v2 = dev.position;

    // A newer image replaces v1 in dev; the config stays.
    c.record_discovery(pb::RecordDiscoveryRequest {
        alias: "v2".into(),
        ..common::discovery("2.0", "")
    })
    .await
    .expect("discover v2");
    let next = pairs(&[("images", "v2"), ("config", "ca")]);
    assert_eq!(runs_once(&mut q, "dev", |r| r == next).await, next);

    // The pipeline as it was before: dev ran v1 and ca.
    let then = q
        .state_at(pb::StateAtRequest {
            project: "shop".into(),
            at: Some(pb::state_at_request::At::Position(before_v2)),
        })
        .await
        .expect("state at")
        .into_inner();
    let dev_then = then.stages.iter().find(|s| s.name == "dev").expect("dev");
    let ran: Vec<&str> = dev_then
        .runs
        .iter()
        .filter_map(|r| r.current.as_ref())
        .map(|c| c.alias.as_str())
        .collect();
    assert_eq!(ran, ["v1", "ca"]);

    // The CLI shows a line per warehouse, and a rollback must say which.
    let server = served.endpoint();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-p", "shop", "--server", &server]);
        common::run(&all)
    };
    let status = cli(&["status"]);
    let text = common::stdout(&status);
    assert!(
        text.contains("v2 (images)") && text.contains("ca (config)"),
        "{text}"
    );
    let refused = cli(&["rollback", "-s", "dev"]);
    assert!(!refused.status.success());
    assert!(
        common::stderr(&refused)
            .contains("stage dev runs freight of several warehouses (images, config): name the one whose freight to roll back (`waybill rollback --warehouse`)"),
        "{}",
        common::stderr(&refused)
    );
    let rolled = cli(&[
        "rollback",
        "-s",
        "dev",
        "-w",
        "images",
        "-m",
        "v2 is broken",
    ]);
    assert!(rolled.status.success(), "{}", common::stderr(&rolled));
    let back = pairs(&[("images", "v1"), ("config", "ca")]);
    assert_eq!(runs_once(&mut q, "dev", |r| r == back).await, back);
    assert_eq!(
        q.get_freight(pb::GetFreightRequest {
            project: "shop".into(),
            freight: image,
            min_position: 0,
        })
        .await
        .expect("get freight")
        .into_inner()
        .freight
        .expect("freight")
        .currently_in
        .iter()
        .map(|c| c.stage.as_str())
        .collect::<Vec<_>>(),
        ["dev", "staging"]
    );
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_runs_freight_of_each_warehouse_on_embedded_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    scenario(serve_embedded(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_runs_freight_of_each_warehouse_on_jetstream() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    scenario(serve_jetstream(&server, dir.path())).await;
}
