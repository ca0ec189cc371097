//! A command handler that keeps only each project's working set in memory
//! (the rest in its cold store) decides exactly as one that keeps every
//! record: random command sequences, run on both at the same instants, give
//! the same replies, the same events at the same positions, and the same
//! auto-promotion intents, even when nearly every record is moved out after
//! each command. Both run on real sled logs.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use waybill_commands::auth::{AuthMethod, Principal, Role};
use waybill_commands::clock::Clock;
use waybill_commands::handler::{ColdStore, CommandHandler};
use waybill_commands::reactor::due;
use waybill_commands::{Command, FreightSelector, PromotionResult};
use waybill_ledger::domain::PipelineDefinition;
use waybill_ledger::{EventLog, EventPayload, ProjectName, SledLog};

const PIPELINE: &str = r#"{
  "project": "ws",
  "warehouses": [{"name": "images"}],
  "stages": [
    {"name": "dev", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
     "policy": {"mode": "auto"}},
    {"name": "staging",
     "requested_freight": [{"origin": "images", "sources": {"stages": ["dev"]},
                            "required_soak": "30m"}],
     "verification": ["integration-tests"],
     "policy": {"mode": "gated", "gates": [{"check": "smoke"}]}},
    {"name": "prod",
     "requested_freight": [{"origin": "images", "sources": {"stages": ["staging"]},
                            "required_soak": "1h"}],
     "policy": {"mode": "manual", "required_approvals": 1}}
  ]
}"#;

const STAGES: [&str; 3] = ["dev", "staging", "prod"];
const CHECKS: [&str; 2] = ["integration-tests", "smoke"];
const FREIGHT: usize = 10;

fn project() -> ProjectName {
    ProjectName::project("ws").expect("name")
}

fn user(i: u8) -> Principal {
    Principal::new(format!("user-{}", i % 3), vec![], AuthMethod::Token)
}

/// One step: what to do, two choices, and minutes to let pass first.
#[derive(Debug, Clone)]
struct Step {
    op: u8,
    a: u8,
    b: u8,
    minutes: u16,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0u8..10, any::<u8>(), any::<u8>(), 0u16..50).prop_map(|(op, a, b, minutes)| Step {
            op,
            a,
            b,
            minutes,
        }),
        1..90,
    )
}

/// The command a step stands for, given the freight discovered and the
/// promotions requested so far; `None` when it needs one and there is none.
fn command(step: &Step, freight: &[String], promotions: &[String]) -> Option<Command> {
    let (a, b) = (step.a as usize, step.b as usize);
    let stage = STAGES[b % 3].to_string();
    // Freight by alias or by id.
    let named = |i: usize| {
        if b % 2 == 0 || freight.is_empty() {
            format!("v{}", i % FREIGHT)
        } else {
            freight[i % freight.len()].clone()
        }
    };
    let promotion = || promotions.get(a % promotions.len().max(1)).cloned();
    Some(match step.op {
        0 | 1 => common::discovery(a % FREIGHT),
        2 => Command::RecordVerification {
            freight: named(a),
            stage,
            check: CHECKS[a % 2].to_string(),
            passed: b % 5 != 0,
            metrics: Default::default(),
            evidence_url: String::new(),
            details: String::new(),
        },
        3 | 4 => Command::RequestPromotion {
            stage,
            freight: if a % 3 == 0 {
                FreightSelector::NewestAvailable
            } else {
                FreightSelector::Named(named(a))
            },
            ticket: String::new(),
            reason: String::new(),
        },
        5 => Command::ApprovePromotion {
            promotion: promotion()?,
            comment: String::new(),
        },
        6 => Command::ReportPromotionResult {
            promotion: promotion()?,
            result: [
                PromotionResult::Started,
                PromotionResult::Succeeded,
                PromotionResult::Succeeded,
                PromotionResult::Failed,
            ][b % 4],
            details: String::new(),
        },
        7 => match b % 3 {
            0 => Command::RejectPromotion {
                promotion: promotion()?,
                reason: "no".into(),
            },
            1 => Command::AbortPromotion {
                promotion: promotion()?,
                reason: "stop".into(),
            },
            _ => Command::ApproveFreight {
                freight: named(a),
                stage,
                reason: "emergency".into(),
                ticket: String::new(),
            },
        },
        _ => Command::Rollback {
            stage,
            ticket: String::new(),
            reason: String::new(),
        },
    })
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

/// The project states a clean shutdown left in `h`'s store, untaken.
fn snapshots(h: &CommandHandler) -> usize {
    h.cold_store()
        .map(|s| s.snapshots().expect("snapshots"))
        .unwrap_or(0)
}

/// What a reply says, without the event ids (each log makes its own).
fn reply(
    r: &Result<waybill_commands::handler::Outcome, waybill_commands::handler::CommandError>,
) -> String {
    match r {
        Ok(o) => format!("ok {} {} {:?}", o.position, o.already_done, o.payload),
        Err(e) => format!("err {e}"),
    }
}

/// How the working handler is disturbed between steps.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Disturb {
    None,
    /// Shut down cleanly (its state saved) and started again on the same
    /// log and store before this step.
    Restart(usize),
    /// After every step, the project's state is dropped from the cache (a
    /// zero budget, and another project used) and so saved in the store.
    Evict,
}

