//! The emergency bypass: reason required, may be limited to named subjects,
//! skips the upstream chain and the freeze, and stays flagged.

use chrono::Duration;

use super::*;

fn bypass(freight: &str, reason: &str, ticket: &str) -> Command {
    Command::ApproveFreight {
        freight: freight.into(),
        stage: "prod".into(),
        reason: reason.into(),
        ticket: ticket.into(),
    }
}

#[test]
fn a_bypass_needs_a_reason_and_a_ticket() {
    let mut s = Scenario::shop();
    let f = s.discover("1.0");
    let r = s.invalid(alice(), bypass(&f, "  ", "CHG-9"));
    assert!(r.to_string().contains("reason"), "{r}");
    s.refused(alice(), bypass(&f, "outage", ""), Reason::TicketRequired);
}

#[test]
fn bypass_skips_upstream_and_the_freeze_and_is_flagged() {
    let mut s = Scenario::shop();
    let f = s.discover("1.0");
    s.advance(Duration::days(3)); // Saturday
    s.refused(
        alice(),
        promote("prod", &f, "CHG-9"),
        Reason::FreightNotAvailable,
    );
    s.ok(alice(), bypass(&f, "payments outage", "CHG-9"));
    let approval = &s.state.freight[&f]
        .approved_for
        .get("prod")
        .expect("approved for prod");
    assert!(approval.bypass);
    assert_eq!(approval.reason, "payments outage");
    assert_eq!(approval.by, "alice");
    // Available now, and the weekend freeze does not apply to it.
    let p = s.request(alice(), "prod", &f, "CHG-9");
    s.ok(bob(), approve(&p));
    s.ok(carol(), approve(&p));
    s.succeed(&p);
    assert_eq!(s.current("prod"), Some(f));
}

#[test]
fn bypass_may_be_limited_to_named_subjects() {
    let mut s = Scenario::shop();
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.stages[2].policy.bypass = vec!["group:sre".into(), "user:bob".into()];
    s.ok(alice(), apply(def));
    let f = s.discover("1.0");
    s.refused(
        alice(),
        bypass(&f, "outage", "CHG-1"),
        Reason::BypassNotAllowed,
    );
    s.ok(bob(), bypass(&f, "outage", "CHG-1"));
    let g = s.discover("1.1");
    let ctx = Context {
        actor: carol(),
        groups: vec!["sre".into()],
        now: s.now,
        command_id: "sre-1".into(),
    };
    assert!(decide(&s.state, &ctx, &bypass(&g, "outage", "CHG-2")).is_ok());
}

/// Auto-promotion does not ask while a freeze refuses every request (it
/// asked every second and was refused), and asks for freight an emergency
/// bypass approved for the stage, which the freeze does not hold back.
#[test]
fn auto_promotion_waits_out_a_freeze_unless_the_freight_is_bypassed() {
    let mut s = Scenario::shop();
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.stages[0]
        .policy
        .freezes
        .push(waybill_ledger::domain::Freeze {
            days: vec![],
            from: Some("2026-12-01T00:00:00".parse().expect("time")),
            to: Some("2026-12-03T00:00:00".parse().expect("time")),
            reason: "release week".into(),
        });
    s.ok(alice(), apply(def));
    let f = s.discover("1.0");
    assert!(crate::reactor::due(&s.state, s.now).is_empty());
    s.ok(
        alice(),
        Command::ApproveFreight {
            freight: f.clone(),
            stage: "dev".into(),
            reason: "hotfix".into(),
            ticket: "CHG-7".into(),
        },
    );
    let due = crate::reactor::due(&s.state, s.now);
    assert_eq!(
        due.iter()
            .map(|i| (i.stage.as_str(), i.freight.as_str()))
            .collect::<Vec<_>>(),
        [("dev", f.as_str())]
    );
    // Once the freeze is over, newer freight goes as usual.
    s.advance(Duration::days(1));
    let g = s.discover("2.0");
    assert_eq!(crate::reactor::due(&s.state, s.now)[0].freight, g);
}
