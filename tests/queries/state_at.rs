//! State at a position: dev empty just before the first promotion, holding
//! its freight at it; a position the log has not reached is refused; a
//! time before the first pipeline says when it came.

use waybill_proto::v1 as pb;

use crate::{current, Queries};

/// Around `p1`, the promotion of `f1` into dev.
pub(crate) async fn before_and_beyond(mut q: Queries, p1: &pb::CommandReply, f1: String) {
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
    // A time before the project's first pipeline is told when it came, and
    // the time it names finds it.
    let at_time = |project: &str, t: &str| pb::StateAtRequest {
        project: project.into(),
        at: Some(pb::state_at_request::At::Time(t.into())),
    };
    let early = q
        .state_at(at_time("shop", "2000-01-01T00:00:00Z"))
        .await
        .expect_err("before the first pipeline");
    assert_eq!(early.code(), tonic::Code::NotFound, "{early:?}");
    let (said, from) = early
        .message()
        .split_once(" is there from ")
        .expect("says from when");
    assert!(
        said.starts_with(
            "project shop had no pipeline at 2000-01-01T00:00:00Z: its first (position "
        ),
        "{early:?}"
    );
    let from = from.strip_suffix(" on").expect("ends with on");
    let first = q
        .state_at(at_time("shop", from))
        .await
        .expect("state at the time named")
        .into_inner();
    assert!(!first.stages.is_empty(), "{first:?}");
    // A project that never was is not said to have had no pipeline "then".
    let unknown = q
        .state_at(at_time("nope", "2026-01-01T00:00:00Z"))
        .await
        .expect_err("no such project");
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    assert_eq!(unknown.message(), "no project \"nope\"");
}
