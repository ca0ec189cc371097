//! A stage that takes freight from several warehouses runs one freight of
//! each (Kargo's freight collection): a promotion replaces the freight of
//! its own warehouse only, verification counts for each, auto-promotion has
//! a candidate per warehouse, and a rollback names the warehouse.

use waybill_ledger::domain::PipelineDefinition;
use waybill_ledger::event::{Artifact, ArtifactKind};

use super::*;
use crate::reactor::due;

/// images and config → dev (auto, checks `smoke`) → staging (auto) and
/// mirror (auto, MatchUpstream), each taking both warehouses from dev.
const TWO_WAREHOUSES: &str = r#"{
  "project": "shop",
  "warehouses": [{"name": "images", "kind": "image"}, {"name": "config", "kind": "git"}],
  "stages": [
    {"name": "dev", "requested_freight": [{"origin": "images", "sources": {"direct": true}},
                                          {"origin": "config", "sources": {"direct": true}}],
     "verification": ["smoke"], "policy": {"mode": "auto"}},
    {"name": "staging", "requested_freight": [{"origin": "images", "sources": {"stages": ["dev"]}},
                                              {"origin": "config", "sources": {"stages": ["dev"]}}],
     "policy": {"mode": "auto"}},
    {"name": "mirror", "auto_selection": "MatchUpstream",
     "requested_freight": [{"origin": "images", "sources": {"stages": ["dev"]}},
                           {"origin": "config", "sources": {"stages": ["dev"]}}],
     "policy": {"mode": "auto"}}
  ]
}"#;

fn two_warehouses() -> Scenario {
    let mut s = Scenario::empty();
    let def: PipelineDefinition = serde_json::from_str(TWO_WAREHOUSES).expect("pipeline json");
    s.ok(alice(), apply(def));
    s
}

/// Discovers a config commit and returns the freight id.
fn discover_config(s: &mut Scenario, commit: char) -> String {
    let cmd = Command::RecordDiscovery {
        warehouse: "config".into(),
        artifacts: vec![Artifact {
            kind: ArtifactKind::Git,
            name: "https://git.example/config".into(),
            version: "main".into(),
            digest: commit.to_string().repeat(40),
        }],
        alias: format!("c{commit}"),
    };
    match s.ok(robot(), cmd) {
        EventPayload::FreightDiscovered(d) => d.freight_id,
        other => panic!("{other:?}"),
    }
}