/// Runs `steps` on both handlers, disturbing the working one as `disturb`
/// says.
async fn run(steps: Vec<Step>, hot: usize, disturb: Disturb) -> Result<(), TestCaseError> {
    let restart = match disturb {
        Disturb::Restart(at) => Some(at),
        _ => None,
    };
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let full = handler(dirs.0.path(), None);
    let mut working = handler(dirs.1.path(), Some(hot));
    if disturb == Disturb::Evict {
        working = working.with_cache_budget(0);
    }
    let mut evictions = 0u64;
    let mut now: DateTime<Utc> = "2026-11-30T09:00:00Z".parse().expect("time");
    let admin = user(0);
    let apply = Command::ApplyPipeline {
        definition: serde_json::from_str::<PipelineDefinition>(PIPELINE).expect("pipeline"),
        source_uri: String::new(),
        source_revision: String::new(),
        source_digest: String::new(),
    };
    let mut past: Vec<(Command, String, Principal)> = vec![(apply, "apply".into(), admin)];
    let (mut freight, mut promotions) = (Vec::new(), Vec::new());
    for (i, step) in steps.iter().enumerate() {
        now += Duration::minutes(i64::from(step.minutes));
        if restart == Some(i) && i > 0 {
            let saved = working
                .save_state()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(saved, 1);
            drop(working);
            working = handler(dirs.1.path(), Some(hot));
            prop_assert_eq!(snapshots(&working), 1);
        }
        // A retry of an earlier command, with its idempotency key; or a new one.
        let (cmd, id, who) = if step.op == 9 || i == 0 {
            past[(step.a as usize) % past.len()].clone()
        } else {
            match command(step, &freight, &promotions) {
                Some(c) => (c, format!("cmd-{i}"), user(step.b)),
                None => continue,
            }
        };
        let (full_at, working_at) = (
            full.clone().with_clock(Clock::Fixed(now)),
            working.clone().with_clock(Clock::Fixed(now)),
        );
        let expected = full_at
            .execute(&project(), &who, cmd.clone(), Some(id.clone()))
            .await;
        let got = working_at
            .execute(&project(), &who, cmd.clone(), Some(id.clone()))
            .await;
        prop_assert_eq!(reply(&got), reply(&expected), "step {} {:?}", i, cmd);
        if restart.is_some_and(|r| r > 0 && r <= i) {
            // Taken back, not folded again.
            prop_assert_eq!(snapshots(&working), 0);
            prop_assert_eq!(working.cold_store().map(ColdStore::restored), Some(1));
        }
        match expected.as_ref().ok().and_then(|o| o.payload.as_ref()) {
            Some(EventPayload::FreightDiscovered(d)) => freight.push(d.freight_id.clone()),
            Some(EventPayload::PromotionRequested(r)) => promotions.push(r.promotion_id.clone()),
            _ => {}
        }
        past.push((cmd, id, who));
        let intents = |h: CommandHandler| async move {
            h.inspect_at(&project(), None, |s| due(s, now))
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))
        };
        let (want, have) = (intents(full_at).await?, intents(working_at).await?);
        prop_assert_eq!(have, want, "auto-promotion intents after step {}", i);
        if disturb == Disturb::Evict {
            // Using another project drops this one's state, which is saved
            // on its own; wait for that, so the next step takes it back.
            let other = ProjectName::project("other").expect("name");
            working
                .inspect(&other, |_| ())
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            // (Not while it holds nothing but idempotency keys, which count
            // for a sixteenth each against the budget.)
            if !working.cached_projects().contains(&"ws".to_string()) {
                for _ in 0..200 {
                    if snapshots(&working) == 1 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                prop_assert_eq!(snapshots(&working), 1, "saved after step {}", i);
                evictions += 1;
            }
        }
    }
    if disturb == Disturb::Evict {
        // Each saved state but the last was taken back by the next step.
        let restored = working.cold_store().map(ColdStore::restored).unwrap_or(0);
        prop_assert!(restored + 1 >= evictions, "{} of {}", restored, evictions);
    }
    // The working set stayed small: only what the stages run, the active
    // promotions, and what the limit lets stay.
    let (records, whole) = (
        working
            .inspect(&project(), |s| s.freight.len() + s.promotions.len())
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
        full.inspect(&project(), |s| s.freight.len() + s.promotions.len())
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?,
    );
    prop_assert!(records <= whole);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_working_set_decides_as_the_whole_state(steps in steps(), hot in 0usize..4) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(run(steps, hot, Disturb::None))?;
    }

    /// A state saved at a clean shutdown and taken back by the next process
    /// decides as the whole state folded from the log would.
    #[test]
    fn a_state_taken_back_after_a_restart_decides_as_the_whole_state(
        steps in steps(),
        hot in 0usize..4,
        restart in 1usize..60,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(run(steps, hot, Disturb::Restart(restart)))?;
    }

    /// A state dropped from the cache is saved in the store and taken back
    /// by the project's next command, which decides as the whole state
    /// would.
    #[test]
    fn a_state_dropped_from_the_cache_and_taken_back_decides_as_the_whole_state(
        steps in steps(),
        hot in 0usize..4,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(run(steps, hot, Disturb::Evict))?;
    }
}

