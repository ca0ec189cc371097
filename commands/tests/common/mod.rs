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

/// Two command replicas, `a` and `b`, on one embedded log, whose project
/// `shop` has one manual stage, `prod` (one approval), applied through `a`.
#[allow(dead_code)] // not every test crate that shares this module uses it
pub struct Replicas {
    pub log: Arc<dyn EventLog>,
    pub shop: waybill_ledger::ProjectName,
    pub a: CommandHandler,
    pub b: CommandHandler,
    /// Holds the log's directory: keep it bound while the log is used.
    pub dir: tempfile::TempDir,
}

#[allow(dead_code)]
impl Replicas {
    pub async fn start() -> Replicas {
        const PIPELINE: &str = r#"{
          "project": "shop",
          "warehouses": [{"name": "images"}],
          "stages": [
            {"name": "prod", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
             "policy": {"mode": "manual", "required_approvals": 1}}
          ]
        }"#;
        let dir = tempfile::tempdir().expect("tempdir");
        let log: Arc<dyn EventLog> =
            Arc::new(waybill_ledger::SledLog::open(dir.path()).expect("sled"));
        let replica = || handler_for_anyone(log.clone(), vec![Role::Promoter, Role::Admin]);
        let (a, b) = (replica(), replica());
        let shop = waybill_ledger::ProjectName::project("shop").expect("name");
        let apply = Command::ApplyPipeline {
            definition: serde_json::from_str(PIPELINE).expect("json"),
            source_uri: String::new(),
            source_revision: String::new(),
            source_digest: String::new(),
        };
        let alice = waybill_commands::auth::Principal::new(
            "alice",
            vec![],
            waybill_commands::auth::AuthMethod::Token,
        );
        a.execute(&shop, &alice, apply, None).await.expect("apply");
        Replicas {
            log,
            shop,
            a,
            b,
            dir,
        }
    }
}
