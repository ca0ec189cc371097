//! The auto-promotion reactor on a real log: freight available to an auto
//! stage is promoted; gated stages wait for their gates; a failed promotion is
//! never retried; two replicas never request the same promotion twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use waybill_commands::auth::{Authorizer, Principal};
use waybill_commands::handler::CommandHandler;
use waybill_commands::reactor::AutoPromoter;
use waybill_commands::{Command, PromotionResult};
use waybill_ledger::domain::{PipelineDefinition, ProjectState};
use waybill_ledger::event::{Artifact, ArtifactKind};
use waybill_ledger::testing::NatsServer;
use waybill_ledger::{
    EventLog, EventPayload, JetStreamLog, JetStreamOptions, Position, ProjectName, SledLog,
};

const PIPELINE: &str = r#"{
  "project": "shop",
  "warehouses": [{"name": "images"}],
  "stages": [
    {"name": "dev", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
     "verification": ["integration-tests"], "policy": {"mode": "auto"}},
    {"name": "staging", "requested_freight": [{"origin": "images", "sources": {"stages": ["dev"]}}],
     "record_only": true,
     "policy": {"mode": "gated", "gates": [{"check": "integration-tests"}]}}
  ]
}"#;

fn handler(log: Arc<dyn EventLog>) -> CommandHandler {
    let authorizer = Authorizer::new(vec![])
        .expect("authorizer")
        .with_insecure_dev(true);
    CommandHandler::new(log, Arc::new(authorizer), "waybill://test")
}

fn project() -> ProjectName {
    ProjectName::project("shop").expect("name")
}

async fn run(
    h: &CommandHandler,
    who: &Principal,
    c: Command,
) -> waybill_commands::handler::Outcome {
    h.execute(&project(), who, c, None).await.expect("command")
}

fn discover(tag: &str) -> Command {
    Command::RecordDiscovery {
        warehouse: "images".into(),
        artifacts: vec![Artifact {
            kind: ArtifactKind::Image,
            name: "shop".into(),
            version: tag.into(),
            digest: String::new(),
        }],
        alias: String::new(),
    }
}