/// What auto-promotion wants now, as (stage, freight).
fn intents(s: &Scenario) -> Vec<(String, String)> {
    let mut out: Vec<_> = due(&s.state, s.now)
        .into_iter()
        .map(|i| (i.stage, i.freight))
        .collect();
    out.sort();
    out
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// `pairs` in the order [`intents`] gives them.
fn sorted<const N: usize>(pairs: [(String, String); N]) -> Vec<(String, String)> {
    let mut v = pairs.to_vec();
    v.sort();
    v
}

fn rollback(stage: &str, warehouse: &str) -> Command {
    Command::Rollback {
        stage: stage.into(),
        warehouse: warehouse.into(),
        ticket: String::new(),
        reason: "broken".into(),
    }
}

#[test]
fn a_promotion_replaces_the_freight_of_its_own_warehouse_only() {
    let mut s = two_warehouses();
    let i1 = s.discover("1.0");
    s.deploy("dev", &i1, &[]);
    let c1 = discover_config(&mut s, 'a');
    s.deploy("dev", &c1, &[]);
    assert_eq!(
        s.runs("dev"),
        [pair("config", &c1), pair("images", &i1)],
        "the config freight joins the image, not replaces it"
    );
    // Both still run there: each can be verified there.
    s.ok(robot(), verification(&i1, "dev", "smoke", true));
    assert!(s.state.freight[&i1].verified_in.contains_key("dev"));
    s.refused(alice(), promote("dev", &c1, ""), Reason::AlreadyCurrent);
    s.refused(alice(), promote("dev", &i1, ""), Reason::AlreadyCurrent);

    s.advance(Duration::minutes(5));
    let i2 = s.discover("2.0");
    s.deploy("dev", &i2, &[]);
    assert_eq!(s.runs("dev"), [pair("config", &c1), pair("images", &i2)]);
    assert!(!s.state.freight[&i1].currently_in.contains_key("dev"));
    assert!(s.state.freight[&c1].currently_in.contains_key("dev"));
    // i1's tenure in dev ended: its soak there stops growing.
    let v = &s.state.freight[&i1]
        .verified_in
        .get("dev")
        .expect("verified in dev");
    assert_eq!(v.since, None, "{v:?}");
}

#[test]
fn auto_promotion_has_a_candidate_per_warehouse() {
    let mut s = two_warehouses();
    let i1 = s.discover("1.0");
    let c1 = discover_config(&mut s, 'a');
    assert_eq!(
        intents(&s),
        sorted([pair("dev", &c1), pair("dev", &i1)]),
        "the newest of each warehouse, not only the newest of all"
    );
    s.deploy("dev", &i1, &[]);
    s.deploy("dev", &c1, &[]);
    assert!(intents(&s).is_empty(), "{:?}", intents(&s));
    // Verified in dev, each goes on to staging, and mirror matches dev.
    s.ok(robot(), verification(&i1, "dev", "smoke", true));
    assert_eq!(
        intents(&s),
        sorted([pair("mirror", &i1), pair("staging", &i1)])
    );
    s.ok(robot(), verification(&c1, "dev", "smoke", true));
    assert_eq!(
        intents(&s),
        sorted([
            pair("mirror", &c1),
            pair("mirror", &i1),
            pair("staging", &c1),
            pair("staging", &i1)
        ])
    );
}

#[test]
fn the_newest_available_may_be_of_one_warehouse() {
    let mut s = two_warehouses();
    let i1 = s.discover("1.0");
    let c1 = discover_config(&mut s, 'a');
    let newest = |warehouse: &str| Command::RequestPromotion {
        stage: "dev".into(),
        freight: match warehouse {
            "" => FreightSelector::NewestAvailable,
            w => FreightSelector::NewestOf(w.into()),
        },
        ticket: String::new(),
        reason: String::new(),
    };
    let requested = |s: &mut Scenario, cmd| match s.decide(alice(), cmd) {
        Ok(Decision::Append {
            payload: EventPayload::PromotionRequested(r),
            ..
        }) => r.freight_id,
        other => panic!("{other:?}"),
    };
    assert_eq!(requested(&mut s, newest("")), c1, "of any warehouse");
    assert_eq!(requested(&mut s, newest("images")), i1);
    assert_eq!(requested(&mut s, newest("config")), c1);
    let r = s.invalid(alice(), newest("charts"));
    assert!(
        r.to_string().contains(
            "stage dev does not take freight from warehouse charts (it takes images, config)"
        ),
        "{r}"
    );
    // staging: nothing of images is verified in dev yet.
    let r = s.refused(
        alice(),
        Command::RequestPromotion {
            stage: "staging".into(),
            freight: FreightSelector::NewestOf("images".into()),
            ticket: String::new(),
            reason: String::new(),
        },
        Reason::FreightNotAvailable,
    );
    assert!(
        r.to_string()
            .contains("no freight of warehouse images is available to stage staging"),
        "{r}"
    );
}

#[test]
fn a_rollback_names_the_warehouse_when_the_stage_runs_several() {
    let mut s = two_warehouses();
    let i1 = s.discover("1.0");
    s.deploy("dev", &i1, &[]);
    s.advance(Duration::minutes(5));
    let i2 = s.discover("2.0");
    s.deploy("dev", &i2, &[]);
    let c1 = discover_config(&mut s, 'a');
    s.deploy("dev", &c1, &[]);

    let r = s.invalid(alice(), rollback("dev", ""));
    assert!(
        r.to_string()
            .contains("stage dev runs freight of several warehouses (images, config)"),
        "{r}"
    );
    let r = s.invalid(alice(), rollback("dev", "charts"));
    assert!(
        r.to_string()
            .contains("does not take freight from warehouse charts"),
        "{r}"
    );
    let r = s.refused(alice(), rollback("dev", "config"), Reason::NoRollbackTarget);
    assert!(
        r.to_string()
            .contains("no earlier freight of warehouse config"),
        "{r}"
    );
    let rb = match s.ok(alice(), rollback("dev", "images")) {
        EventPayload::PromotionRequested(r) => {
            assert_eq!(r.freight_id, i1);
            r.promotion_id
        }
        other => panic!("{other:?}"),
    };
    s.succeed(&rb);
    assert_eq!(s.runs("dev"), [pair("config", &c1), pair("images", &i1)]);
    // The rollback holds the images only: new config still goes in.
    assert_eq!(s.hold("dev"), Some(i1.clone()));
    s.advance(Duration::minutes(5));
    s.discover("3.0");
    let c2 = discover_config(&mut s, 'b');
    assert_eq!(intents(&s), [pair("dev", &c2)]);
}
