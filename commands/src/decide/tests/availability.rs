//! The availability predicate as commands see it: direct, upstream
//! verification, soak (`>=`), `OneOf` / `All`, approved-for.

use chrono::Duration;
use waybill_ledger::domain::{check_available, PipelineDefinition, Unavailable};

use super::*;

#[test]
fn direct_requests_take_freight_straight_from_the_warehouse() {
    let mut s = Scenario::shop();
    let f = s.discover("1.0");
    s.request(robot(), "dev", &f, "");
}

#[test]
fn upstream_verification_is_required_and_named() {
    let mut s = Scenario::shop();
    let f = s.discover("1.0");
    let r = s.refused(
        alice(),
        promote("staging", &f, ""),
        Reason::FreightNotAvailable,
    );
    match r {
        Rejection::Policy { details, .. } => {
            assert_eq!(
                details.get("cause").map(String::as_str),
                Some("NOT_VERIFIED_UPSTREAM")
            );
            assert_eq!(details.get("upstream").map(String::as_str), Some("dev"));
        }
        other => panic!("{other:?}"),
    }
    s.deploy("dev", &f, &[]);
    // dev requires no checks: current there means verified there.
    s.request(robot(), "staging", &f, "");
}

#[test]
fn staging_verification_needs_every_required_check_on_the_current_freight() {
    let mut s = Scenario::shop();
    let f = s.discover("1.0");
    s.deploy("dev", &f, &[]);
    s.deploy("staging", &f, &[]);
    assert!(!s.state.freight[&f].verified_in.contains_key("staging"));
    s.ok(
        robot(),
        verification(&f, "staging", "integration-tests", false),
    );
    assert!(!s.state.freight[&f].verified_in.contains_key("staging"));
    s.ok(
        robot(),
        verification(&f, "staging", "integration-tests", true),
    );
    assert!(s.state.freight[&f].verified_in.contains_key("staging"));
}

#[test]
fn soak_compares_with_greater_or_equal() {
    let mut s = Scenario::shop();
    let f = s.discover("1.0");
    s.deploy("dev", &f, &[]);
    s.deploy("staging", &f, &["integration-tests"]);
    s.advance(Duration::minutes(59));
    let r = s.refused(
        alice(),
        promote("prod", &f, "CHG-1"),
        Reason::FreightNotAvailable,
    );
    match r {
        Rejection::Policy { details, .. } => {
            assert_eq!(
                details.get("cause").map(String::as_str),
                Some("SOAK_INCOMPLETE")
            );
            assert_eq!(details.get("soaked").map(String::as_str), Some("59m"));
            assert_eq!(details.get("required_soak").map(String::as_str), Some("1h"));
            // Verified in staging 59 minutes ago: complete in one minute.
            let at =
                (s.now + Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            assert_eq!(details.get("soak_complete_at"), Some(&at));
        }
        other => panic!("{other:?}"),
    }
    s.advance(Duration::minutes(1));
    assert_eq!(check_available(&s.state, &f, "prod", s.now), Ok(()));
}

#[test]
fn soak_is_the_longest_tenure_even_after_the_freight_moved_on() {
    let mut s = Scenario::shop();
    let old = s.discover("1.0");
    s.deploy("dev", &old, &[]);
    s.deploy("staging", &old, &["integration-tests"]);
    s.advance(Duration::hours(2));
    let new = s.discover("2.0");
    s.deploy("dev", &new, &[]);
    s.deploy("staging", &new, &["integration-tests"]);
    s.advance(Duration::hours(5));
    // The old freight left staging after 2h verified: still soaked enough.
    assert_eq!(check_available(&s.state, &old, "prod", s.now), Ok(()));
    let v = &s.state.freight[&old]
        .verified_in
        .get("staging")
        .expect("verified in staging");
    assert_eq!(v.longest_soak.0, 2 * 3600);
    assert!(v.since.is_none());
}

#[test]
fn a_soak_cut_short_says_it_is_not_going_on() {
    let mut s = Scenario::shop();
    let old = s.discover("1.0");
    s.deploy("dev", &old, &[]);
    s.deploy("staging", &old, &["integration-tests"]);
    s.advance(Duration::minutes(30));
    let new = s.discover("2.0");
    s.deploy("dev", &new, &[]);
    s.deploy("staging", &new, &["integration-tests"]);
    s.advance(Duration::hours(5));
    let why = check_available(&s.state, &old, "prod", s.now).expect_err("30m of 1h");
    assert!(
        matches!(&why, Unavailable::SoakIncomplete { complete_at: None, soaked, .. } if soaked.0 == 1800),
        "{why:?}"
    );
    assert!(
        why.to_string()
            .ends_with("(it no longer runs there verified)"),
        "{why}"
    );
    match s.refused(
        alice(),
        promote("prod", &old, "CHG-1"),
        Reason::FreightNotAvailable,
    ) {
        Rejection::Policy { details, .. } => assert!(!details.contains_key("soak_complete_at")),
        other => panic!("{other:?}"),
    }
}

fn two_upstreams(availability: &str) -> Scenario {
    let def: PipelineDefinition = serde_json::from_str(&format!(
        r#"{{"project": "shop",
            "warehouses": [{{"name": "images"}}],
            "stages": [
              {{"name": "eu", "requested_freight": [{{"origin": "images", "sources": {{"direct": true}}}}],
                "policy": {{"mode": "auto"}}}},
              {{"name": "us", "requested_freight": [{{"origin": "images", "sources": {{"direct": true}}}}],
                "policy": {{"mode": "auto"}}}},
              {{"name": "global", "requested_freight": [{{"origin": "images",
                "sources": {{"stages": ["eu", "us"]}}, "availability": "{availability}"}}]}}
            ]}}"#
    ))
    .expect("definition");
    let mut s = Scenario::empty();
    s.ok(alice(), apply(def));
    s
}

