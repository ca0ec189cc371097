//! Opening each backend on fresh storage, and building test events.

use std::sync::Arc;

use futures::StreamExt;
use waybill_ledger::event::{PromotionApproved, PromotionRequested};
use waybill_ledger::testing::NatsServer;
use waybill_ledger::{
    Actor, EventLog, EventPayload, JetStreamLog, JetStreamOptions, NewEvent, Position, ProjectName,
    SledLog, StoredEvent,
};

/// A log plus whatever keeps its storage alive.
pub struct Harness {
    pub log: Arc<dyn EventLog>,
    pub server: Option<NatsServer>,
    _dir: Option<tempfile::TempDir>,
}

pub fn sled() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path()).expect("open sled");
    Harness {
        log: Arc::new(log),
        server: None,
        _dir: Some(dir),
    }
}

pub async fn jetstream() -> Harness {
    let server = NatsServer::start();
    let log = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect("connect");
    Harness {
        log: Arc::new(log),
        server: Some(server),
        _dir: None,
    }
}

pub fn project(name: &str) -> ProjectName {
    ProjectName::project(name).expect("valid test project name")
}

pub fn actor() -> Actor {
    Actor {
        principal: "alice@example.com".into(),
        auth_method: "token".into(),
    }
}

/// An approval event with a unique command id.
pub fn approval(command_id: &str) -> NewEvent {
    NewEvent::new(
        EventPayload::PromotionApproved(PromotionApproved {
            promotion_id: "promo-1".into(),
            comment: format!("approved by {command_id}"),
        }),
        actor(),
        command_id,
    )
}

/// A promotion request into `stage`.
pub fn request(command_id: &str, stage: &str) -> NewEvent {
    NewEvent::new(
        EventPayload::PromotionRequested(PromotionRequested {
            promotion_id: format!("promo-{command_id}"),
            stage: stage.into(),
            freight_id: "f".repeat(64),
            ticket: "CHG-1".into(),
            reason: String::new(),
        }),
        actor(),
        command_id,
    )
}

pub async fn collect(log: &dyn EventLog, from: Position) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut stream = log.read_all(from).await.expect("read_all");
    while let Some(ev) = stream.next().await {
        out.push(ev.expect("event"));
    }
    out
}

pub async fn collect_project(log: &dyn EventLog, p: &ProjectName) -> Vec<StoredEvent> {
    collect_project_from(log, p, Position(1)).await
}

pub async fn collect_project_from(
    log: &dyn EventLog,
    p: &ProjectName,
    from: Position,
) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut stream = log.read_project(p, from).await.expect("read_project");
    while let Some(ev) = stream.next().await {
        out.push(ev.expect("event"));
    }
    out
}
