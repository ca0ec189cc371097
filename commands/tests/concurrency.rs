//! 32 clients on two command replicas race promotions, approvals and results
//! on one stage. The log they produce must be a serial execution: replaying it
//! through `decide`, every event is exactly what `decide` gives for its
//! command on the state before it. Different projects never block each other.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use waybill_commands::auth::{AuthMethod, Principal, Role};
use waybill_commands::handler::{CommandError, CommandHandler};
use waybill_commands::{decide, Command, Context, Decision, FreightSelector, PromotionResult};
use waybill_ledger::domain::{PipelineDefinition, ProjectState};
use waybill_ledger::testing::NatsServer;
use waybill_ledger::{
    EventLog, EventPayload, JetStreamLog, JetStreamOptions, Position, ProjectName, SledLog,
    StoredEvent,
};

const PIPELINE: &str = r#"{
  "project": "race",
  "warehouses": [{"name": "images"}],
  "stages": [
    {"name": "prod", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
     "policy": {"mode": "manual", "required_approvals": 2}}
  ]
}"#;

fn replica(log: Arc<dyn EventLog>) -> CommandHandler {
    common::handler_for_anyone(log, vec![Role::Promoter, Role::Approver, Role::Admin])
}

fn user(i: usize) -> Principal {
    Principal::new(format!("user-{i}"), vec![], AuthMethod::Token)
}

fn project() -> ProjectName {
    ProjectName::project("race").expect("name")
}

/// A small deterministic generator (no wall clock, no global RNG).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

async fn race(log: Arc<dyn EventLog>) {
    let replicas = [replica(log.clone()), replica(log.clone())];
    let admin = user(99);
    let def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    replicas[0]
        .execute(
            &project(),
            &admin,
            Command::ApplyPipeline {
                definition: def,
                source_uri: String::new(),
                source_revision: String::new(),
                source_digest: String::new(),
            },
            None,
        )
        .await
        .expect("apply");
    let mut freights = Vec::new();
    for i in 0..4 {
        let o = replicas[1]
            .execute(&project(), &admin, common::discovery(i), None)
            .await
            .expect("discover");
        match o.payload {
            Some(EventPayload::FreightDiscovered(d)) => freights.push(d.freight_id),
            other => panic!("{other:?}"),
        }
    }
    let mut tasks = Vec::new();
    for client in 0..32 {
        let handler = replicas[client % 2].clone();
        let freights = freights.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Lcg(client as u64 + 1);
            let me = user(client);
            let (mut ok, mut refused) = (0, 0);
            for _ in 0..12 {
                let state = handler.state(&project()).await.expect("state");
                let promotions: Vec<String> = state.promotions.keys().cloned().collect();
                let pick =
                    |rng: &mut Lcg| promotions.get(rng.next(promotions.len().max(1))).cloned();
                let command = match rng.next(4) {
                    0 => Command::RequestPromotion {
                        stage: "prod".into(),
                        freight: FreightSelector::Named(freights[rng.next(freights.len())].clone()),
                        ticket: String::new(),
                        reason: format!("client {client}"),
                    },
                    1 | 2 => match pick(&mut rng) {
                        Some(p) => Command::ApprovePromotion {
                            promotion: p,
                            comment: String::new(),
                        },
                        None => continue,
                    },
                    _ => match pick(&mut rng) {
                        Some(p) => Command::ReportPromotionResult {
                            promotion: p,
                            result: [
                                PromotionResult::Started,
                                PromotionResult::Succeeded,
                                PromotionResult::Failed,
                            ][rng.next(3)],
                            details: String::new(),
                        },
                        None => continue,
                    },
                };
                match handler.execute(&project(), &me, command, None).await {
                    Ok(_) => ok += 1,
                    Err(CommandError::Rejected(_)) => refused += 1,
                    Err(e) => panic!("client {client}: {e}"),
                }
            }
            (ok, refused)
        }));
    }
    let mut appended = 0;
    for t in tasks {
        appended += t.await.expect("client").0;
    }
    assert!(appended > 20, "the race produced events ({appended})");

    // Replay: every event must be what decide gives on the state before it.
    let mut state = ProjectState::new("race");
    let mut events = log
        .read_project(&project(), Position(1))
        .await
        .expect("read");
    let mut n = 0;
    while let Some(ev) = events.next().await {
        let ev = ev.expect("event");
        let ctx = Context {
            actor: ev.event.actor.clone(),
            groups: vec![],
            now: ev.event.time,
            command_id: ev.event.command_id.clone(),
        };
        let command = command_of(&ev);
        match decide(&state, &ctx, &command) {
            Ok(Decision::Append { payload, .. }) => {
                assert_eq!(payload, ev.event.payload, "event {}", ev.position)
            }
            other => panic!(
                "event {} ({:?}) is not a valid serial decision: {other:?}",
                ev.position, ev.event.payload
            ),
        }
        state.apply(&ev);
        n += 1;
    }
    assert_eq!(
        n,
        appended + 5,
        "every acknowledged command is in the log once"
    );
    // At most one promotion ever ran at a time: the replayed state agrees.
    assert!(state.stages["prod"].running.iter().count() <= 1);
}

