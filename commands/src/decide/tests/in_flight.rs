//! The state's indexes stay equal to scans and to indexes rebuilt from
//! scratch, through random promotion lifecycles (proptest): active
//! promotions (`in_flight`) and freight by discovery (`newest_where`).

use proptest::prelude::*;
use waybill_ledger::domain::ProjectState;

use super::*;

const STAGES: [&str; 3] = ["dev", "staging", "prod"];

#[derive(Debug, Clone)]
enum Op {
    Discover(usize),
    Request(usize, usize, usize),
    Approve(usize, usize),
    Reject(usize),
    Abort(usize),
    Report(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize).prop_map(Op::Discover),
        (0..3usize, 0..4usize, 0..3usize).prop_map(|(s, f, a)| Op::Request(s, f, a)),
        (0..12usize, 0..3usize).prop_map(|(p, a)| Op::Approve(p, a)),
        (0..12usize).prop_map(Op::Reject),
        (0..12usize).prop_map(Op::Abort),
        (0..12usize, 0..3usize).prop_map(|(p, r)| Op::Report(p, r)),
    ]
}

fn actor(i: usize) -> Actor {
    [alice(), bob(), carol()][i % 3].clone()
}

/// Every promotion's activity as the index shows it equals the scan, and
/// the newest available freight of each stage is the scan's.
fn check(state: &ProjectState, freights: &[String], now: DateTime<Utc>) {
    let mut fresh = state.clone();
    fresh.reindex();
    assert_eq!(fresh.active, state.active, "index differs from a rebuild");
    assert_eq!(fresh.by_discovery, state.by_discovery);
    let def = state.definition().expect("pipeline");
    for stage in &def.stages {
        let available = |f: &waybill_ledger::domain::Freight| {
            waybill_ledger::domain::available_to(f, stage, now).is_ok()
        };
        let scan = state
            .freight
            .values()
            .filter(|f| available(f))
            .max_by(|a, b| (a.discovered_at, &a.id).cmp(&(b.discovered_at, &b.id)))
            .map(|f| f.id.as_str());
        let newest = state.newest_where(available).map(|f| f.id.as_str());
        assert_eq!(newest, scan, "newest available to {}", stage.name);
    }
    for stage in STAGES {
        for f in freights {
            let scan = state
                .promotions
                .values()
                .find(|p| p.stage == stage && p.freight == *f && p.status.is_active())
                .map(|p| p.id.as_str());
            assert_eq!(
                state.in_flight(stage, f).map(|p| p.id.as_str()),
                scan,
                "{stage} {f}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn in_flight_index_matches_a_scan(ops in prop::collection::vec(op(), 1..60)) {
        let mut s = Scenario::shop();
        let mut freights: Vec<String> = Vec::new();
        let mut promotions: Vec<String> = Vec::new();
        for op in ops {
            s.advance(Duration::minutes(7));
            let pick = |v: &Vec<String>, i: usize| (!v.is_empty()).then(|| v[i % v.len()].clone());
            let (who, cmd) = match op {
                Op::Discover(t) => (robot(), discover(&format!("1.{t}"))),
                Op::Request(st, f, a) => {
                    let Some(f) = pick(&freights, f) else { continue };
                    (actor(a), promote(STAGES[st], &f, "CHG-1"))
                }
                Op::Approve(p, a) => {
                    let Some(p) = pick(&promotions, p) else { continue };
                    (actor(a), approve(&p))
                }
                Op::Reject(p) => {
                    let Some(promotion) = pick(&promotions, p) else { continue };
                    (bob(), Command::RejectPromotion { promotion, reason: "no".into() })
                }
                Op::Abort(p) => {
                    let Some(promotion) = pick(&promotions, p) else { continue };
                    (alice(), Command::AbortPromotion { promotion, reason: "stop".into() })
                }
                Op::Report(p, r) => {
                    let Some(p) = pick(&promotions, p) else { continue };
                    let result = [
                        PromotionResult::Started,
                        PromotionResult::Succeeded,
                        PromotionResult::Failed,
                    ][r];
                    (robot(), report(&p, result))
                }
            };
            if let Ok(Decision::Append { payload, .. }) = s.decide(who.clone(), cmd) {
                match &payload {
                    EventPayload::FreightDiscovered(d) if !freights.contains(&d.freight_id) => {
                        freights.push(d.freight_id.clone())
                    }
                    EventPayload::PromotionRequested(r) => promotions.push(r.promotion_id.clone()),
                    _ => {}
                }
                let id = format!("prop-{}", s.next);
                s.record(who, &id, payload);
            }
            check(&s.state, &freights, s.now);
        }
    }
}
