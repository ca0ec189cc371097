//! History filters: by stage and event type, each entry with its hash and
//! policy version and its freight named by alias; a pipeline's entry with its source and version; an event
//! type named by its subject token; an unknown type, project or stage
//! refused rather than answered with nothing.

use futures::StreamExt;
use waybill_proto::v1 as pb;

use crate::Queries;

/// The six dev promotions requested up to `written`, under the policy
/// `applied` set.
pub(crate) async fn filters(mut q: Queries, applied: &pb::CommandReply, written: u64) {
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
        // The summary names the freight by its alias, as the tables do.
        assert!(
            e.summary
                .starts_with(&format!("promotion {} of v", e.promotion))
                && e.summary.ends_with(" into dev requested"),
            "{}",
            e.summary
        );
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
    // What it brought: the project's first pipeline is one line.
    assert_eq!(
        first.pipeline_changes,
        ["new project shop: warehouses images; stages dev, staging, prod"]
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
        // A misspelled stage is named with the one meant.
        (
            "shop",
            "prdo",
            "project shop has no stage \"prdo\", and never had (did you mean \"prod\"?)",
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
    let e = q
        .get_stage(pb::GetStageRequest {
            project: "shop".into(),
            stage: "prdo".into(),
            ..Default::default()
        })
        .await
        .expect_err("no such stage");
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    assert_eq!(
        e.message(),
        "project shop has no stage \"prdo\" (did you mean \"prod\"?)"
    );
}
