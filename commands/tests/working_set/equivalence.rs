//! The property tests: random command sequences (new commands and retries,
//! with time passing) run on a handler that keeps every record and on one
//! that keeps only the working set give the same replies, events and
//! auto-promotion intents — undisturbed, across a clean restart, and with
//! the project's state dropped from the cache after every step.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use waybill_commands::auth::Principal;
use waybill_commands::clock::Clock;
use waybill_commands::handler::{ColdStore, CommandHandler};
use waybill_commands::reactor::due;
use waybill_commands::{Command, FreightSelector, PromotionResult};
use waybill_ledger::{EventPayload, ProjectName};

use crate::common;
use crate::{apply_pipeline, handler, project, user};

const STAGES: [&str; 3] = ["dev", "staging", "prod"];
const CHECKS: [&str; 2] = ["integration-tests", "smoke"];
const FREIGHT: usize = 10;

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
        // Every third freight comes from the second warehouse, which dev
        // and staging run beside the first.
        0 | 1 => match common::discovery(a % FREIGHT) {
            Command::RecordDiscovery {
                artifacts, alias, ..
            } if a % FREIGHT % 3 == 2 => Command::RecordDiscovery {
                warehouse: "config".into(),
                artifacts,
                alias,
            },
            other => other,
        },
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
            freight: if a % 6 == 0 {
                FreightSelector::NewestAvailable
            } else if a % 6 == 3 {
                FreightSelector::NewestOf(["images", "config"][b % 2].to_string())
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
            warehouse: ["", "images", "config"][a % 3].to_string(),
            ticket: String::new(),
            reason: String::new(),
        },
    })
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
    let apply = apply_pipeline().expect("pipeline");
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
    // The seeds of past failures stay in `tests/working_set.proptest-regressions`,
    // where they were when these tests were one file (by default proptest
    // would now look in `tests/proptest-regressions/`, this directory having
    // a `main.rs`).
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/working_set.proptest-regressions"
        )))),
        ..ProptestConfig::default()
    })]

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