/// Records really leave memory: after many discoveries and promotions the
/// working set holds a bounded number of them, and a retry of the very
/// first command (its key long moved out) still answers with its position.
#[tokio::test]
async fn records_leave_memory_and_come_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let h = handler(dir.path(), Some(4));
    let admin = user(0);
    let apply = Command::ApplyPipeline {
        definition: serde_json::from_str::<PipelineDefinition>(PIPELINE)?,
        source_uri: String::new(),
        source_revision: String::new(),
        source_digest: String::new(),
    };
    let first = h
        .execute(&project(), &admin, apply.clone(), Some("apply".into()))
        .await?;
    for i in 0..60 {
        let o = h
            .execute(&project(), &admin, common::discovery(i), None)
            .await?;
        let Some(EventPayload::FreightDiscovered(d)) = o.payload else {
            anyhow::bail!("discovery {i}: {o:?}");
        };
        let request = h
            .execute(
                &project(),
                &admin,
                Command::RequestPromotion {
                    stage: "dev".into(),
                    freight: FreightSelector::Named(d.freight_id.clone()),
                    ticket: String::new(),
                    reason: String::new(),
                },
                None,
            )
            .await?;
        let Some(EventPayload::PromotionRequested(r)) = request.payload else {
            anyhow::bail!("promotion {i}: {request:?}");
        };
        for result in [PromotionResult::Started, PromotionResult::Succeeded] {
            h.execute(
                &project(),
                &admin,
                Command::ReportPromotionResult {
                    promotion: r.promotion_id.clone(),
                    result,
                    details: String::new(),
                },
                None,
            )
            .await?;
        }
    }
    // Records move out on the store's own thread, after the command that
    // went over the limit: wait for the last move (at most 5 s).
    let mut counts = (0, 0, 0, 0);
    for _ in 0..500 {
        counts = h
            .inspect(&project(), |s| {
                (s.freight.len(), s.promotions.len(), s.commands.len(), s.seq)
            })
            .await?;
        if counts.0 <= 5 && counts.1 <= 5 && counts.2 <= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (freight, promotions, commands, seq) = counts;
    assert!(seq > 150, "{seq} events");
    assert!(freight <= 5, "{freight} freight in memory");
    assert!(promotions <= 5, "{promotions} promotions in memory");
    assert!(commands <= 5, "{commands} idempotency keys in memory");
    let retry = h
        .execute(&project(), &admin, apply, Some("apply".into()))
        .await?;
    assert!(retry.already_done);
    assert_eq!(retry.position, first.position);
    assert_eq!(retry.event_id, first.event_id);
    // An old freight, long moved out, is found by its alias and promoted.
    let again = h
        .execute(
            &project(),
            &admin,
            Command::RequestPromotion {
                stage: "dev".into(),
                freight: FreightSelector::Named("v3".into()),
                ticket: String::new(),
                reason: String::new(),
            },
            None,
        )
        .await?;
    assert!(matches!(
        again.payload,
        Some(EventPayload::PromotionRequested(ref r)) if r.stage == "dev"
    ));
    Ok(())
}

