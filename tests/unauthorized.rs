//! Every RPC of the command, query and audit services, called without
//! credentials, with a wrong token and as an under-privileged principal, is
//! refused every time — and nothing is appended.

mod common;

use std::path::Path;

use common::{waybill, with_token as with, Served};
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use tonic::{Code, Status};
use waybill_proto::v1 as pb;
use waybill_proto::v1::audit_service_client::AuditServiceClient;
use waybill_proto::v1::command_service_client::CommandServiceClient;
use waybill_proto::v1::query_service_client::QueryServiceClient;

fn auth_config(dir: &Path) -> std::path::PathBuf {
    let mut tokens = String::new();
    for name in ["admin", "viewer", "nobody"] {
        let hash = hex::encode(Sha256::digest(format!("token-of-{name}").as_bytes()));
        tokens.push_str(&format!(
            "[[token]]\nname = \"{name}\"\nsha256 = \"{hash}\"\n\n"
        ));
    }
    std::fs::write(dir.join("tokens.toml"), tokens).expect("tokens");
    let auth = r#"tokens_file = "tokens.toml"

[[binding]]
subjects = ["user:admin"]
roles = ["admin"]

[[binding]]
subjects = ["user:viewer"]
roles = ["viewer"]
"#;
    let path = dir.join("auth.toml");
    std::fs::write(&path, auth).expect("auth");
    path
}

