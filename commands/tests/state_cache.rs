//! The command service's cache of project states keeps a bounded amount of
//! history: beyond its budget the least recently used idle projects are
//! dropped, and a dropped project is folded again from the log when next
//! needed, idempotency keys included.

mod common;

use std::sync::Arc;

use waybill_commands::auth::{AuthMethod, Principal, Role};
use waybill_commands::handler::{CommandHandler, Outcome};
use waybill_commands::Command;
use waybill_ledger::domain::PipelineDefinition;
use waybill_ledger::{EventLog, ProjectName, SledLog};

const PIPELINE: &str = r#"{
  "project": "PROJECT",
  "warehouses": [{"name": "images"}],
  "stages": [
    {"name": "prod", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
     "policy": {"mode": "manual"}}
  ]
}"#;

/// A handler whose cached states may hold `budget` events together.
fn handler(log: Arc<dyn EventLog>, budget: u64) -> CommandHandler {
    common::handler_for_anyone(log, vec![Role::Promoter, Role::Admin]).with_cache_budget(budget)
}

fn admin() -> Principal {
    Principal::new("admin", vec![], AuthMethod::Token)
}

fn name(project: &str) -> ProjectName {
    ProjectName::project(project).expect("name")
}

/// Configures `project` and records `discoveries` freight in it (1 +
/// `discoveries` events), with command ids `<project>-<i>`.
async fn fill(h: &CommandHandler, project: &str, discoveries: usize) {
    let def: PipelineDefinition =
        serde_json::from_str(&PIPELINE.replace("PROJECT", project)).expect("json");
    let apply = Command::ApplyPipeline {
        definition: def,
        source_uri: String::new(),
        source_revision: String::new(),
        source_digest: String::new(),
    };
    h.execute(&name(project), &admin(), apply, None)
        .await
        .expect("apply");
    for i in 0..discoveries {
        let id = format!("{project}-{i}");
        h.execute(&name(project), &admin(), common::discovery(i), Some(id))
            .await
            .expect("discover");
    }
}

async fn retry(h: &CommandHandler, project: &str, i: usize) -> Outcome {
    h.execute(
        &name(project),
        &admin(),
        common::discovery(i),
        Some(format!("{project}-{i}")),
    )
    .await
    .expect("retry")
}

#[tokio::test]
async fn idle_projects_beyond_the_budget_are_dropped_and_folded_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(dir.path()).expect("sled"));
    // Each project below holds 6 events; two of them fit in 12.
    let h = handler(log.clone(), 12);
    fill(&h, "alpha", 5).await;
    fill(&h, "beta", 5).await;
    assert_eq!(h.cached_projects(), ["alpha", "beta"]);
    fill(&h, "gamma", 5).await;
    // alpha was used least recently.
    assert_eq!(h.cached_projects(), ["beta", "gamma"]);

    // A retry on the dropped project finds its original event: the state
    // was folded again from the log, idempotency keys included.
    let first = log
        .read_project(&name("alpha"), waybill_ledger::Position(1))
        .await
        .expect("read");
    let positions: Vec<_> = futures::StreamExt::collect::<Vec<_>>(first)
        .await
        .into_iter()
        .map(|e| e.expect("event").position)
        .collect();
    assert_eq!(positions.len(), 6);
    let again = retry(&h, "alpha", 2).await;
    assert!(again.already_done);
    assert_eq!(again.position, positions[3]);
    assert_eq!(h.state(&name("alpha")).await.expect("state").seq, 6);
    assert_eq!(h.cached_projects(), ["alpha", "gamma"]);
    assert_eq!(
        log.head().await.expect("head").0,
        18,
        "nothing appended twice"
    );
}

#[tokio::test]
async fn a_project_bigger_than_the_budget_is_kept_while_in_use_and_a_held_one_is_never_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(dir.path()).expect("sled"));
    let h = handler(log.clone(), 4);
    fill(&h, "small", 2).await;
    fill(&h, "held", 2).await;
    let guard = h.hold_project(&name("held")).await;
    // 13 events, over the budget on its own: every other idle project goes,
    // this one stays and its commands still see its whole history.
    fill(&h, "big", 12).await;
    assert_eq!(h.cached_projects(), ["big", "held"]);
    assert!(retry(&h, "big", 0).await.already_done);
    drop(guard);
    fill(&h, "small2", 1).await;
    assert_eq!(h.cached_projects(), ["small2"]);
    assert!(retry(&h, "held", 1).await.already_done);
    assert!(retry(&h, "small", 0).await.already_done);
    assert_eq!(log.head().await.expect("head").0, 3 + 3 + 13 + 2);
}
