//! The query API over real gRPC, on both backends: read-your-writes with
//! `min_position`, stages, freight (with availability and its reason),
//! promotions with paging, filtered history, state at a position, and a
//! watch that resumes from a position without missing or repeating anything.
//!
//! The one scenario runs in phases, each in its own file, in order:
//! `read_your_writes` (stages, checks, verification), `freight`
//! (availability), `promotions` (paging and filters), `history` (filters),
//! `state_at` and `watch` (with lag and refused names). The helpers they
//! share, the setup that strings them together, the two backends and a
//! freight in a stage the pipeline left out are here; `pipeline_source`
//! applies a pipeline from a git work tree; `auto_promotion` what a stage
//! says auto-promotion waits for.

mod auto_promotion;
#[path = "../common/mod.rs"]
mod common;
mod freight;
mod history;
mod pipeline_source;
mod promotions;
mod read_your_writes;
mod state_at;
mod warehouses;
mod watch;

use common::{waybill, Served};
use waybill_ledger::testing::NatsServer;
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;
use waybill_proto::v1::query_service_client::QueryServiceClient;
use waybill_proto::v1::request_promotion_request::FreightSelector;

type Commands = CommandServiceClient<tonic::transport::Channel>;
type Queries = QueryServiceClient<tonic::transport::Channel>;

async fn discover(c: &mut Commands, tag: &str) -> (String, u64) {
    let r = c
        .record_discovery(pb::RecordDiscoveryRequest {
            alias: format!("v{tag}"),
            ..common::discovery(tag, "")
        })
        .await
        .expect("discover")
        .into_inner();
    (r.freight_id, r.position)
}

pub(crate) async fn promote(c: &mut Commands, stage: &str, freight: &str) -> pb::CommandReply {
    c.request_promotion(pb::RequestPromotionRequest {
        project: "shop".into(),
        stage: stage.into(),
        freight_selector: Some(FreightSelector::Freight(freight.into())),
        ..Default::default()
    })
    .await
    .expect("promote")
    .into_inner()
}

async fn stages(q: &mut Queries, min: u64) -> pb::ListStagesReply {
    q.list_stages(pb::ListStagesRequest {
        project: "shop".into(),
        min_position: min,
    })
    .await
    .expect("list stages")
    .into_inner()
}

fn current(reply: &pb::ListStagesReply, stage: &str) -> Option<String> {
    reply
        .stages
        .iter()
        .find(|s| s.name == stage)?
        .current
        .as_ref()
        .map(|c| c.freight.clone())
}

async fn scenario(mut cmd: std::process::Command) {
    let served = Served::start(cmd.arg("--insecure-dev").arg("--no-reactors"));
    let channel = served.channel().await;
    let mut c = Commands::new(channel.clone());
    let q = Queries::new(channel);
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/pipeline.yaml"
    ))
    .expect("example");
    let applied = c
        .apply_pipeline(pb::ApplyPipelineRequest {
            yaml,
            source_uri: "pipeline.yaml".into(),
            ..Default::default()
        })
        .await
        .expect("apply")
        .into_inner();
    // The pipeline in force, as its event records it.
    let pipeline = q
        .clone()
        .get_pipeline(pb::GetPipelineRequest {
            project: "shop".into(),
            min_position: applied.position,
            ..Default::default()
        })
        .await
        .expect("get pipeline")
        .into_inner();
    assert_eq!(pipeline.policy_version, applied.position);
    assert!(pipeline.in_force);
    assert_eq!(pipeline.source_uri, "pipeline.yaml");
    assert_eq!(pipeline.source_digest.len(), 64, "{pipeline:?}");
    assert!(
        pipeline
            .definition_json
            .starts_with("{\"project\":\"shop\""),
        "{pipeline:?}"
    );

    // The phases, in order; each takes its own handles on the one
    // connection, which stays open until the server is stopped.
    let (f1, p1) = read_your_writes::stages_and_checks(c.clone(), q.clone(), &applied).await;
    freight::availability(c.clone(), q.clone(), f1.clone()).await;
    let written = promotions::paging_and_filters(c.clone(), q.clone(), &applied, f1.clone()).await;
    history::filters(q.clone(), &applied, written).await;
    state_at::before_and_beyond(q.clone(), &p1, f1).await;
    watch::resumes_without_gaps(c.clone(), q.clone()).await;
    watch::follows_one_project_among_others(c.clone(), q.clone()).await;
    assert!(served.terminate().success());
}

