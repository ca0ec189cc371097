//! The query API over real gRPC, on both backends: read-your-writes with
//! `min_position`, stages, freight (with availability and its reason),
//! promotions with paging, filtered history, state at a position, and a
//! watch that resumes from a position without missing or repeating anything.

mod common;

use common::{waybill, Served};
use futures::StreamExt;
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

async fn promote(c: &mut Commands, stage: &str, freight: &str) -> pb::CommandReply {
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
    let mut q = Queries::new(channel);
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

    // Freight: availability for a stage, with the reason when not.
    let (f2, last) = discover(&mut c, "2.0").await;
    let list = q
        .list_freight(pb::ListFreightRequest {
            project: "shop".into(),
            available_for: "staging".into(),
            min_position: last,
            ..Default::default()
        })
        .await
        .expect("list freight")
        .into_inner();
    let by_id = |id: &str| {
        list.freight
            .iter()
            .find(|f| f.id == id)
            .expect("listed")
            .clone()
    };
    assert!(by_id(&f1).available);
    assert!(!by_id(&f2).available);
    assert!(
        by_id(&f2).unavailable_reason.contains("dev"),
        "{}",
        by_id(&f2).unavailable_reason
    );
    let one = q
        .get_freight(pb::GetFreightRequest {
            project: "shop".into(),
            freight: "v1.0".into(),
            min_position: last,
        })
        .await
        .expect("get freight")
        .into_inner()
        .freight
        .expect("freight");
    assert_eq!(one.id, f1);
    assert_eq!(one.currently_in[0].stage, "dev");
    assert_eq!(one.verified_in[0].stage, "dev");

    // Promotions: paging with an opaque cursor.
    let mut ids = Vec::new();
    let mut written = 0;
    for i in 0..5 {
        let (f, _) = discover(&mut c, &format!("3.{i}")).await;
        let reply = promote(&mut c, "dev", &f).await;
        written = reply.position;
        ids.push(reply.promotion_id);
    }
    let head = ids.len();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = q
            .list_promotions(pb::ListPromotionsRequest {
                project: "shop".into(),
                stage: "dev".into(),
                page_size: 2,
                page_token: token.clone(),
                min_position: written,
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.promotions.iter().map(|p| p.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), head + 1, "every dev promotion once: {seen:?}");
    // Status filters (active ones read the index of active promotions, a
    // stage its history index) return what filtering the whole list gives,
    // in the same order.
    let list = |stage: &str, status: &str| {
        let mut q = q.clone();
        let (stage, status) = (stage.to_string(), status.to_string());
        async move {
            q.list_promotions(pb::ListPromotionsRequest {
                project: "shop".into(),
                stage,
                status,
                page_size: 1000,
                min_position: written,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .promotions
        }
    };
    // (This pipeline's stages are record-only: every promotion here has
    // succeeded. The runner test covers the active index with queued ones.)
    let whole = list("", "").await;
    assert!(whole.iter().any(|p| p.status == "Succeeded"));
    for status in ["Requested", "Authorized", "Running", "Succeeded"] {
        for stage in ["", "dev"] {
            let want: Vec<&str> = whole
                .iter()
                .filter(|p| p.status == status && (stage.is_empty() || p.stage == stage))
                .map(|p| p.id.as_str())
                .collect();
            let got = list(stage, &status.to_lowercase()).await;
            let got: Vec<&str> = got.iter().map(|p| p.id.as_str()).collect();
            assert_eq!(got, want, "status {status}, stage {stage:?}");
        }
    }
    // A status or a stage that cannot match is refused, not answered with
    // an empty list.
    for (stage, status, code, said) in [
        (
            "",
            "Bogus",
            tonic::Code::InvalidArgument,
            "unknown promotion status \"Bogus\"",
        ),
        (
            "nostage",
            "",
            tonic::Code::NotFound,
            "project shop has no stage \"nostage\"",
        ),
    ] {
        let e = q
            .list_promotions(pb::ListPromotionsRequest {
                project: "shop".into(),
                stage: stage.into(),
                status: status.into(),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(said), "{e:?}");
    }

    // A freight's promotions (found through its history index), by id,
    // alias or start of id: what filtering the whole list gives.
    for (reference, id) in [
        (f1.as_str(), f1.as_str()),
        ("v1.0", f1.as_str()),
        (&whole[2].freight[..10], whole[2].freight.as_str()),
    ] {
        let want: Vec<&str> = whole
            .iter()
            .filter(|p| p.freight == id)
            .map(|p| p.id.as_str())
            .collect();
        assert!(!want.is_empty(), "{reference}");
        let got = q
            .list_promotions(pb::ListPromotionsRequest {
                project: "shop".into(),
                freight: reference.into(),
                page_size: 1000,
                min_position: written,
                ..Default::default()
            })
            .await
            .expect("list by freight")
            .into_inner()
            .promotions;
        let got: Vec<&str> = got.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(got, want, "freight {reference}");
    }

    // Freight: pages of 3, newest first, each freight once.
    let everything = q
        .list_freight(pb::ListFreightRequest {
            project: "shop".into(),
            min_position: written,
            ..Default::default()
        })
        .await
        .expect("list freight")
        .into_inner();
    assert!(everything.next_page_token.is_empty());
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = q
            .list_freight(pb::ListFreightRequest {
                project: "shop".into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("freight page")
            .into_inner();
        assert!(page.freight.len() <= 3);
        pages += 1;
        paged.extend(page.freight.into_iter().map(|f| f.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let all_ids: Vec<String> = everything.freight.iter().map(|f| f.id.clone()).collect();
    assert_eq!(paged, all_ids, "the pages are the whole list, in order");
    assert_eq!(pages, all_ids.len().div_ceil(3));
    assert!(everything
        .freight
        .windows(2)
        .all(|w| w[0].discovered_at >= w[1].discovered_at));
    let bad = q
        .list_freight(pb::ListFreightRequest {
            project: "shop".into(),
            page_token: "after-7".into(),
            ..Default::default()
        })
        .await
        .expect_err("a made-up token");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let p = q
        .get_promotion(pb::GetPromotionRequest {
            project: "shop".into(),
            promotion_id: ids[0].clone(),
            min_position: 0,
        })
        .await
        .expect("get promotion")
        .into_inner()
        .promotion
        .expect("promotion");
    assert_eq!(p.status, "Succeeded");
    assert_eq!(p.requested_by, "anonymous");
    assert_eq!(p.policy_version, applied.position);

    // History: filtered, with position, hash and policy version.
    let mut history = q
        .history(pb::HistoryRequest {
            project: "shop".into(),
            stage: "dev".into(),
            event_type: "PromotionRequested".into(),
            min_position: written,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    let mut n = 0;
    while let Some(e) = history.next().await {
        let e = e.expect("entry");
        assert_eq!(
            (e.stage.as_str(), e.event_type.as_str()),
            ("dev", "PromotionRequested")
        );
        assert_eq!(e.hash.len(), 64);
        assert_eq!(e.policy_version, applied.position);
        n += 1;
    }
    assert_eq!(n, 6);
    // A pipeline's entry: its source is the why, the summary the version.
    let mut configured = q
        .history(pb::HistoryRequest {
            project: "shop".into(),
            event_type: "PipelineConfigured".into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    let first = configured.next().await.expect("an entry").expect("ok");
    assert_eq!(first.reason, "pipeline.yaml");
    assert_eq!(
        first.summary,
        format!("pipeline applied: policy version {}", applied.position)
    );
    // A type may be named as its subject token too; an unknown one is
    // refused with the list, not answered with nothing.
    let count = |event_type: &str| {
        let mut q = q.clone();
        let event_type = event_type.to_string();
        async move {
            let stream = q
                .history(pb::HistoryRequest {
                    project: "shop".into(),
                    stage: "dev".into(),
                    event_type,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let entries: Vec<_> = stream.collect().await;
            Ok::<usize, tonic::Status>(entries.len())
        }
    };
    assert_eq!(count("promotion-requested").await.expect("token"), 6);
    let unknown = count("PromotionFoo").await.expect_err("unknown type");
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
    assert!(
        unknown
            .message()
            .contains("unknown event type \"PromotionFoo\": one of PipelineConfigured"),
        "{unknown:?}"
    );
    // So are a project and a stage that never were.
    for (project, stage, said) in [
        ("nope", "", "no project \"nope\""),
        (
            "shop",
            "nostage",
            "project shop has no stage \"nostage\", and never had",
        ),
    ] {
        let e = q
            .history(pb::HistoryRequest {
                project: project.into(),
                stage: stage.into(),
                ..Default::default()
            })
            .await
            .expect_err("unknown");
        assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
        assert!(e.message().contains(said), "{e:?}");
    }

    // State at a position before the first promotion: dev was empty.
    let before = q
        .state_at(pb::StateAtRequest {
            project: "shop".into(),
            at: Some(pb::state_at_request::At::Position(p1.position - 1)),
        })
        .await
        .expect("state at")
        .into_inner();
    assert_eq!(current(&before, "dev"), None);
    let then = q
        .state_at(pb::StateAtRequest {
            project: "shop".into(),
            at: Some(pb::state_at_request::At::Position(p1.position)),
        })
        .await
        .expect("state at")
        .into_inner();
    assert_eq!(current(&then, "dev"), Some(f1.clone()));
    // A position the log has not reached is refused, not answered with today.
    let beyond = q
        .state_at(pb::StateAtRequest {
            project: "shop".into(),
            at: Some(pb::state_at_request::At::Position(1_000_000)),
        })
        .await
        .expect_err("a position beyond the head");
    assert_eq!(beyond.code(), tonic::Code::OutOfRange, "{beyond:?}");
    assert!(
        beyond
            .message()
            .contains("position 1000000 is beyond the end of the log"),
        "{beyond:?}"
    );

    // Watch: everything from position 1, then a reconnect from the last + 1.
    let mut watch = q
        .watch(pb::WatchRequest {
            project: "shop".into(),
            from_position: 1,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut positions = Vec::new();
    while positions.len() < 6 {
        positions.push(watch.next().await.expect("entry").expect("ok").position);
    }
    drop(watch);
    let resume = positions.last().expect("some") + 1;
    let (_, newest) = discover(&mut c, "9.9").await;
    let mut watch = q
        .watch(pb::WatchRequest {
            project: "shop".into(),
            from_position: resume,
        })
        .await
        .expect("watch")
        .into_inner();
    loop {
        let e = watch.next().await.expect("entry").expect("ok");
        positions.push(e.position);
        if e.position == newest {
            break;
        }
    }
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in order, no repeats: {positions:?}"
    );
    assert_eq!(
        positions.len() as u64,
        newest,
        "nothing missed: {positions:?}"
    );

    // Lag: none once the projections reflect the newest write.
    q.list_stages(pb::ListStagesRequest {
        project: "shop".into(),
        min_position: newest,
    })
    .await
    .expect("caught up");
    let status = q
        .projection_status(pb::ProjectionStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        (status.applied, status.head, status.lag),
        (newest, newest, 0)
    );

    // Unknown things are NOT_FOUND; bad names are INVALID_ARGUMENT.
    let err = q
        .list_stages(pb::ListStagesRequest {
            project: "nope".into(),
            min_position: 0,
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = q
        .list_stages(pb::ListStagesRequest {
            project: "No.Pe".into(),
            min_position: 0,
        })
        .await
        .expect_err("bad");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(served.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_on_embedded_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = waybill();
    cmd.arg("serve").arg("--data-dir").arg(dir.path());
    scenario(cmd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_on_jetstream() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = waybill();
    cmd.args(["serve", "--nats", &server.url(), "--data-dir"])
        .arg(dir.path());
    scenario(cmd).await;
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

    let position = apply(example).await;
    assert!(in_stages(&mut q, position)
        .await
        .contains(&"dev".to_string()));
}
