//! Manual mode: tickets, approvals by distinct approvers, separation of
//! duties, windows and freezes.

use chrono::Duration;
use waybill_ledger::domain::PromotionStatus;

use super::*;

#[test]
fn prod_needs_a_matching_ticket() {
    let mut s = Scenario::shop();
    let f = ready_for_prod(&mut s, "1.0");
    s.refused(alice(), promote("prod", &f, ""), Reason::TicketRequired);
    let r = s.refused(
        alice(),
        promote("prod", &f, "JIRA-7"),
        Reason::TicketInvalid,
    );
    assert!(r.to_string().contains("CHG-\\d+"), "{r}");
    s.refused(
        alice(),
        promote("prod", &f, "CHG-12x"),
        Reason::TicketInvalid,
    );
    s.request(alice(), "prod", &f, "CHG-12");
}

#[test]
fn two_distinct_approvers_other_than_the_requester() {
    let mut s = Scenario::shop();
    let f = ready_for_prod(&mut s, "1.0");
    let p = s.request(alice(), "prod", &f, "CHG-1");
    assert_eq!(s.state.promotions[&p].status, PromotionStatus::Requested);
    s.refused(alice(), approve(&p), Reason::SeparationOfDuties);
    s.ok(bob(), approve(&p));
    s.refused(bob(), approve(&p), Reason::AlreadyApproved);
    assert_eq!(s.state.promotions[&p].status, PromotionStatus::Requested);
    let r = s.refused(
        robot(),
        report(&p, PromotionResult::Started),
        Reason::ApprovalsMissing,
    );
    assert!(r.to_string().contains("1 of 2"), "{r}");
    s.ok(carol(), approve(&p));
    assert_eq!(s.state.promotions[&p].status, PromotionStatus::Authorized);
    assert_eq!(s.state.stages["prod"].queue.front(), Some(&p));
    s.refused(carol(), approve(&p), Reason::PromotionNotPending);
}

#[test]
fn without_separation_of_duties_the_requester_counts() {
    let mut s = Scenario::shop();
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.stages[2].policy.separation_of_duties = false;
    def.stages[2].policy.required_approvals = 1;
    s.ok(alice(), apply(def));
    let f = ready_for_prod(&mut s, "1.0");
    let p = s.request(alice(), "prod", &f, "CHG-1");
    s.ok(alice(), approve(&p));
    assert_eq!(s.state.promotions[&p].status, PromotionStatus::Authorized);
}

#[test]
fn weekend_freeze_refuses_and_says_until_when() {
    let mut s = Scenario::shop();
    let f = ready_for_prod(&mut s, "1.0");
    // Wednesday 11:00 → Saturday 11:00.
    s.advance(Duration::days(3));
    let r = s.refused(alice(), promote("prod", &f, "CHG-1"), Reason::StageFrozen);
    match r {
        Rejection::Policy {
            details, message, ..
        } => {
            assert!(message.contains("weekend"), "{message}");
            assert_eq!(
                details.get("until").map(String::as_str),
                Some("2026-12-07T00:00:00+00:00")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn windows_close_promotions_outside_them() {
    let mut s = Scenario::shop();
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.stages[2].policy.windows = vec![serde_json::from_str(
        r#"{"days": ["Mon","Tue","Wed","Thu","Fri"], "start": "09:00:00", "end": "17:00:00"}"#,
    )
    .expect("window")];
    s.ok(alice(), apply(def));
    let f = ready_for_prod(&mut s, "1.0");
    s.advance(Duration::hours(8)); // Wednesday 19:00
    let r = s.refused(
        alice(),
        promote("prod", &f, "CHG-1"),
        Reason::PromotionWindowClosed,
    );
    assert!(r.to_string().contains("2026-12-03T09:00:00+00:00"), "{r}");
}

#[test]
fn rejected_and_aborted_promotions_leave_the_queue() {
    let mut s = Scenario::shop();
    let f = ready_for_prod(&mut s, "1.0");
    let p = s.request(alice(), "prod", &f, "CHG-1");
    s.ok(
        bob(),
        Command::RejectPromotion {
            promotion: p.clone(),
            reason: "not today".into(),
        },
    );
    assert_eq!(s.state.promotions[&p].status, PromotionStatus::Rejected);
    let again = s.request(alice(), "prod", &f, "CHG-2");
    s.ok(
        alice(),
        Command::AbortPromotion {
            promotion: again.clone(),
            reason: "changed my mind".into(),
        },
    );
    assert_eq!(s.state.promotions[&again].status, PromotionStatus::Aborted);
    s.refused(
        alice(),
        Command::AbortPromotion {
            promotion: again,
            reason: String::new(),
        },
        Reason::PromotionNotPending,
    );
    assert!(s.state.stages["prod"].queue.is_empty());
}

#[test]
fn unknown_stage_and_promotion_are_malformed_or_missing() {
    let mut s = Scenario::shop();
    let f = s.discover("1.0");
    s.invalid(alice(), promote("qa", &f, ""));
    // A misspelled stage is named with the one meant.
    match s.invalid(alice(), promote("stagign", &f, "")) {
        Rejection::Invalid { field, message } => {
            assert_eq!(field, "stage");
            assert_eq!(
                message,
                "project shop has no stage \"stagign\" (did you mean \"staging\"?)"
            );
        }
        other => panic!("{other:?}"),
    }
    match s.decide(alice(), approve("prm-nope")) {
        Err(Rejection::NotFound {
            what: "promotion", ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match s.decide(alice(), promote("dev", "no-such-freight", "")) {
        Err(Rejection::NotFound {
            what: "freight", ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_repeated_command_id_returns_the_original_outcome() {
    let mut s = Scenario::shop();
    let f = s.discover("1.0");
    let ctx = Context {
        actor: robot(),
        groups: vec![],
        now: s.now,
        command_id: "client-key-1".into(),
    };
    let cmd = promote("dev", &f, "");
    let Ok(Decision::Append { payload, .. }) = decide(&s.state, &ctx, &cmd) else {
        panic!("first time appends");
    };
    s.record(robot(), "client-key-1", payload);
    let position = s.state.position;
    match decide(&s.state, &ctx, &cmd) {
        Ok(Decision::AlreadyDone(o)) => assert_eq!(o.position, position),
        other => panic!("{other:?}"),
    }
}
