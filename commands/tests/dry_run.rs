//! `validate_only`: `CommandHandler::check` decides a command as `execute`
//! would, on the project as the log has it now (not as a replica's cached
//! state last saw it), and appends nothing.

mod common;

use waybill_commands::auth::{AuthMethod, Principal};
use waybill_commands::command::FreightSelector;
use waybill_commands::handler::CommandError;
use waybill_commands::rejection::Reason;
use waybill_commands::Command;
use waybill_ledger::EventPayload;

fn alice() -> Principal {
    Principal::new("alice", vec![], AuthMethod::Token)
}

fn promote(freight: &str) -> Command {
    Command::RequestPromotion {
        stage: "prod".into(),
        freight: FreightSelector::Named(freight.into()),
        ticket: String::new(),
        reason: String::new(),
    }
}

fn reason(e: CommandError) -> Option<Reason> {
    match e {
        CommandError::Rejected(r) => r.reason(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_dry_run_decides_on_the_log_as_it_is_and_appends_nothing() {
    let common::Replicas {
        log,
        shop,
        a,
        b,
        dir: _dir,
    } = common::Replicas::start().await;
    a.execute(&shop, &alice(), common::discovery(1), None)
        .await
        .expect("discover");

    // Replica b folds the project for the dry run: accepted, nothing appended.
    let head = log.head().await.expect("head");
    let dry = b
        .check(&shop, &alice(), promote("v1"), None)
        .await
        .expect("would be accepted");
    assert!(!dry.already_done);
    assert!(dry.event_id.is_nil());
    assert_eq!(dry.position, head);
    match &dry.payload {
        Some(EventPayload::PromotionRequested(r)) => assert_eq!(r.stage, "prod"),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.head().await.expect("head"), head, "a dry run appended");

    // Replica a requests it; b's cached state has not seen that, but its
    // dry run reads the log first and refuses a second one.
    let done = a
        .execute(&shop, &alice(), promote("v1"), Some("req-1".into()))
        .await
        .expect("request");
    let refused = b
        .check(&shop, &alice(), promote("v1"), None)
        .await
        .expect_err("in flight");
    assert_eq!(reason(refused), Some(Reason::AlreadyInFlight));
    // A dry run with the key of an executed command answers its outcome.
    let again = b
        .check(&shop, &alice(), promote("v1"), Some("req-1".into()))
        .await
        .expect("already done");
    assert!(again.already_done);
    assert_eq!(
        (again.event_id, again.position),
        (done.event_id, done.position)
    );
    assert_eq!(log.head().await.expect("head"), done.position);
}