/// Polls the log until `f(state)` holds (bounded).
async fn until(h: &CommandHandler, what: &str, f: impl Fn(&ProjectState) -> bool) -> ProjectState {
    for _ in 0..200 {
        let s = h.state(&project()).await.expect("state");
        if f(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn apply_pipeline(h: &CommandHandler, admin: &Principal) {
    let def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    run(
        h,
        admin,
        Command::ApplyPipeline {
            definition: def,
            source_uri: "test".into(),
            source_revision: String::new(),
            source_digest: String::new(),
        },
    )
    .await;
}

/// An embedded log in a temp dir (kept while the first value lives), with the
/// shop pipeline applied by an anonymous admin.
async fn embedded_shop() -> (
    tempfile::TempDir,
    Arc<dyn EventLog>,
    CommandHandler,
    Principal,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(dir.path()).expect("sled"));
    let h = handler(log.clone());
    let admin = Principal::anonymous();
    apply_pipeline(&h, &admin).await;
    (dir, log, h, admin)
}

async fn scenario(log: Arc<dyn EventLog>) {
    let admin = Principal::anonymous();
    let ci = Principal::anonymous();
    let h = handler(log.clone());
    apply_pipeline(&h, &admin).await;
    // Two replicas of the reactor, each with its own command handler and cache.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut rx = stop_rx.clone();
        let reactor = AutoPromoter::new(handler(log.clone()));
        replicas.push(tokio::spawn(reactor.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        })));
    }

    // 1. New freight is auto-promoted into dev (authorized, waiting for the executor).
    let f1 = match run(&h, &ci, discover("1.0")).await.payload {
        Some(EventPayload::FreightDiscovered(d)) => d.freight_id,
        other => panic!("{other:?}"),
    };
    let s = until(&h, "dev promotion", |s| s.in_flight("dev", &f1).is_some()).await;
    let p1 = s.in_flight("dev", &f1).expect("promotion").id.clone();
    run(
        &h,
        &ci,
        Command::ReportPromotionResult {
            promotion: p1,
            result: PromotionResult::Succeeded,
            details: String::new(),
        },
    )
    .await;

    // 2. Staging is gated: nothing happens until integration tests pass in dev.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(h
        .state(&project())
        .await
        .expect("state")
        .in_flight("staging", &f1)
        .is_none());
    run(
        &h,
        &ci,
        Command::RecordVerification {
            freight: f1.clone(),
            stage: "dev".into(),
            check: "integration-tests".into(),
            passed: true,
            metrics: Default::default(),
            evidence_url: String::new(),
            details: String::new(),
        },
    )
    .await;
    until(&h, "staging current", |s| s.stages["staging"].runs(&f1)).await;

    // 3. A failed promotion is never retried.
    let f2 = match run(&h, &ci, discover("2.0")).await.payload {
        Some(EventPayload::FreightDiscovered(d)) => d.freight_id,
        other => panic!("{other:?}"),
    };
    let s = until(&h, "dev promotion of 2.0", |s| {
        s.in_flight("dev", &f2).is_some()
    })
    .await;
    let p2 = s.in_flight("dev", &f2).expect("promotion").id.clone();
    run(
        &h,
        &ci,
        Command::ReportPromotionResult {
            promotion: p2,
            result: PromotionResult::Failed,
            details: "boom".into(),
        },
    )
    .await;
    // Several reactor ticks later, still no new request for 2.0.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // 4. A burst of freight: every promotion is requested at most once.
    for i in 0..15 {
        run(&h, &ci, discover(&format!("3.{i}"))).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _ = stop_tx.send(true);
    for r in replicas {
        r.await.expect("reactor");
    }

    let mut requested: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut events = log
        .read_project(&project(), Position(1))
        .await
        .expect("read");
    while let Some(ev) = events.next().await {
        let ev = ev.expect("event");
        if let EventPayload::PromotionRequested(r) = &ev.event.payload {
            assert_eq!(ev.event.actor.principal, "svc:auto-promoter");
            *requested
                .entry((r.stage.clone(), r.freight_id.clone()))
                .or_default() += 1;
        }
    }
    for (key, n) in &requested {
        assert_eq!(*n, 1, "{key:?} requested {n} times");
    }
    assert_eq!(
        requested.get(&("dev".into(), f2.clone())),
        Some(&1),
        "the failed one once"
    );
    assert!(requested.contains_key(&("staging".into(), f1.clone())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_promotion_on_the_embedded_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    scenario(Arc::new(SledLog::open(dir.path()).expect("sled"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_promotion_on_jetstream() {
    let server = NatsServer::start();
    let log = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect("connect");
    scenario(Arc::new(log)).await;
}

/// A reactor started after the fact promotes what is due (one sweep of every
/// project once it has read up to the head it found), and a restarted one
/// requests nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactor_started_late_sweeps_every_project_once() {
    let (_dir, log, h, admin) = embedded_shop().await;
    // History the reactor never saw: a hundred discoveries before it starts.
    let mut last = String::new();
    for i in 0..100 {
        last = match run(&h, &admin, discover(&format!("0.{i}"))).await.payload {
            Some(EventPayload::FreightDiscovered(d)) => d.freight_id,
            other => panic!("{other:?}"),
        };
    }
    for round in 0..2 {
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let reactor = AutoPromoter::new(handler(log.clone()));
        let task = tokio::spawn(reactor.run(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        if round == 0 {
            until(&h, "dev promotion of the newest", |s| {
                s.in_flight("dev", &last).is_some()
            })
            .await;
        }
        // Several ticks.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let _ = stop_tx.send(true);
        task.await.expect("reactor");
    }
    let mut requested = Vec::new();
    let mut events = log
        .read_project(&project(), Position(1))
        .await
        .expect("read");
    while let Some(ev) = events.next().await {
        if let EventPayload::PromotionRequested(r) = ev.expect("event").event.payload {
            requested.push((r.stage, r.freight_id));
        }
    }
    assert_eq!(
        requested,
        vec![("dev".to_string(), last)],
        "one request, for the newest"
    );
}

const MANUAL_PIPELINE: &str = r#"{
  "project": "ledger",
  "warehouses": [{"name": "images"}],
  "stages": [
    {"name": "prod", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
     "policy": {"mode": "manual"}}
  ]
}"#;

/// A project whose pipeline has only manual stages is never evaluated: the
/// reactor does not load its state (not at its first sweep, not on its
/// events, not on a tick), while it promotes into the auto project as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reactor_never_loads_a_project_without_auto_stages() {
    let (_dir, log, h, admin) = embedded_shop().await;
    let manual = ProjectName::project("ledger").expect("name");
    let definition: PipelineDefinition = serde_json::from_str(MANUAL_PIPELINE).expect("json");
    let apply = Command::ApplyPipeline {
        definition,
        source_uri: "test".into(),
        source_revision: String::new(),
        source_digest: String::new(),
    };
    h.execute(&manual, &admin, apply, None)
        .await
        .expect("apply");
    h.execute(&manual, &admin, discover("1.0"), None)
        .await
        .expect("discover");

    let reactor_handler = handler(log.clone());
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(AutoPromoter::new(reactor_handler.clone()).run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    let fresh = match run(&h, &admin, discover("2.0")).await.payload {
        Some(EventPayload::FreightDiscovered(d)) => d.freight_id,
        other => panic!("{other:?}"),
    };
    until(&h, "dev promotion of the new freight", |s| {
        s.in_flight("dev", &fresh).is_some()
    })
    .await;
    // An event in the manual project after the reactor caught up, then ticks.
    h.execute(&manual, &admin, discover("1.1"), None)
        .await
        .expect("discover");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop_tx.send(true);
    task.await.expect("reactor");
    assert_eq!(reactor_handler.cached_projects(), vec!["shop".to_string()]);
}
