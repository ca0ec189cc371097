//! The watch: everything from position 1, then a reconnect from the last
//! position + 1 that misses and repeats nothing; then no projection lag once
//! the newest write is reflected, and unknown or badly named projects
//! refused.

use futures::StreamExt;
use waybill_proto::v1 as pb;

use crate::{discover, Commands, Queries};

/// The last phase: one more discovery while the watch is away.
pub(crate) async fn resumes_without_gaps(mut c: Commands, mut q: Queries) {
    // Watch: everything from position 1, then a reconnect from the last + 1.
    let mut watch = q
        .watch(pb::WatchRequest {
            project: "shop".into(),
            from_position: 1,
            ..Default::default()
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
            ..Default::default()
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
}

/// A watch of one project while another is busy: every event of the
/// watched project arrives, in order, and nothing of the other (the server
/// skips what it has read and found nothing of the project in, instead of
/// reading it again while it waits); a watch of one stage, or of one event
/// type, gets exactly those; a stage it does not know, a stage without its
/// project, or an unknown type are refused.
pub(crate) async fn follows_one_project_among_others(mut c: Commands, mut q: Queries) {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/pipeline.yaml"
    ))
    .expect("example")
    .replace("project: shop", "project: other");
    c.apply_pipeline(pb::ApplyPipelineRequest {
        yaml,
        ..Default::default()
    })
    .await
    .expect("apply other");
    let head = q
        .projection_status(pb::ProjectionStatusRequest {})
        .await
        .expect("status")
        .into_inner()
        .head;
    let watch = |project: &str, stage: &str, event_type: &str| {
        let mut q = q.clone();
        let request = pb::WatchRequest {
            project: project.into(),
            stage: stage.into(),
            event_type: event_type.into(),
            from_position: head + 1,
            ..Default::default()
        };
        async move { q.watch(request).await.map(|w| w.into_inner()) }
    };
    // Where each event leaves its promotion: a record-only stage's
    // promotion succeeds at its request; discoveries leave none.
    let mut succeeded = q
        .clone()
        .watch(pb::WatchRequest {
            project: "shop".into(),
            promotion_status: "succeeded".into(),
            from_position: head + 1,
            ..Default::default()
        })
        .await
        .expect("watch by status")
        .into_inner();
    let mut shop = watch("shop", "", "").await.expect("watch shop");
    let mut dev = watch("shop", "dev", "").await.expect("watch dev");
    let mut found = watch("other", "", "freight-discovered")
        .await
        .expect("watch type");
    let (mut in_shop, mut in_dev, mut in_other) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..10 {
        for j in 0..3 {
            let r = c
                .record_discovery(pb::RecordDiscoveryRequest {
                    project: "other".into(),
                    ..crate::common::discovery(&format!("7.{i}.{j}"), "")
                })
                .await
                .expect("discover in other")
                .into_inner();
            in_other.push(r.position);
        }
        let (freight, position) = discover(&mut c, &format!("8.{i}")).await;
        in_shop.push(position);
        let promoted = crate::promote(&mut c, "dev", &freight).await.position;
        in_shop.push(promoted);
        in_dev.push(promoted);
    }
    for (stream, expected, what) in [
        (&mut shop, &in_shop, "shop"),
        (&mut dev, &in_dev, "shop's dev"),
        (&mut found, &in_other, "other's discoveries"),
        (&mut succeeded, &in_dev, "shop's succeeded promotions"),
    ] {
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let e = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
                .await
                .expect("the next entry in time")
                .expect("entry")
                .expect("ok");
            got.push(e);
        }
        let positions: Vec<u64> = got.iter().map(|e| e.position).collect();
        assert_eq!(&positions, expected, "{what}");
        // Every entry about a freight carries what it holds: a deployment
        // job's watch need not look it up.
        for e in got.iter().filter(|e| !e.freight.is_empty()) {
            let versions: Vec<&str> = e
                .freight_artifacts
                .iter()
                .map(|a| a.version.as_str())
                .collect();
            let discovered = if e.project == "other" { "7." } else { "8." };
            assert!(
                versions.len() == 1 && versions[0].starts_with(discovered),
                "{what}: {e:?}"
            );
        }
        if what == "shop's succeeded promotions" {
            let deployed: Vec<String> = got
                .iter()
                .map(|e| e.freight_artifacts[0].version.clone())
                .collect();
            let expected: Vec<String> = (0..10).map(|i| format!("8.{i}")).collect();
            assert_eq!(deployed, expected, "{what}");
        }
    }
    for (project, stage, event_type, code) in [
        ("shop", "nostage", "", tonic::Code::NotFound),
        ("", "dev", "", tonic::Code::InvalidArgument),
        ("shop", "", "NoSuchEvent", tonic::Code::InvalidArgument),
    ] {
        let refused = watch(project, stage, event_type).await;
        let code_got = match refused {
            Err(status) => status.code(),
            Ok(mut stream) => match stream.next().await {
                Some(Err(status)) => status.code(),
                other => panic!("{project}/{stage}/{event_type}: {other:?}"),
            },
        };
        assert_eq!(code_got, code, "{project}/{stage}/{event_type}");
    }
    let refused = q
        .clone()
        .watch(pb::WatchRequest {
            project: "shop".into(),
            promotion_status: "Deployed".into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .expect_err("an unknown status");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().contains("one of Requested"),
        "{}",
        refused.message()
    );
}
