//! The projection runner on a real log: read models follow the log (each
//! freight, promotion and stage equals a fold of the log, with most of them
//! evicted from memory), history filters by stage / freight / actor / type,
//! a restart resumes from its checkpoint and ends equal to a clean rebuild,
//! key by key.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{assert_models_equal_fold, discovered, run_until};

use waybill_ledger::event::{
    PipelineConfigured, PromotionRequested, PromotionStarted, PromotionSucceeded,
};
use waybill_ledger::testing::{mutable_jetstream, NatsServer};
use waybill_ledger::{Actor, EventLog, EventPayload, NewEvent, Position, ProjectName, SledLog};
use waybill_projections::{HistoryFilter, Projections};

const PIPELINE: &str = r#"{"project":"shop","warehouses":[{"name":"images"}],"stages":[
 {"name":"dev","record_only":true,"requested_freight":[{"origin":"images","sources":{"direct":true}}],"policy":{"mode":"auto"}}]}"#;

fn actor(name: &str) -> Actor {
    Actor {
        principal: name.into(),
        auth_method: "token".into(),
    }
}

async fn append(log: &dyn EventLog, project: &str, who: &str, payload: EventPayload, n: &mut u64) {
    let p = ProjectName::project(project).expect("name");
    let head = log.last_position(&p).await.expect("head");
    *n += 1;
    let mut ev = NewEvent::new(payload, actor(who), format!("{project}-{n}"));
    ev.subject = "test".into();
    log.append(&p, head, ev).await.expect("append");
}

/// A pipeline, `freights` discoveries and a promotion of each into dev, per project.
async fn populate(log: &dyn EventLog, projects: &[&str], freights: usize) {
    // Command (and promotion) ids unique across calls.
    let mut n = log.head().await.expect("head").0;
    for project in projects {
        let def = PIPELINE.replace("\"shop\"", &format!("{project:?}"));
        let configured = EventPayload::PipelineConfigured(PipelineConfigured {
            definition_json: def,
            source_uri: "test".into(),
            source_revision: String::new(),
            source_digest: String::new(),
        });
        append(log, project, "alice", configured, &mut n).await;
        for i in 0..freights {
            let id = format!("f{i:04}");
            let discovered = discovered(i as u64, "");
            append(log, project, "ci", discovered, &mut n).await;
            let requested = EventPayload::PromotionRequested(PromotionRequested {
                promotion_id: format!("prm-{n}"),
                stage: "dev".into(),
                freight_id: id,
                ticket: String::new(),
                reason: "test".into(),
            });
            append(log, project, "svc:auto-promoter", requested, &mut n).await;
        }
    }
}

/// A stage the executor deploys: its promotions stay active (queued) until
/// the executor reports.
const DEPLOYED: &str = r#"{"project":"ops","warehouses":[{"name":"images"}],"stages":[
 {"name":"prod","requested_freight":[{"origin":"images","sources":{"direct":true}}],"policy":{"mode":"manual"}}]}"#;

/// The `ops` project: its pipeline, two freight, a promotion of each.
async fn deployed(log: &dyn EventLog) {
    let mut n = log.head().await.expect("head").0;
    let configured = EventPayload::PipelineConfigured(PipelineConfigured {
        definition_json: DEPLOYED.into(),
        source_uri: "test".into(),
        source_revision: String::new(),
        source_digest: String::new(),
    });
    append(log, "ops", "alice", configured, &mut n).await;
    for i in 0..2 {
        append(log, "ops", "ci", discovered(i, "v1"), &mut n).await;
        let requested = EventPayload::PromotionRequested(PromotionRequested {
            promotion_id: format!("ops-{i}"),
            stage: "prod".into(),
            freight_id: format!("f{i:04}"),
            ticket: String::new(),
            reason: "release".into(),
        });
        append(log, "ops", "alice", requested, &mut n).await;
    }
}

