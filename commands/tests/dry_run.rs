//! `validate_only`: `CommandHandler::check` decides a command as `execute`
//! would, on the project as the log has it now (not as a replica's cached
//! state last saw it), and appends nothing.

mod common;

use std::sync::Arc;

use waybill_commands::auth::{AuthMethod, Principal, Role};
use waybill_commands::command::FreightSelector;
use waybill_commands::handler::{CommandError, CommandHandler};
use waybill_commands::rejection::Reason;
use waybill_commands::Command;
use waybill_ledger::domain::PipelineDefinition;
use waybill_ledger::{EventLog, EventPayload, ProjectName, SledLog};

const PIPELINE: &str = r#"{
  "project": "shop",
  "warehouses": [{"name": "images"}],
  "stages": [
    {"name": "prod", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
     "policy": {"mode": "manual", "required_approvals": 1}}
  ]
}"#;

fn replica(log: Arc<dyn EventLog>) -> CommandHandler {
    common::handler_for_anyone(log, vec![Role::Promoter, Role::Admin])
}

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
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(dir.path()).expect("sled"));
    let shop = ProjectName::project("shop").expect("name");
    let (a, b) = (replica(log.clone()), replica(log.clone()));
    let def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    let apply = Command::ApplyPipeline {
        definition: def,
        source_uri: String::new(),
        source_revision: String::new(),
        source_digest: String::new(),
    };
    a.execute(&shop, &alice(), apply, None)
        .await
        .expect("apply");
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
