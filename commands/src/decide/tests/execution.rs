//! One running promotion per stage, FIFO queue, executor results,
//! record-only stages, rollback and holds.

use chrono::Duration;
use waybill_ledger::domain::PromotionStatus;

use super::*;

#[test]
fn one_runs_at_a_time_and_the_queue_is_first_in_first_out() {
    let mut s = Scenario::shop();
    let a = s.discover("1.0");
    let b = s.discover("1.1");
    let pa = s.request(robot(), "dev", &a, "");
    let pb = s.request(robot(), "dev", &b, "");
    assert_eq!(
        s.state.stages["dev"]
            .queue
            .iter()
            .cloned()
            .collect::<Vec<_>>(),
        vec![pa.clone(), pb.clone()]
    );
    let r = s.refused(
        robot(),
        report(&pb, PromotionResult::Started),
        Reason::StageBusy,
    );
    assert!(r.to_string().contains(&pa), "{r}");
    s.ok(robot(), report(&pa, PromotionResult::Started));
    assert_eq!(s.state.stages["dev"].running.as_deref(), Some(pa.as_str()));
    s.refused(
        robot(),
        report(&pb, PromotionResult::Started),
        Reason::StageBusy,
    );
    s.refused(
        robot(),
        report(&pa, PromotionResult::Started),
        Reason::PromotionNotPending,
    );
    s.succeed(&pa);
    assert_eq!(s.current("dev"), Some(a.clone()));
    s.ok(robot(), report(&pb, PromotionResult::Started));
    s.ok(robot(), report(&pb, PromotionResult::Failed));
    assert_eq!(s.state.promotions[&pb].status, PromotionStatus::Failed);
    assert!(s.state.stages["dev"].failed.contains(&b));
    assert_eq!(
        s.current("dev"),
        Some(a),
        "a failure leaves the stage as it was"
    );
    s.refused(
        robot(),
        report(&pb, PromotionResult::Succeeded),
        Reason::PromotionNotPending,
    );
}

#[test]
fn a_freight_already_current_or_in_flight_is_refused() {
    let mut s = Scenario::shop();
    let a = s.discover("1.0");
    let p = s.request(robot(), "dev", &a, "");
    s.refused(robot(), promote("dev", &a, ""), Reason::AlreadyInFlight);
    s.succeed(&p);
    s.refused(robot(), promote("dev", &a, ""), Reason::AlreadyCurrent);
}

#[test]
fn record_only_stages_complete_at_authorization() {
    let mut s = Scenario::shop();
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.stages[0].record_only = true;
    s.ok(alice(), apply(def));
    let a = s.discover("1.0");
    let p = s.request(robot(), "dev", &a, "");
    assert_eq!(s.state.promotions[&p].status, PromotionStatus::Succeeded);
    assert_eq!(s.current("dev"), Some(a));
    assert!(s.state.stages["dev"].queue.is_empty());
}

#[test]
fn rollback_promotes_the_previous_available_freight_and_holds_the_stage() {
    let mut s = Scenario::shop();
    let old = s.discover("1.0");
    s.deploy("dev", &old, &[]);
    s.advance(Duration::minutes(5));
    let new = s.discover("2.0");
    s.deploy("dev", &new, &[]);
    assert_eq!(s.hold("dev"), None, "auto promotions never hold");
    let rb = match s.ok(
        alice(),
        Command::Rollback {
            stage: "dev".into(),
            warehouse: String::new(),
            ticket: String::new(),
            reason: "2.0 is broken".into(),
        },
    ) {
        EventPayload::PromotionRequested(r) => {
            assert_eq!(r.freight_id, old);
            r.promotion_id
        }
        other => panic!("{other:?}"),
    };
    s.succeed(&rb);
    assert_eq!(s.current("dev"), Some(old.clone()));
    assert_eq!(s.hold("dev"), Some(old.clone()), "manual rollback holds");
    // Promoting the candidate (the newest) manually releases the hold.
    let p = s.request(alice(), "dev", &new, "");
    s.succeed(&p);
    assert_eq!(s.hold("dev"), None);
}