/// `waybill serve` on the embedded log in `dir`.
pub(crate) fn serve_embedded(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = waybill();
    cmd.arg("serve").arg("--data-dir").arg(dir);
    cmd
}

/// `waybill serve` on JetStream at `server`, its read models in `dir`.
pub(crate) fn serve_jetstream(server: &NatsServer, dir: &std::path::Path) -> std::process::Command {
    let mut cmd = waybill();
    cmd.args(["serve", "--nats", &server.url(), "--data-dir"])
        .arg(dir);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_on_embedded_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    scenario(serve_embedded(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_on_jetstream() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    scenario(serve_jetstream(&server, dir.path())).await;
}

/// A freight runs in a stage that a later pipeline leaves out: `GetFreight`
/// and `ListFreight` no longer say it is there (the stage's history stays),
/// and do again once the stage is defined again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freight_is_not_shown_in_a_stage_the_pipeline_left_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::insecure_dev(&dir.path().join("data"));
    served.apply_example();
    let channel = served.channel().await;
    let (mut c, mut q) = (
        CommandServiceClient::new(channel.clone()),
        QueryServiceClient::new(channel),
    );
    let (freight, _) = discover(&mut c, "1.0.0").await;
    // The server runs no reactors: promote into dev by hand (record-only,
    // so it completes at once).
    let seen = promote(&mut c, "dev", &freight).await.position;
    let example = std::fs::read_to_string(common::EXAMPLE_PIPELINE).expect("example");
    let apply = |yaml: String| {
        let mut c = c.clone();
        async move {
            c.apply_pipeline(pb::ApplyPipelineRequest {
                yaml,
                source_uri: "pipeline.yaml".into(),
                ..Default::default()
            })
            .await
            .expect("apply")
            .into_inner()
            .position
        }
    };
    let in_stages = |q: &mut Queries, min: u64| {
        let mut q = q.clone();
        let freight = freight.clone();
        async move {
            let one = q
                .get_freight(pb::GetFreightRequest {
                    project: "shop".into(),
                    freight: freight.clone(),
                    min_position: min,
                })
                .await
                .expect("get freight")
                .into_inner()
                .freight
                .expect("freight");
            let listed = q
                .list_freight(pb::ListFreightRequest {
                    project: "shop".into(),
                    min_position: min,
                    ..Default::default()
                })
                .await
                .expect("list freight")
                .into_inner()
                .freight
                .into_iter()
                .find(|f| f.id == freight)
                .expect("listed");
            let names = |f: &pb::Freight| -> Vec<String> {
                f.currently_in.iter().map(|c| c.stage.clone()).collect()
            };
            assert_eq!(names(&one), names(&listed));
            names(&one)
        }
    };
    assert_eq!(in_stages(&mut q, seen).await, ["dev"]);

    let renamed = example
        .replace("name: dev\n", "name: develop\n")
        .replace("stages: [dev]", "stages: [develop]");
    let position = apply(renamed).await;
    let now_in = in_stages(&mut q, position).await;
    assert!(!now_in.contains(&"dev".to_string()), "{now_in:?}");
    // Its history entry says what it changed against the pipeline before.
    let entry = q
        .history(pb::HistoryRequest {
            project: "shop".into(),
            from_position: position,
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .message()
        .await
        .expect("ok")
        .expect("an entry");
    assert_eq!(entry.event_type, "PipelineConfigured");
    assert_eq!(
        entry.summary,
        format!("pipeline applied: policy version {position} (3 changes)")
    );
    assert!(
        entry.pipeline_changes[0]
            .starts_with("stage develop added: auto; freight of images from the warehouse"),
        "{:?}",
        entry.pipeline_changes
    );
    assert_eq!(
        entry.pipeline_changes[1..],
        [
            r#"stage staging: requested_freight[images].sources.stages: ["dev"] → ["develop"]"#,
            "stage dev removed"
        ]
    );

    let position = apply(example).await;
    assert!(in_stages(&mut q, position)
        .await
        .contains(&"dev".to_string()));
}
