//! State at a position: dev empty just before the first promotion, holding
//! its freight at it; a position the log has not reached is refused.

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
}