/// The executor runs and completes `ops-0`.
async fn executed(log: &dyn EventLog) {
    let mut n = log.head().await.expect("head").0;
    let started = EventPayload::PromotionStarted(PromotionStarted {
        promotion_id: "ops-0".into(),
        executor: "gitops".into(),
    });
    append(log, "ops", "svc:executor", started, &mut n).await;
    let done = EventPayload::PromotionSucceeded(PromotionSucceeded {
        promotion_id: "ops-0".into(),
        details: "pushed".into(),
    });
    append(log, "ops", "svc:executor", done, &mut n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_follow_the_log_and_resume_equal_to_a_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(&dir.path().join("log")).expect("log"));
    // More freight than a project keeps in memory: most are evicted.
    populate(&*log, &["shop", "blog"], 150).await;
    deployed(&*log).await;
    let half = log.head().await.expect("head");

    // First run: catch up on everything so far.
    let views = dir.path().join("views");
    let p = Projections::open(&views).expect("open");
    run_until(&p, log.clone(), half).await;
    let shop = p.project("shop").expect("shop state");
    assert_eq!(
        shop.stages["dev"].latest().map(|c| c.freight.as_str()),
        Some("f0149")
    );
    assert!(shop.freight.len() <= 2 * waybill_projections::models::HOT);
    assert_models_equal_fold(&p, &*log).await;
    let queued = p.project("ops").expect("ops").stages["prod"].queue.clone();
    assert_eq!(queued, ["ops-0", "ops-1"]);
    assert_eq!(
        p.projects(),
        vec!["blog".to_string(), "ops".to_string(), "shop".to_string()]
    );
    drop(p);

    // More events while it is down, then a restart: it resumes.
    populate(&*log, &["docs"], 10).await;
    populate(&*log, &["shop"], 5).await;
    executed(&*log).await;
    let head = log.head().await.expect("head");
    let p = Projections::open(&views).expect("reopen");
    assert_eq!(p.applied(), half, "resumes from its checkpoint");
    // The active promotions are loaded back into memory.
    let ops = p.project("ops").expect("ops");
    assert_eq!(ops.promotions.len(), 2);
    assert!(ops.in_flight("prod", "f0000").is_some());
    run_until(&p, log.clone(), head).await;

    // A clean rebuild in a fresh store gives the same states and history.
    let fresh = Projections::open(&dir.path().join("fresh")).expect("fresh");
    run_until(&fresh, log.clone(), head).await;
    assert_models_equal_fold(&p, &*log).await;
    assert_models_equal_fold(&fresh, &*log).await;
    let (resumed_keys, rebuilt_keys) = (common::views(&p), common::views(&fresh));
    assert_eq!(resumed_keys.len(), rebuilt_keys.len());
    for (k, v) in &rebuilt_keys {
        assert_eq!(
            resumed_keys.get(k),
            Some(v),
            "key {:?}",
            String::from_utf8_lossy(k)
        );
    }
    let all = HistoryFilter::default();
    let resumed = p
        .store()
        .history(&all, Position(1), 10_000)
        .expect("history");
    let rebuilt = fresh
        .store()
        .history(&all, Position(1), 10_000)
        .expect("history");
    assert_eq!(resumed.len() as u64, head.0);
    assert_eq!(resumed, rebuilt);

    // Filters use the indexes.
    let by_stage = HistoryFilter {
        project: Some("shop".into()),
        stage: Some("dev".into()),
        ..Default::default()
    };
    let items = p
        .store()
        .history(&by_stage, Position(1), 10_000)
        .expect("history");
    assert_eq!(items.len(), 155);
    assert!(items
        .iter()
        .all(|i| i.stage == "dev" && i.project == "shop" && i.event_type == "PromotionRequested"));
    assert!(items.windows(2).all(|w| w[0].position < w[1].position));
    let ops = p.project("ops").expect("ops");
    assert_eq!(ops.stages["prod"].queue, ["ops-1"]);
    assert_eq!(
        ops.stages["prod"].latest().map(|c| c.freight.as_str()),
        Some("f0000")
    );
    let by_actor = HistoryFilter {
        actor: Some("alice".into()),
        ..Default::default()
    };
    assert_eq!(
        p.store()
            .history(&by_actor, Position(1), 100)
            .expect("history")
            .len(),
        7
    );
    let by_freight = HistoryFilter {
        project: Some("docs".into()),
        freight: Some("f0003".into()),
        ..Default::default()
    };
    let items = p
        .store()
        .history(&by_freight, Position(1), 100)
        .expect("history");
    assert_eq!(
        items
            .iter()
            .map(|i| i.event_type.as_str())
            .collect::<Vec<_>>(),
        ["FreightDiscovered", "PromotionRequested"]
    );
    let by_type = HistoryFilter {
        event_type: Some("PipelineConfigured".into()),
        ..Default::default()
    };
    let items = p
        .store()
        .history(&by_type, Position(1), 100)
        .expect("history");
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|i| i.policy_version == i.position));
    // Every item carries its chain hash and the policy version in force.
    assert!(resumed
        .iter()
        .all(|i| i.hash.len() == 64 && i.policy_version > 0));
    let limited = p.store().history(&all, Position(5), 3).expect("history");
    assert_eq!(
        limited.iter().map(|i| i.position).collect::<Vec<_>>(),
        [5, 6, 7]
    );
    // Backwards, through each index: the same entries newest first, from
    // the end or from the middle, and the most recent ones with a limit.
    let by_project = HistoryFilter {
        project: Some("shop".into()),
        ..Default::default()
    };
    for filter in [
        &all,
        &by_project,
        &by_stage,
        &by_actor,
        &by_freight,
        &by_type,
    ] {
        let forwards = p
            .store()
            .history(filter, Position(1), 10_000)
            .expect("history");
        let back = |before: u64, limit: usize| {
            let mut out = Vec::new();
            p.store()
                .history_back(filter, Position(before), limit, |h| {
                    out.push(h.position);
                    true
                })
                .expect("history back");
            out
        };
        let middle = forwards.get(forwards.len() / 2).map_or(1, |h| h.position);
        for before in [u64::MAX, middle] {
            let want: Vec<u64> = forwards
                .iter()
                .rev()
                .map(|h| h.position)
                .filter(|p| *p < before)
                .collect();
            assert_eq!(back(before, 10_000), want, "{filter:?} before {before}");
            let recent: Vec<u64> = want.iter().take(3).copied().collect();
            assert_eq!(back(before, 3), recent, "{filter:?} before {before}, 3");
        }
    }
}

