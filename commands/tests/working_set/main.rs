//! A command handler that keeps only each project's working set in memory
//! (the rest in its cold store) decides exactly as one that keeps every
//! record: random command sequences, run on both at the same instants, give
//! the same replies, the same events at the same positions, and the same
//! auto-promotion intents, even when nearly every record is moved out after
//! each command. Both run on real sled logs.
//!
//! The parts: `equivalence` (the property tests: random sequences on both
//! handlers, undisturbed, across a restart, and with every state dropped
//! from the cache), `memory` (records really leave memory; the store is one
//! process's), `saved_state` (a clean shutdown's state taken back, a
//! mismatched one folded again) and `concurrency` (states dropped and taken
//! back under load). The pipeline, the project, the users and the handlers
//! they all use are here.

#[path = "../common/mod.rs"]
mod common;
mod concurrency;
mod equivalence;
mod id_start;
mod memory;
mod saved_state;

use std::sync::Arc;

use waybill_commands::auth::{AuthMethod, Principal, Role};
use waybill_commands::handler::{ColdStore, CommandHandler};
use waybill_commands::Command;
use waybill_ledger::domain::PipelineDefinition;
use waybill_ledger::{EventLog, ProjectName, SledLog};

const PIPELINE: &str = r#"{
  "project": "ws",
  "warehouses": [{"name": "images"}, {"name": "config"}],
  "stages": [
    {"name": "dev", "requested_freight": [{"origin": "images", "sources": {"direct": true}},
                                          {"origin": "config", "sources": {"direct": true}}],
     "policy": {"mode": "auto"}},
    {"name": "staging",
     "requested_freight": [{"origin": "images", "sources": {"stages": ["dev"]},
                            "required_soak": "30m"},
                           {"origin": "config", "sources": {"stages": ["dev"]}}],
     "verification": ["integration-tests"],
     "policy": {"mode": "gated", "gates": [{"check": "smoke"}]}},
    {"name": "prod",
     "requested_freight": [{"origin": "images", "sources": {"stages": ["staging"]},
                            "required_soak": "1h"}],
     "policy": {"mode": "manual", "required_approvals": 1}}
  ]
}"#;

/// The command applying [`PIPELINE`].
fn apply_pipeline() -> anyhow::Result<Command> {
    Ok(Command::ApplyPipeline {
        definition: serde_json::from_str::<PipelineDefinition>(PIPELINE)?,
        source_uri: String::new(),
        source_revision: String::new(),
        source_digest: String::new(),
    })
}

fn project() -> ProjectName {
    ProjectName::project("ws").expect("name")
}

fn user(i: u8) -> Principal {
    Principal::new(format!("user-{}", i % 3), vec![], AuthMethod::Token)
}

/// A handler on a fresh sled log in `dir`, with a cold store keeping
/// `hot` records (and as many idempotency keys) in memory, or none.
fn handler(dir: &std::path::Path, hot: Option<usize>) -> CommandHandler {
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(&dir.join("log")).expect("log"));
    let h = common::handler_for_anyone(
        log,
        vec![Role::Promoter, Role::Approver, Role::Bypass, Role::Admin],
    );
    match hot {
        Some(n) => h.with_cold_store(
            ColdStore::open(&dir.join("cold"))
                .expect("cold store")
                .with_hot(n, n),
        ),
        None => h,
    }
}
