//! Malformed requests over real gRPC: each is `INVALID_ARGUMENT`, nothing is
//! appended, and the server keeps serving.

mod common;

use common::{waybill, Served};
use tonic::Code;
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;
use waybill_proto::v1::request_promotion_request::FreightSelector;

type Client = CommandServiceClient<tonic::transport::Channel>;

fn promote(project: &str, stage: &str, freight: &str) -> pb::RequestPromotionRequest {
    pb::RequestPromotionRequest {
        project: project.into(),
        stage: stage.into(),
        freight_selector: Some(FreightSelector::Freight(freight.into())),
        ..Default::default()
    }
}

fn image(kind: i32) -> pb::Artifact {
    pb::Artifact {
        kind,
        name: "ghcr.io/acme/shop".into(),
        version: "9.9".into(),
        digest: String::new(),
    }
}

/// Appends a harmless event and returns its position.
async fn probe(c: &mut Client, n: u32) -> u64 {
    c.record_discovery(pb::RecordDiscoveryRequest {
        project: "shop".into(),
        warehouse: "images".into(),
        artifacts: vec![pb::Artifact {
            kind: 1,
            name: "ghcr.io/acme/shop".into(),
            version: format!("probe-{n}"),
            digest: String::new(),
        }],
        ..Default::default()
    })
    .await
    .expect("probe")
    .into_inner()
    .position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_invalid_and_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .arg("serve")
            .arg("--insecure-dev")
            .arg("--no-reactors")
            .arg("--data-dir")
            .arg(dir.path()),
    );
    let channel = served.channel().await;
    let mut c = Client::new(channel);
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/pipeline.yaml"
    ))
    .expect("example");
    c.apply_pipeline(pb::ApplyPipelineRequest {
        yaml: yaml.clone(),
        source_uri: "pipeline.yaml".into(),
        ..Default::default()
    })
    .await
    .expect("apply");
    let freight = c
        .record_discovery(pb::RecordDiscoveryRequest {
            project: "shop".into(),
            warehouse: "images".into(),
            artifacts: vec![image(1)],
            ..Default::default()
        })
        .await
        .expect("discover")
        .into_inner()
        .freight_id;
    let mut before = probe(&mut c, 0).await;

    let mut cases: Vec<(&str, tonic::Result<tonic::Response<pb::CommandReply>>)> = Vec::new();
    for bad in [
        "Shop",
        "sh.op",
        "sh*",
        "sh>",
        "sh op",
        " shop",
        "sh\u{7}op",
        "shöp",
        "",
        &"s".repeat(64),
    ] {
        cases.push((
            "bad project name",
            c.request_promotion(promote(bad, "dev", &freight)).await,
        ));
    }
    cases.push((
        "unknown project",
        c.request_promotion(promote("nope", "dev", &freight)).await,
    ));
    cases.push((
        "unknown stage",
        c.request_promotion(promote("shop", "qa", &freight)).await,
    ));
    cases.push((
        "stage with a dot",
        c.request_promotion(promote("shop", "prod.eu", &freight))
            .await,
    ));
    cases.push((
        "stage with a wildcard",
        c.request_promotion(promote("shop", ">", &freight)).await,
    ));
    let mut no_selector = promote("shop", "dev", &freight);
    no_selector.freight_selector = None;
    cases.push((
        "no freight selector",
        c.request_promotion(no_selector).await,
    ));
    let mut both = promote("shop", "dev", &freight);
    both.warehouse = "images".into();
    cases.push(("a freight and a warehouse", c.request_promotion(both).await));
    let mut newest_of = promote("shop", "dev", "");
    newest_of.freight_selector = Some(FreightSelector::NewestAvailable(true));
    newest_of.warehouse = "charts".into();
    cases.push((
        "the newest of a warehouse the stage does not take",
        c.request_promotion(newest_of).await,
    ));
    cases.push((
        "a rollback of a warehouse the stage does not take",
        c.rollback(pb::RollbackRequest {
            project: "shop".into(),
            stage: "dev".into(),
            warehouse: "charts".into(),
            ..Default::default()
        })
        .await,
    ));
    let mut oversized = promote("shop", "dev", &freight);
    oversized.reason = "x".repeat(100_000);
    cases.push(("oversized reason", c.request_promotion(oversized).await));
    let mut long_key = promote("shop", "dev", &freight);
    long_key.idempotency_key = "k".repeat(200);
    cases.push((
        "oversized idempotency key",
        c.request_promotion(long_key).await,
    ));
    cases.push((
        "bypass without a reason",
        c.approve_freight(pb::ApproveFreightRequest {
            project: "shop".into(),
            freight: freight.clone(),
            stage: "prod".into(),
            reason: "   ".into(),
            ticket: "CHG-1".into(),
            ..Default::default()
        })
        .await,
    ));
    for kind in [0, 99, -1] {
        cases.push((
            "wrong artifact kind",
            c.record_discovery(pb::RecordDiscoveryRequest {
                project: "shop".into(),
                warehouse: "images".into(),
                artifacts: vec![image(kind)],
                ..Default::default()
            })
            .await,
        ));
    }
    for (what, kind, digest) in [
        ("abbreviated image digest", 1, "sha256:9f86d08"),
        ("image digest without algorithm", 1, "9f86d081884c7d65"),
        ("abbreviated git commit", 2, "9f86d08"),
    ] {
        let mut artifact = image(kind);
        artifact.digest = digest.into();
        cases.push((
            what,
            c.record_discovery(pb::RecordDiscoveryRequest {
                project: "shop".into(),
                warehouse: "images".into(),
                artifacts: vec![artifact],
                ..Default::default()
            })
            .await,
        ));
    }
    cases.push((
        "no artifacts",
        c.record_discovery(pb::RecordDiscoveryRequest {
            project: "shop".into(),
            warehouse: "images".into(),
            ..Default::default()
        })
        .await,
    ));
    cases.push((
        "wrong result value",
        c.report_promotion_result(pb::ReportPromotionResultRequest {
            project: "shop".into(),
            promotion_id: "prm-0".into(),
            result: 7,
            ..Default::default()
        })
        .await,
    ));
    cases.push((
        "metric not a number",
        c.record_verification(pb::RecordVerificationRequest {
            project: "shop".into(),
            freight: freight.clone(),
            stage: "dev".into(),
            check: "integration-tests".into(),
            passed: true,
            metrics: [("latency".to_string(), f64::NAN)].into_iter().collect(),
            ..Default::default()
        })
        .await,
    ));
    cases.push((
        "check name with spaces",
        c.record_verification(pb::RecordVerificationRequest {
            project: "shop".into(),
            freight: freight.clone(),
            stage: "dev".into(),
            check: "integration tests".into(),
            passed: true,
            ..Default::default()
        })
        .await,
    ));
    cases.push((
        "pipeline that does not parse",
        c.apply_pipeline(pb::ApplyPipelineRequest {
            yaml: "project: [".into(),
            ..Default::default()
        })
        .await,
    ));
    cases.push((
        "pipeline that breaks a rule",
        c.apply_pipeline(pb::ApplyPipelineRequest {
            yaml: yaml.replace("stages: [dev]", "stages: [qa]"),
            ..Default::default()
        })
        .await,
    ));
    cases.push((
        "a message over the 1 MiB limit",
        c.apply_pipeline(pb::ApplyPipelineRequest {
            yaml: "#".repeat(2 * 1024 * 1024),
            ..Default::default()
        })
        .await,
    ));
    for (what, result) in cases {
        // Oversized messages are refused before they are decoded.
        let code = if what.starts_with("a message over") {
            Code::OutOfRange
        } else {
            Code::InvalidArgument
        };
        match result {
            Err(status) => {
                assert_eq!(status.code(), code, "{what}: {status:?}");
                // Each error says what is wrong once, without repeating itself.
                let words: Vec<&str> = status.message().split(": ").collect();
                assert!(words.windows(2).all(|w| w[0] != w[1]), "{what}: {status:?}");
            }
            Ok(reply) => panic!("{what}: accepted {reply:?}"),
        }
        // Nothing was appended, and the server still answers.
        let after = probe(&mut c, before as u32).await;
        assert_eq!(after, before + 1, "{what} appended something");
        before = after;
    }
    assert!(served.terminate().success());
}

