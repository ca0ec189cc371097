//! Helpers shared by the command handler's integration tests.

use std::sync::Arc;

use waybill_commands::auth::{Authorizer, BindingConfig, Role, Subject};
use waybill_commands::handler::CommandHandler;
use waybill_commands::Command;
use waybill_ledger::event::{Artifact, ArtifactKind};
use waybill_ledger::EventLog;

/// A handler on `log` that grants everyone `roles` everywhere.
pub fn handler_for_anyone(log: Arc<dyn EventLog>, roles: Vec<Role>) -> CommandHandler {
    let bindings = vec![BindingConfig {
        subjects: vec![Subject::Anyone],
        roles,
        projects: vec![],
        stages: vec![],
    }];
    let authorizer = Authorizer::new(bindings).expect("authorizer");
    CommandHandler::new(log, Arc::new(authorizer), "waybill://test")
}

/// The discovery of image `app` version `i`, alias `v<i>`, in warehouse `images`.
pub fn discovery(i: usize) -> Command {
    Command::RecordDiscovery {
        warehouse: "images".into(),
        artifacts: vec![Artifact {
            kind: ArtifactKind::Image,
            name: "app".into(),
            version: format!("{i}"),
            digest: String::new(),
        }],
        alias: format!("v{i}"),
    }
}