/// The store is one process's cache: a second open of it is refused while
/// the first holds it, and what a killed process left there is cleared away.
#[test]
fn the_store_belongs_to_one_process_and_starts_empty_unless_sealed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cold");
    let first = ColdStore::open(&path)?;
    let second = ColdStore::open(&path);
    let err = second.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("another process uses"), "{err}");
    drop(first);
    assert!(!path.exists(), "removed when dropped");

    std::fs::create_dir_all(&path)?;
    std::fs::write(path.join("conf"), b"not a sled config")?;
    std::fs::write(path.join("db"), b"not a sled database")?;
    let store = ColdStore::open(&path)?;
    assert_eq!(store.project("ws").alias("v1")?, None);
    Ok(())
}

fn apply_pipeline() -> anyhow::Result<Command> {
    Ok(Command::ApplyPipeline {
        definition: serde_json::from_str::<PipelineDefinition>(PIPELINE)?,
        source_uri: String::new(),
        source_revision: String::new(),
        source_digest: String::new(),
    })
}

/// Applies the pipeline and discovers versions `0..n`.
async fn configure_and_discover(h: &CommandHandler, n: usize) -> anyhow::Result<()> {
    h.execute(&project(), &user(0), apply_pipeline()?, None)
        .await?;
    for i in 0..n {
        h.execute(&project(), &user(0), common::discovery(i), None)
            .await?;
    }
    Ok(())
}

/// The freight ids the project's state holds in memory.
async fn freight_in_memory(h: &CommandHandler) -> anyhow::Result<Vec<String>> {
    Ok(
        h.inspect(&project(), |s| s.freight.keys().cloned().collect())
            .await?,
    )
}

/// A clean shutdown's state is taken back by the next process, idempotency
/// keys included (a retry answers with the original event, not the log's
/// duplicate notice); a process that ends without saving leaves nothing
/// for the next one.
#[tokio::test]
async fn a_clean_shutdown_keeps_the_state_and_a_crash_does_not() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = user(0);
    let h = handler(dir.path(), Some(1000));
    configure_and_discover(&h, 3).await?;
    // A command that is not idempotent by its content: only its key tells
    // a retry from a second request.
    let request = || Command::RequestPromotion {
        stage: "dev".into(),
        freight: FreightSelector::Named("v1".into()),
        ticket: String::new(),
        reason: String::new(),
    };
    let first = h
        .execute(&project(), &admin, request(), Some("request".into()))
        .await?;
    assert!(!first.already_done);
    let before = freight_in_memory(&h).await?;
    assert_eq!(before.len(), 3);
    assert_eq!(h.save_state().await?, 1);
    drop(h);

    let h = handler(dir.path(), Some(1000));
    let store = h.cold_store().expect("store");
    assert_eq!(store.snapshots()?, 1);
    let retry = h
        .execute(&project(), &admin, request(), Some("request".into()))
        .await?;
    assert!(retry.already_done);
    assert_eq!(
        (retry.position, retry.event_id),
        (first.position, first.event_id)
    );
    assert_eq!(h.cold_store().map(ColdStore::restored), Some(1));
    assert_eq!(freight_in_memory(&h).await?, before);
    // A new command goes on from the state taken back.
    let next = h
        .execute(&project(), &admin, common::discovery(3), None)
        .await?;
    assert!(!next.already_done);
    drop(h);

    // Not saved this time (as if killed): the next store starts empty.
    let h = handler(dir.path(), Some(1000));
    assert_eq!(h.cold_store().expect("store").snapshots()?, 0);
    assert_eq!(freight_in_memory(&h).await?.len(), 4);
    assert_eq!(h.cold_store().map(ColdStore::restored), Some(0));
    Ok(())
}