#[test]
fn one_of_needs_any_upstream_all_needs_every_upstream() {
    for (mode, available_after_eu) in [("OneOf", true), ("All", false)] {
        let mut s = two_upstreams(mode);
        let f = s.discover("1.0");
        s.deploy("eu", &f, &[]);
        let got = check_available(&s.state, &f, "global", s.now);
        assert_eq!(got.is_ok(), available_after_eu, "{mode}: {got:?}");
        if !available_after_eu {
            assert_eq!(
                got,
                Err(Unavailable::NotVerifiedUpstream {
                    missing: vec!["us".into()]
                })
            );
        }
        s.deploy("us", &f, &[]);
        assert_eq!(
            check_available(&s.state, &f, "global", s.now),
            Ok(()),
            "{mode}"
        );
    }
}

#[test]
fn freight_from_an_unrequested_warehouse_is_never_available() {
    let mut s = Scenario::shop();
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.warehouses
        .push(serde_json::from_str(r#"{"name": "charts"}"#).expect("wh"));
    s.ok(alice(), apply(def));
    let f = match s.ok(
        robot(),
        Command::RecordDiscovery {
            warehouse: "charts".into(),
            artifacts: image("9"),
            alias: String::new(),
        },
    ) {
        EventPayload::FreightDiscovered(d) => d.freight_id,
        other => panic!("{other:?}"),
    };
    s.refused(alice(), promote("dev", &f, ""), Reason::FreightNotAvailable);
}

#[test]
fn newest_available_is_by_discovery_time() {
    let mut s = Scenario::shop();
    let a = s.discover("1.0");
    s.advance(Duration::minutes(1));
    let b = s.discover("1.1");
    let cmd = Command::RequestPromotion {
        stage: "dev".into(),
        freight: FreightSelector::NewestAvailable,
        ticket: String::new(),
        reason: String::new(),
    };
    match s.ok(robot(), cmd) {
        EventPayload::PromotionRequested(r) => assert_eq!(r.freight_id, b),
        other => panic!("{other:?}"),
    }
    assert_ne!(a, b);
}

#[test]
fn none_available_says_what_upstream_runs_and_why_it_is_not() {
    let mut s = Scenario::shop();
    let newest = |stage: &str| Command::RequestPromotion {
        stage: stage.into(),
        freight: FreightSelector::NewestAvailable,
        ticket: String::new(),
        reason: String::new(),
    };
    let said = |s: &mut Scenario, stage: &str| {
        s.refused(alice(), newest(stage), Reason::FreightNotAvailable)
            .to_string()
    };
    assert_eq!(
        said(&mut s, "dev"),
        "no freight is available to stage dev: warehouse images has delivered nothing"
    );
    let f = s.discover("1.0");
    assert_eq!(
        said(&mut s, "prod"),
        "no freight is available to stage prod: nothing of warehouse images has run in staging"
    );
    s.deploy("dev", &f, &[]);
    s.deploy("staging", &f, &[]);
    // staging requires integration-tests, which have not passed there.
    let r = s.refused(alice(), newest("prod"), Reason::FreightNotAvailable);
    match &r {
        Rejection::Policy {
            message, details, ..
        } => {
            assert_eq!(
                message,
                &format!(
                    "no freight is available to stage prod: staging runs v1-0 ({f}), which \
                     is not: not verified in upstream stage(s) staging"
                )
            );
            assert_eq!(details.get("freight"), Some(&f));
            assert_eq!(
                details.get("cause").map(String::as_str),
                Some("NOT_VERIFIED_UPSTREAM")
            );
            assert_eq!(details.get("upstream").map(String::as_str), Some("staging"));
        }
        other => panic!("{other:?}"),
    }
    s.ok(
        robot(),
        verification(&f, "staging", "integration-tests", true),
    );
    let said = said(&mut s, "prod");
    assert!(
        said.contains("staging runs v1-0 (")
            && said.contains("which is not: soaked 0s of the required 1h"),
        "{said}"
    );
}
