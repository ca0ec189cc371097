//! Several command replicas on one log: each decides on its cached state,
//! which is behind whatever the others appended since. An accepted command
//! learns of that from its append's conflict; a refusal is checked against
//! the log before it is given, so that one replica does not refuse what
//! another just made possible ("not found" for freight or a promotion
//! recorded through the other).

mod common;

use waybill_commands::auth::{AuthMethod, Principal};
use waybill_commands::command::FreightSelector;
use waybill_commands::handler::CommandError;
use waybill_commands::rejection::Rejection;
use waybill_commands::Command;

fn user(name: &str) -> Principal {
    Principal::new(name, vec![], AuthMethod::Token)
}

#[tokio::test]
async fn a_replica_behind_the_log_reads_it_before_it_refuses() {
    let common::Replicas {
        log,
        shop,
        a,
        b,
        dir: _dir,
    } = common::Replicas::start().await;
    b.execute(&shop, &user("ci"), common::discovery(1), None)
        .await
        .expect("b discovers v1");
    a.execute(&shop, &user("ci"), common::discovery(2), None)
        .await
        .expect("a discovers v2");

    // b has not seen v2: it reads the log instead of refusing "not found".
    b.execute(
        &shop,
        &user("alice"),
        Command::RequestPromotion {
            stage: "prod".into(),
            freight: FreightSelector::Named("v2".into()),
            ticket: String::new(),
            reason: String::new(),
        },
        Some("req-1".into()),
    )
    .await
    .expect("b requests v2, which a recorded");
    let promotion = waybill_commands::promotion_id("req-1");
    // a has not seen the request: it approves it rather than not finding it.
    a.execute(
        &shop,
        &user("bob"),
        Command::ApprovePromotion {
            promotion: promotion.clone(),
            comment: String::new(),
        },
        None,
    )
    .await
    .expect("a approves the promotion b recorded");

    // What the log does not hold is still refused, and nothing is appended.
    let head = log.head().await.expect("head");
    let refused = b
        .execute(
            &shop,
            &user("bob"),
            Command::ApprovePromotion {
                promotion: "prm-0000000000000000".into(),
                comment: String::new(),
            },
            None,
        )
        .await
        .expect_err("no such promotion");
    assert!(
        matches!(refused, CommandError::Rejected(Rejection::NotFound { .. })),
        "{refused:?}"
    );
    assert_eq!(log.head().await.expect("head"), head);
}
