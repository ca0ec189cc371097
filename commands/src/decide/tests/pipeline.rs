//! Applying pipelines and recording discoveries.

use waybill_ledger::domain::CommandOutcome;

use super::*;

#[test]
fn a_definition_for_another_project_or_with_problems_is_refused() {
    let mut s = Scenario::empty();
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.project = "other".into();
    s.invalid(alice(), apply(def.clone()));
    def.project = "shop".into();
    def.stages[1].requested_freight[0].sources.stages = vec!["qa".into()];
    let r = s.invalid(alice(), apply(def));
    assert!(
        r.to_string()
            .contains("stages[1].requested_freight[0].sources.stages[0]"),
        "{r}"
    );
}

#[test]
fn reapplying_the_same_definition_is_not_a_new_version() {
    let mut s = Scenario::shop();
    let version = s.state.policy_version();
    let def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    match s.decide(alice(), apply(def.clone())) {
        Ok(Decision::AlreadyDone(CommandOutcome { position, .. })) => assert_eq!(position, version),
        other => panic!("{other:?}"),
    }
    let mut changed = def;
    changed.stages[2].policy.required_approvals = 1;
    s.ok(alice(), apply(changed));
    assert!(s.state.policy_version() > version);
}

#[test]
fn decisions_use_the_policy_in_force_when_they_were_made() {
    let mut s = Scenario::shop();
    let f = ready_for_prod(&mut s, "1.0");
    let p = s.request(alice(), "prod", &f, "CHG-1");
    let v1 = s.state.promotions[&p].policy_version;
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.stages[2].policy.required_approvals = 1;
    s.ok(alice(), apply(def));
    assert_eq!(
        s.state.promotions[&p].policy_version, v1,
        "recorded version never changes"
    );
    s.ok(bob(), approve(&p));
    // Under the new policy one approval suffices.
    assert_eq!(
        s.state.promotions[&p].status,
        waybill_ledger::domain::PromotionStatus::Authorized
    );
}

#[test]
fn a_policy_that_asks_for_fewer_approvals_authorizes_what_has_enough() {
    let mut s = Scenario::shop();
    let f = ready_for_prod(&mut s, "1.0");
    let p = s.request(alice(), "prod", &f, "CHG-1");
    s.ok(bob(), approve(&p));
    let before = s.state.policy_version();
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.stages[2].policy.required_approvals = 1;
    // A dry run says so before it happens.
    assert_eq!(
        crate::decide::pipeline_effects(&s.state, &def),
        [format!(
            "{p} of v1-0 into prod: Requested → Authorized, 1 of 1 approvals counting"
        )]
    );
    let mut as_many = def.clone();
    as_many.stages[2].policy.required_approvals = 2;
    assert!(crate::decide::pipeline_effects(&s.state, &as_many).is_empty());
    s.ok(alice(), apply(def.clone()));
    // Bob's approval is all the policy in force asks for: it does not wait
    // for an approval no longer required (it waited, showing 1 of 1).
    let promotion = &s.state.promotions[&p];
    assert_eq!(
        promotion.status,
        waybill_ledger::domain::PromotionStatus::Authorized
    );
    assert_eq!(promotion.policy_version, before, "recorded version stays");
    let now_in_force = s.state.policy_version().0;
    assert_eq!(
        promotion.details,
        format!("authorized when policy version {now_in_force} came into force")
    );
    assert_eq!(s.state.stages["prod"].queue.front(), Some(&p));
    // One still short of it stays as it was.
    let g = ready_for_prod(&mut s, "2.0");
    let q = s.request(alice(), "prod", &g, "CHG-2");
    def.stages[2].policy.required_approvals = 2;
    s.ok(alice(), apply(def));
    s.ok(carol(), approve(&q));
    assert_eq!(
        s.state.promotions[&q].status,
        waybill_ledger::domain::PromotionStatus::Requested
    );
}

#[test]
fn a_stage_with_promotions_under_way_cannot_be_left_out() {
    let mut s = Scenario::shop();
    let f = ready_for_prod(&mut s, "1.0");
    let p = s.request(alice(), "prod", &f, "CHG-1");
    let mut def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    def.stages.truncate(2);
    let r = s.refused(alice(), apply(def.clone()), Reason::StageInUse);
    assert!(
        r.to_string().contains(&format!(
            "stage prod is not in the new definition but has 1 promotion(s) under way ({p})"
        )),
        "{r}"
    );
    // Changing the stage is fine; leaving it out once nothing is under way too.
    let mut changed: PipelineDefinition = serde_json::from_str(PIPELINE).expect("json");
    changed.stages[2].policy.required_approvals = 1;
    s.ok(alice(), apply(changed));
    s.ok(
        alice(),
        Command::AbortPromotion {
            promotion: p.clone(),
            reason: "prod goes".into(),
        },
    );
    s.ok(alice(), apply(def));
    assert!(s
        .state
        .definition()
        .expect("pipeline")
        .stage("prod")
        .is_none());
}

#[test]
fn rediscovery_is_idempotent_and_aliases_are_unique() {
    let mut s = Scenario::shop();
    let f = s.discover("1.0");
    let first = s.state.freight[&f].discovered;
    let found = |warehouse: &str, tag: &str, alias: &str| Command::RecordDiscovery {
        warehouse: warehouse.into(),
        artifacts: image(tag),
        alias: alias.into(),
    };
    // The same contents, with the alias they were discovered with or none,
    // are the same freight.
    for again in [discover("1.0"), found("images", "1.0", "")] {
        match s.decide(robot(), again) {
            Ok(Decision::AlreadyDone(o)) => assert_eq!(o.position, first),
            other => panic!("{other:?}"),
        }
    }
    s.invalid(robot(), found("images", "2.0", "v1-0"));
    // With another alias, refused: it would be dropped, and the name would
    // then resolve to nothing.
    let Rejection::Invalid { field, message } = s.invalid(robot(), found("images", "1.0", "r1"))
    else {
        unreachable!("invalid returns Invalid")
    };
    assert_eq!(field, "alias");
    assert!(
        message.contains("was discovered at position") && message.contains("as \"v1-0\""),
        "{message}"
    );
    s.invalid(robot(), found("charts", "2.0", ""));
}

#[test]
fn commands_before_any_pipeline_are_refused() {
    let mut s = Scenario::empty();
    let refused = s.invalid(robot(), discover("1.0"));
    assert!(
        refused
            .to_string()
            .contains("has no pipeline; apply one first"),
        "{refused}"
    );
    s.invalid(alice(), promote("dev", "x", ""));
    // A promotion named in a project without a pipeline: the project is
    // what is unknown, not the promotion.
    let refused = s.invalid(alice(), approve("prm-0123"));
    assert!(refused.to_string().contains("has no pipeline"), "{refused}");
    let refused = s.invalid(robot(), report("prm-0123", PromotionResult::Succeeded));
    assert!(refused.to_string().contains("has no pipeline"), "{refused}");
}