/// The outcome of every command RPC for `token`.
async fn commands(
    channel: Channel,
    token: Option<&str>,
) -> Vec<(&'static str, Result<(), Status>)> {
    let mut c = CommandServiceClient::new(channel);
    let t = token;
    let pipeline = std::fs::read_to_string(common::EXAMPLE_PIPELINE).expect("pipeline");
    vec![
        (
            "ApplyPipeline",
            c.apply_pipeline(with(
                t,
                pb::ApplyPipelineRequest {
                    yaml: pipeline,
                    source_uri: "pipeline.yaml".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "RecordDiscovery",
            c.record_discovery(with(
                t,
                pb::RecordDiscoveryRequest {
                    project: "shop".into(),
                    warehouse: "images".into(),
                    artifacts: vec![pb::Artifact {
                        kind: 1,
                        name: "ghcr.io/acme/shop".into(),
                        version: "9.9".into(),
                        digest: String::new(),
                    }],
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "RecordVerification",
            c.record_verification(with(
                t,
                pb::RecordVerificationRequest {
                    project: "shop".into(),
                    freight: "v1".into(),
                    stage: "dev".into(),
                    check: "integration-tests".into(),
                    passed: true,
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "RequestPromotion",
            c.request_promotion(with(
                t,
                pb::RequestPromotionRequest {
                    project: "shop".into(),
                    stage: "prod".into(),
                    freight_selector: Some(
                        pb::request_promotion_request::FreightSelector::NewestAvailable(true),
                    ),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "ApprovePromotion",
            c.approve_promotion(with(t, decision())).await.map(|_| ()),
        ),
        (
            "RejectPromotion",
            c.reject_promotion(with(t, decision())).await.map(|_| ()),
        ),
        (
            "AbortPromotion",
            c.abort_promotion(with(t, decision())).await.map(|_| ()),
        ),
        (
            "ApproveFreight",
            c.approve_freight(with(
                t,
                pb::ApproveFreightRequest {
                    project: "shop".into(),
                    freight: "v1".into(),
                    stage: "prod".into(),
                    reason: "hotfix".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "ReportPromotionResult",
            c.report_promotion_result(with(
                t,
                pb::ReportPromotionResultRequest {
                    project: "shop".into(),
                    promotion_id: "p1".into(),
                    result: 2,
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "Rollback",
            c.rollback(with(
                t,
                pb::RollbackRequest {
                    project: "shop".into(),
                    stage: "prod".into(),
                    reason: "bad release".into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
    ]
}

fn decision() -> pb::PromotionDecisionRequest {
    pb::PromotionDecisionRequest {
        project: "shop".into(),
        promotion_id: "p1".into(),
        comment: "ok".into(),
        ..Default::default()
    }
}

/// The outcome of every query and audit RPC for `token`.
async fn reads(channel: Channel, token: Option<&str>) -> Vec<(&'static str, Result<(), Status>)> {
    let mut q = QueryServiceClient::new(channel.clone());
    let mut a = AuditServiceClient::new(channel);
    let t = token;
    let project = || "shop".to_string();
    vec![
        (
            "GetStage",
            q.get_stage(with(
                t,
                pb::GetStageRequest {
                    project: project(),
                    stage: "dev".into(),
                    min_position: 0,
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "ListStages",
            q.list_stages(with(
                t,
                pb::ListStagesRequest {
                    project: project(),
                    min_position: 0,
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "GetPipeline",
            q.get_pipeline(with(
                t,
                pb::GetPipelineRequest {
                    project: project(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "GetFreight",
            q.get_freight(with(
                t,
                pb::GetFreightRequest {
                    project: project(),
                    freight: "v1".into(),
                    min_position: 0,
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "ListFreight",
            q.list_freight(with(
                t,
                pb::ListFreightRequest {
                    project: project(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "GetPromotion",
            q.get_promotion(with(
                t,
                pb::GetPromotionRequest {
                    project: project(),
                    promotion_id: "p1".into(),
                    min_position: 0,
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "ListPromotions",
            q.list_promotions(with(
                t,
                pb::ListPromotionsRequest {
                    project: project(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "History",
            q.history(with(
                t,
                pb::HistoryRequest {
                    project: project(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "StateAt",
            q.state_at(with(
                t,
                pb::StateAtRequest {
                    project: project(),
                    at: Some(pb::state_at_request::At::Position(1)),
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "Watch",
            q.watch(with(
                t,
                pb::WatchRequest {
                    project: project(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "PendingApprovals",
            q.pending_approvals(with(
                t,
                pb::PendingApprovalsRequest {
                    project: project(),
                    min_position: 0,
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "ProjectionStatus",
            q.projection_status(with(t, pb::ProjectionStatusRequest {}))
                .await
                .map(|_| ()),
        ),
        (
            "GetCheckpoint",
            a.get_checkpoint(with(t, pb::GetCheckpointRequest { size: 0 }))
                .await
                .map(|_| ()),
        ),
        (
            "GetInclusionProof",
            a.get_inclusion_proof(with(
                t,
                pb::InclusionProofRequest {
                    position: 1,
                    size: 1,
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "GetConsistencyProof",
            a.get_consistency_proof(with(
                t,
                pb::ConsistencyProofRequest {
                    old_size: 1,
                    new_size: 1,
                },
            ))
            .await
            .map(|_| ()),
        ),
        (
            "VerifyChain",
            a.verify_chain(with(t, pb::VerifyChainRequest { project: project() }))
                .await
                .map(|_| ()),
        ),
        (
            "Export",
            a.export(with(
                t,
                pb::ExportRequest {
                    project: project(),
                    ..Default::default()
                },
            ))
            .await
            .map(|_| ()),
        ),
    ]
}

fn assert_refused(outcomes: &[(&str, Result<(), Status>)], code: Code, who: &str) {
    for (rpc, outcome) in outcomes {
        match outcome {
            Err(status) => assert_eq!(status.code(), code, "{rpc} as {who}: {status:?}"),
            Ok(()) => panic!("{rpc} as {who} was allowed"),
        }
    }
}

async fn head(channel: Channel) -> u64 {
    QueryServiceClient::new(channel)
        .projection_status(with(Some("token-of-admin"), pb::ProjectionStatusRequest {}))
        .await
        .expect("status as admin")
        .into_inner()
        .head
}

#[test]
fn every_rpc_refuses_the_unauthenticated_and_the_underprivileged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = auth_config(dir.path());
    let served = Served::start(
        waybill()
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--auth-config")
            .arg(&auth),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let channel = Channel::from_shared(served.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        // The admin applies the pipeline, so that refusals are about identity
        // and roles, not about a missing project.
        let applied = commands(channel.clone(), Some("token-of-admin")).await;
        assert!(applied[0].1.is_ok(), "{:?}", applied[0]);
        let before = head(channel.clone()).await;

        let all = |c: &Channel, t: Option<&'static str>| {
            let c = c.clone();
            async move {
                let mut v = commands(c.clone(), t).await;
                v.extend(reads(c, t).await);
                v
            }
        };
        let anonymous = all(&channel, None).await;
        assert_eq!(anonymous.len(), 27, "10 commands, 12 queries, 5 audit RPCs");
        assert_refused(&anonymous, Code::Unauthenticated, "nobody at all");
        assert_refused(
            &all(&channel, Some("not-a-token")).await,
            Code::Unauthenticated,
            "a wrong token",
        );
        assert_refused(
            &all(&channel, Some("token-of-nobody")).await,
            Code::PermissionDenied,
            "a principal without roles",
        );
        // A viewer reads, but commands nothing.
        assert_refused(
            &commands(channel.clone(), Some("token-of-viewer")).await,
            Code::PermissionDenied,
            "a viewer",
        );
        assert_eq!(head(channel.clone()).await, before, "nothing was appended");

        // ListProjects answers everyone it can identify, with the projects
        // each may view: none for a principal without roles.
        let mut q = QueryServiceClient::new(channel.clone());
        for token in [None, Some("not-a-token")] {
            let refused = q
                .list_projects(with(token, pb::ListProjectsRequest::default()))
                .await
                .expect_err("unauthenticated");
            assert_eq!(refused.code(), Code::Unauthenticated, "{token:?}");
        }
        for (token, want) in [
            ("token-of-nobody", vec![]),
            ("token-of-viewer", vec!["shop".to_string()]),
        ] {
            let listed = q
                .list_projects(with(Some(token), pb::ListProjectsRequest::default()))
                .await
                .expect("list")
                .into_inner();
            let names: Vec<String> = listed.projects.into_iter().map(|p| p.project).collect();
            assert_eq!(names, want, "{token}");
        }
    });
    // The CLI without a token says each way of giving one.
    let out = waybill()
        .args(["status", "-p", "shop", "--server", &served.endpoint()])
        .env_remove("WAYBILL_TOKEN")
        .env_remove("WAYBILL_TOKEN_FILE")
        .output()
        .expect("status");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("--token-file") && said.contains("WAYBILL_TOKEN_FILE"),
        "{said}"
    );
}