/// Queries with times out of range or malformed, and an export whose range
/// ends before it starts: INVALID_ARGUMENT (a `StateAt` time still to come:
/// OUT_OF_RANGE), and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_times_are_invalid() {
    use waybill_proto::v1::audit_service_client::AuditServiceClient;
    use waybill_proto::v1::query_service_client::QueryServiceClient;
    use waybill_proto::v1::state_at_request::At;

    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::insecure_dev(dir.path());
    let channel = served.channel().await;
    let mut q = QueryServiceClient::new(channel.clone());
    let mut a = AuditServiceClient::new(channel);
    let times = [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "+275760-09-13T00:00:00Z",
        "2026-12-02T25:00:00Z",
        "2026-12-02 10:00",
        "",
    ];
    for t in times {
        let state_at = q
            .state_at(pb::StateAtRequest {
                project: "shop".into(),
                at: Some(At::Time(t.into())),
            })
            .await;
        let history = q
            .history(pb::HistoryRequest {
                project: "shop".into(),
                since: t.into(),
                ..Default::default()
            })
            .await;
        if t.is_empty() {
            // Empty means "no bound" for history; StateAt needs a time.
            assert!(
                history.is_ok() || history.as_ref().err().map(|s| s.code()) == Some(Code::NotFound)
            );
            continue;
        }
        for (what, result) in [
            ("StateAt", state_at.map(|_| ())),
            ("History", history.map(|_| ())),
        ] {
            let status = result.expect_err(&format!("{what} {t:?} accepted"));
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{what} {t:?}: {status:?}"
            );
        }
    }
    let backwards = q
        .history(pb::HistoryRequest {
            project: "shop".into(),
            since: "2026-12-02T10:00:00Z".into(),
            until: "2026-12-01T10:00:00Z".into(),
            ..Default::default()
        })
        .await
        .expect_err("a history range that ends before it starts");
    assert_eq!(backwards.code(), Code::InvalidArgument, "{backwards:?}");
    assert!(
        backwards.message().contains("must be before until"),
        "{backwards:?}"
    );
    // A time to come is refused like a position beyond the log's head (the
    // answer would change once it came), unless clocks may explain it.
    let at = |offset: chrono::Duration| pb::StateAtRequest {
        project: "shop".into(),
        at: Some(At::Time((chrono::Utc::now() + offset).to_rfc3339())),
    };
    let future = q
        .state_at(at(chrono::Duration::hours(1)))
        .await
        .expect_err("a time an hour from now");
    assert_eq!(future.code(), Code::OutOfRange, "{future:?}");
    assert!(future.message().contains("is in the future"), "{future:?}");
    let skewed = q
        .state_at(at(chrono::Duration::seconds(10)))
        .await
        .expect_err("no pipeline");
    assert_eq!(skewed.code(), Code::NotFound, "{skewed:?}");
    let backwards = a
        .export(pb::ExportRequest {
            project: "shop".into(),
            from: "2026-12-02T10:00:00Z".into(),
            to: "2026-12-01T10:00:00Z".into(),
            ..Default::default()
        })
        .await
        .expect_err("a range that ends before it starts");
    assert_eq!(backwards.code(), Code::InvalidArgument);
    let bad_format = a
        .export(pb::ExportRequest {
            project: "shop".into(),
            format: 9,
            ..Default::default()
        })
        .await
        .expect_err("an unknown format");
    assert_eq!(bad_format.code(), Code::InvalidArgument);
    // Still serving.
    q.projection_status(pb::ProjectionStatusRequest {})
        .await
        .expect("still serving");
    assert!(served.terminate().success());
}