/// A runner catching up fills large batches until it reaches the log's head
/// as it was at its start. When that last event is never delivered (here
/// deleted behind Waybill's back, on a test stream without the deny flags),
/// it still applies everything before it, then follows new events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_catching_up_does_not_wait_for_a_deleted_last_event() {
    let server = NatsServer::start();
    let js = mutable_jetstream(&server.url()).await;
    let tamper = js.context().clone();
    let log: Arc<dyn EventLog> = Arc::new(js);
    populate(&*log, &["shop"], 20).await;
    let head = log.head().await.expect("head");
    let stream = tamper.get_stream("WAYBILL").await.expect("stream");
    assert!(stream.delete_message(head.0).await.expect("delete"));
    assert_eq!(log.head().await.expect("head"), head, "the head stays");

    let dir = tempfile::tempdir().expect("tempdir");
    let p = Projections::open(&dir.path().join("views")).expect("open");
    let runner = common::spawn_runner(&p, log.clone());
    let before = Position(head.0 - 1);
    let applied = p.wait_for(before, Duration::from_secs(20)).await;
    assert_eq!(applied, Ok(before), "every event before the deleted one");
    populate(&*log, &["blog"], 1).await;
    let later = log.head().await.expect("head");
    let applied = p.wait_for(later, Duration::from_secs(20)).await;
    assert_eq!(applied, Ok(later), "and new events after it");
    assert!(p.project("blog").is_some());
    common::stop(runner).await;
}

/// A caught-up runner lets a batch gather events for a moment before it
/// commits, unless a reader waits for one of them: an event nobody waits for
/// (here followed only through `subscribe`, which does not count as
/// waiting) still lands on its own, and one a reader waits for lands too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_whether_or_not_a_reader_waits_for_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(&dir.path().join("log")).expect("log"));
    populate(&*log, &["shop"], 3).await;
    let p = Projections::open(&dir.path().join("views")).expect("open");
    let runner = common::spawn_runner(&p, log.clone());
    let head = log.head().await.expect("head");
    assert_eq!(p.wait_for(head, Duration::from_secs(20)).await, Ok(head));

    let mut applied = p.subscribe();
    populate(&*log, &["blog"], 1).await;
    let unwatched = log.head().await.expect("head");
    let landed = tokio::time::timeout(
        Duration::from_secs(20),
        applied.wait_for(|at| *at >= unwatched),
    )
    .await;
    assert!(landed.is_ok_and(|r| r.is_ok()), "{unwatched} never landed");
    assert!(p.project("blog").is_some());

    populate(&*log, &["docs"], 1).await;
    let waited = log.head().await.expect("head");
    assert_eq!(
        p.wait_for(waited, Duration::from_secs(20)).await,
        Ok(waited)
    );
    assert!(p.project("docs").is_some());
    common::stop(runner).await;
}
