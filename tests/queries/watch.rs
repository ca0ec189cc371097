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
}

/// A watch of one project while another is busy: every event of the
/// watched project arrives, in order, and nothing of the other. (The
/// server skips what it has read and found nothing of the project in,
/// instead of reading it again while it waits.)
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
    let mut watch = q
        .watch(pb::WatchRequest {
            project: "shop".into(),
            from_position: head + 1,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut expected = Vec::new();
    for i in 0..10 {
        for j in 0..3 {
            c.record_discovery(pb::RecordDiscoveryRequest {
                project: "other".into(),
                ..crate::common::discovery(&format!("7.{i}.{j}"), "")
            })
            .await
            .expect("discover in other");
        }
        let (_, position) = discover(&mut c, &format!("8.{i}")).await;
        expected.push(position);
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), watch.next())
            .await
            .expect("the next entry in time")
            .expect("entry")
            .expect("ok");
        assert_eq!(e.project, "shop", "{e:?}");
        got.push(e.position);
    }
    assert_eq!(got, expected);
}