/// A saved state whose last event the log no longer holds (here: the log
/// was replaced by another one with the same positions) is not used: the
/// project is folded from the new log.
#[tokio::test]
async fn a_saved_state_the_log_does_not_match_is_folded_again() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = user(0);
    let h = handler(dir.path(), Some(1000));
    configure_and_discover(&h, 3).await?;
    assert_eq!(h.save_state().await?, 1);
    drop(h);

    // Another history at the same positions.
    std::fs::remove_dir_all(dir.path().join("log"))?;
    let other = handler(dir.path(), None);
    other
        .execute(&project(), &admin, apply_pipeline()?, None)
        .await?;
    for i in 10..13 {
        other
            .execute(&project(), &admin, common::discovery(i), None)
            .await?;
    }
    let want = freight_in_memory(&other).await?;
    drop(other);

    let h = handler(dir.path(), Some(1000));
    assert_eq!(h.cold_store().expect("store").snapshots()?, 1);
    assert_eq!(freight_in_memory(&h).await?, want);
    assert_eq!(h.cold_store().map(ColdStore::restored), Some(0));
    assert_eq!(h.cold_store().expect("store").snapshots()?, 0);
    Ok(())
}

/// Commands from several threads on a few projects, through two handlers,
/// one with a zero cache budget: its every command drops the other
/// projects' states, which are saved
/// and taken back (or, when a command comes before the save, folded again,
/// and the late save is not written) all the time. Each re-discovery of a
/// known freight must still be recognised: no freight is discovered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn states_dropped_and_taken_back_under_concurrency_stay_right() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let h = handler(dir.path(), Some(2)).with_cache_budget(0);
    let projects: Vec<ProjectName> = (0..4)
        .map(|i| ProjectName::project(format!("p{i}")))
        .collect::<Result<_, _>>()?;
    for p in &projects {
        let definition = serde_json::from_str::<PipelineDefinition>(&PIPELINE.replace(
            "\"project\": \"ws\"",
            &format!("\"project\": \"{}\"", p.as_str()),
        ))?;
        let apply = Command::ApplyPipeline {
            definition,
            source_uri: String::new(),
            source_revision: String::new(),
            source_digest: String::new(),
        };
        h.execute(p, &user(0), apply, None).await?;
    }
    // Half the tasks go through a second handler on the same log, with
    // neither store nor budget: the first one's saved states fall behind
    // and must catch up when taken back.
    let plain = common::handler_for_anyone(
        h.log().clone(),
        vec![Role::Promoter, Role::Approver, Role::Bypass, Role::Admin],
    );
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let h = if t % 2 == 0 { h.clone() } else { plain.clone() };
        let projects = projects.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..120usize {
                let p = &projects[(t * 7 + i * 3 + i / 5) % projects.len()];
                let version = (t * 31 + i * 17) % 24;
                h.execute(p, &user(0), common::discovery(version), None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{p} v{version}: {e}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let log: Arc<dyn EventLog> = h.log().clone();
    let mut discovered = std::collections::BTreeMap::new();
    let mut events = log.read_all(waybill_ledger::Position(1)).await?;
    while let Some(ev) = futures::StreamExt::next(&mut events).await {
        let ev = ev?;
        if let EventPayload::FreightDiscovered(d) = &ev.event.payload {
            *discovered
                .entry((ev.event.project.clone(), d.freight_id.clone()))
                .or_insert(0) += 1;
        }
    }
    assert_eq!(discovered.len(), 4 * 24, "every version of every project");
    assert!(
        discovered.values().all(|n| *n == 1),
        "discovered twice: {:?}",
        discovered
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect::<Vec<_>>()
    );
    assert!(h.cold_store().map(ColdStore::restored).unwrap_or(0) > 0);
    Ok(())
}