/// The command that produced `ev`.
fn command_of(ev: &StoredEvent) -> Command {
    match &ev.event.payload {
        EventPayload::PipelineConfigured(p) => Command::ApplyPipeline {
            definition: serde_json::from_str(&p.definition_json).expect("definition"),
            source_uri: p.source_uri.clone(),
            source_revision: p.source_revision.clone(),
            source_digest: p.source_digest.clone(),
        },
        EventPayload::FreightDiscovered(d) => Command::RecordDiscovery {
            warehouse: d.warehouse.clone(),
            artifacts: d.artifacts.clone(),
            alias: d.alias.clone(),
        },
        EventPayload::PromotionRequested(r) => Command::RequestPromotion {
            stage: r.stage.clone(),
            freight: FreightSelector::Named(r.freight_id.clone()),
            ticket: r.ticket.clone(),
            reason: r.reason.clone(),
        },
        EventPayload::PromotionApproved(a) => Command::ApprovePromotion {
            promotion: a.promotion_id.clone(),
            comment: a.comment.clone(),
        },
        EventPayload::PromotionStarted(s) => Command::ReportPromotionResult {
            promotion: s.promotion_id.clone(),
            result: PromotionResult::Started,
            details: s.executor.clone(),
        },
        EventPayload::PromotionSucceeded(s) => Command::ReportPromotionResult {
            promotion: s.promotion_id.clone(),
            result: PromotionResult::Succeeded,
            details: s.details.clone(),
        },
        EventPayload::PromotionFailed(f) => Command::ReportPromotionResult {
            promotion: f.promotion_id.clone(),
            result: PromotionResult::Failed,
            details: f.details.clone(),
        },
        other => panic!("unexpected event {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_clients_on_the_embedded_log_equal_a_serial_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    race(Arc::new(SledLog::open(dir.path()).expect("sled"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_clients_on_jetstream_equal_a_serial_order() {
    let server = NatsServer::start();
    let log = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect("connect");
    race(Arc::new(log)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_project_does_not_block_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(dir.path()).expect("sled"));
    let h = replica(log);
    let _held = h.hold_project(&project()).await;
    let other = ProjectName::project("other").expect("name");
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.project = "other".into();
    let done = tokio::time::timeout(
        Duration::from_secs(30),
        h.execute(
            &other,
            &user(1),
            Command::ApplyPipeline {
                definition: def,
                source_uri: String::new(),
                source_revision: String::new(),
                source_digest: String::new(),
            },
            None,
        ),
    )
    .await
    .expect("a command on another project completes while this one is held");
    assert!(done.is_ok());
}

/// A replica whose cached state fell behind another's appends by `gap`
/// events catches up on its next command (by reading the few missing
/// events one by one, or the rest as a stream beyond a handful) and
/// decides on the whole history: the other replica's last freight is
/// already known, and its own next event follows the other's.
async fn behind(log: Arc<dyn EventLog>) {
    let (a, b) = (replica(log.clone()), replica(log.clone()));
    let definition: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    let apply = Command::ApplyPipeline {
        definition,
        source_uri: String::new(),
        source_revision: String::new(),
        source_digest: String::new(),
    };
    a.execute(&project(), &user(0), apply, None)
        .await
        .expect("apply");
    let mut version = 0;
    for gap in [1, 3, 8, 9, 25] {
        let mut last = None;
        for _ in 0..gap {
            version += 1;
            last = Some(
                b.execute(&project(), &user(1), common::discovery(version), None)
                    .await
                    .expect("b discovers"),
            );
        }
        let last = last.expect("one at least");
        let again = a
            .execute(&project(), &user(0), common::discovery(version), None)
            .await
            .expect("a re-discovers");
        assert!(again.already_done, "gap {gap}: {again:?}");
        assert_eq!(again.position, last.position, "gap {gap}");
        version += 1;
        let next = a
            .execute(&project(), &user(0), common::discovery(version), None)
            .await
            .expect("a discovers");
        assert!(
            !next.already_done && next.position > last.position,
            "gap {gap}"
        );
        let seq = a.inspect(&project(), |s| s.seq).await.expect("state");
        assert_eq!(
            seq,
            1 + version as u64,
            "gap {gap}: every event applied once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_catches_up_on_the_embedded_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    behind(Arc::new(SledLog::open(dir.path()).expect("sled"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_catches_up_on_jetstream() {
    let server = NatsServer::start();
    let log = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect("connect");
    behind(Arc::new(log)).await;
}