#[test]
fn rollback_without_an_earlier_freight_is_refused() {
    let mut s = Scenario::shop();
    let only = s.discover("1.0");
    s.deploy("dev", &only, &[]);
    s.refused(
        alice(),
        Command::Rollback {
            stage: "dev".into(),
            warehouse: String::new(),
            ticket: String::new(),
            reason: String::new(),
        },
        Reason::NoRollbackTarget,
    );
}

#[test]
fn rollback_of_prod_finds_the_previous_freight_through_the_upstream_chain() {
    let mut s = Scenario::shop();
    let f1 = ready_for_prod(&mut s, "1.0");
    let p1 = s.request(alice(), "prod", &f1, "CHG-1");
    s.ok(bob(), approve(&p1));
    s.ok(carol(), approve(&p1));
    s.succeed(&p1);
    s.advance(Duration::minutes(1));
    let f2 = ready_for_prod(&mut s, "2.0");
    let p2 = s.request(alice(), "prod", &f2, "CHG-2");
    s.ok(bob(), approve(&p2));
    s.ok(carol(), approve(&p2));
    s.succeed(&p2);
    assert_eq!(s.current("prod"), Some(f2));
    match s.ok(
        alice(),
        Command::Rollback {
            stage: "prod".into(),
            warehouse: String::new(),
            ticket: "CHG-3".into(),
            reason: "broken".into(),
        },
    ) {
        EventPayload::PromotionRequested(r) => assert_eq!(r.freight_id, f1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rollback_on_record_only_stages() {
    let mut s = Scenario::shop();
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    for st in &mut def.stages {
        st.record_only = true;
    }
    s.ok(alice(), apply(def));
    let f1 = ready_for_prod(&mut s, "1.0");
    let p1 = s.request(alice(), "prod", &f1, "CHG-1");
    s.ok(bob(), approve(&p1));
    s.ok(carol(), approve(&p1));
    assert_eq!(s.current("prod"), Some(f1.clone()));
    s.advance(Duration::minutes(1));
    let f2 = s.discover("2.0");
    let p = s.request(robot(), "dev", &f2, "");
    assert_eq!(
        s.state.promotions[&p].status,
        waybill_ledger::domain::PromotionStatus::Succeeded
    );
    s.ok(robot(), verification(&f2, "dev", "smoke", true));
    s.request(robot(), "staging", &f2, "");
    s.ok(
        robot(),
        verification(&f2, "staging", "integration-tests", true),
    );
    s.advance(Duration::hours(1));
    let p2 = s.request(alice(), "prod", &f2, "CHG-2");
    s.ok(bob(), approve(&p2));
    s.ok(carol(), approve(&p2));
    assert_eq!(s.current("prod"), Some(f2));
    let v = &s.state.freight[&f1].verified_in;
    assert!(v.contains_key("staging"), "{v:?}");
    match s.decide(
        alice(),
        Command::Rollback {
            stage: "prod".into(),
            warehouse: String::new(),
            ticket: "CHG-3".into(),
            reason: "broken".into(),
        },
    ) {
        Ok(Decision::Append {
            payload: EventPayload::PromotionRequested(r),
            ..
        }) => assert_eq!(r.freight_id, f1),
        other => panic!("{other:?} {:?}", s.state.promotions),
    }
}

#[test]
fn project_state_snapshots_round_trip_through_json() {
    let mut s = Scenario::shop();
    let f = ready_for_prod(&mut s, "1.0");
    let p = s.request(alice(), "prod", &f, "CHG-1");
    s.ok(bob(), approve(&p));
    let json = serde_json::to_string(&s.state).expect("serialize");
    let mut back: waybill_ledger::domain::ProjectState =
        serde_json::from_str(&json).expect("deserialize");
    // As the projection store does on load: the indexes are not stored,
    // nor the idempotency keys (the command side's own business).
    assert!(back.by_discovery.is_empty() && !s.state.by_discovery.is_empty());
    assert!(back.commands.is_empty() && !s.state.commands.is_empty());
    back.reindex();
    back.commands = s.state.commands.clone();
    assert_eq!(back, s.state);
}
