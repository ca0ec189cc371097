//! Property: any interleaving of appends folds to the same state on both backends.

use std::collections::BTreeMap;

use proptest::prelude::*;
use waybill_ledger::testing::NatsServer;
use waybill_ledger::{
    EventLog, EventPayload, JetStreamLog, JetStreamOptions, LedgerError, Position, SledLog,
};

use super::support::*;

/// One step of a scenario: which project, what event, and whether the writer
/// uses a stale expected position (and so must be refused).
#[derive(Debug, Clone)]
struct Step {
    project: usize,
    stage: usize,
    approve: bool,
    stale: bool,
    retry_of: Option<usize>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0..3usize,
        0..3usize,
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.15, 0..40usize),
    )
        .prop_map(|(project, stage, approve, stale, retry_of)| Step {
            project,
            stage,
            approve,
            stale,
            retry_of,
        })
}

/// Per project: the ordered payloads and the outcome of every step.
type Folded = (
    BTreeMap<String, Vec<(u64, EventPayload)>>,
    Vec<&'static str>,
);

async fn run(log: &dyn EventLog, steps: &[Step]) -> Folded {
    let projects = ["p0", "p1", "p2"].map(project);
    let stages = ["dev", "staging", "prod"];
    let mut heads = [Position::ZERO; 3];
    let mut outcomes = Vec::new();
    // What each step sent, so that a retry resends exactly that.
    let mut sent: Vec<(usize, Position, waybill_ledger::NewEvent)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let (p, expected, event) = match s.retry_of {
            Some(j) if j < i => sent[j].clone(),
            _ => {
                let cmd = format!("cmd-{i}");
                let event = if s.approve {
                    approval(&cmd)
                } else {
                    request(&cmd, stages[s.stage])
                };
                let expected = if s.stale && heads[s.project] > Position::ZERO {
                    Position(heads[s.project].0 - 1)
                } else {
                    heads[s.project]
                };
                (s.project, expected, event)
            }
        };
        sent.push((p, expected, event.clone()));
        let outcome = match log.append(&projects[p], expected, event).await {
            Ok(a) => {
                heads[p] = a.position;
                "appended"
            }
            Err(LedgerError::Conflict { .. }) => "conflict",
            Err(LedgerError::Duplicate { .. }) => "duplicate",
            Err(e) => panic!("unexpected {e}"),
        };
        outcomes.push(outcome);
    }
    let mut state: BTreeMap<String, Vec<(u64, EventPayload)>> = BTreeMap::new();
    for ev in collect(log, Position(1)).await {
        state
            .entry(ev.event.project.clone())
            .or_default()
            .push((ev.event.project_seq, ev.event.payload.clone()));
    }
    (state, outcomes)
}

#[test]
fn interleavings_fold_to_the_same_state_on_both_backends() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = NatsServer::start();
    let url = server.url();
    let case = std::sync::atomic::AtomicU32::new(0);
    let config = ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    };
    proptest!(config, |(steps in prop::collection::vec(step(), 1..40))| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let (a, b) = runtime.block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let sled = SledLog::open(dir.path()).expect("sled");
            let mut opts = JetStreamOptions::new(url.clone());
            opts.stream = format!("PROP{case}");
            opts.subject_prefix = format!("prop{case}");
            let js = JetStreamLog::connect(opts).await.expect("jetstream");
            (run(&sled, &steps).await, run(&js, &steps).await)
        });
        prop_assert_eq!(&a.1, &b.1, "outcomes differ");
        prop_assert_eq!(a.0, b.0, "folded state differs");
    });
}
