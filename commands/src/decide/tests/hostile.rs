//! Hostile requests (proptest): arbitrary names with wildcards, dots, spaces,
//! control characters and non-ASCII, oversized text, wrong enum values and
//! non-finite metrics, through the request conversion and `decide` on the
//! example pipeline. Nothing panics; conversion refuses only as `Invalid`;
//! whatever `decide` would append either passes the ledger's validation or
//! is refused by it — and when it passes, every name in it follows the rule.

use proptest::prelude::*;
use waybill_ledger::name::name_problem;
use waybill_proto::v1 as pb;
use waybill_proto::v1::request_promotion_request::FreightSelector as Selector;

use super::*;
use crate::service::convert;

fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,70}",
        ".{0,40}",
        Just("dev".to_string()),
        Just("prod".to_string()),
        Just("images".to_string()),
        Just("integration-tests".to_string()),
        "[a-z]{1,5}[.*> \\x07\\x00\u{f6}\u{202e}][a-z]{0,5}",
        (4000usize..6000).prop_map(|n| "x".repeat(n)),
    ]
}

/// The names an event carries, for the name rule.
fn names(payload: &EventPayload) -> Vec<&str> {
    match payload {
        EventPayload::FreightDiscovered(d) => vec![d.warehouse.as_str()],
        EventPayload::VerificationRecorded(v) => vec![v.stage.as_str(), v.check.as_str()],
        EventPayload::PromotionRequested(r) => vec![r.stage.as_str()],
        EventPayload::FreightApproved(a) => vec![a.stage.as_str()],
        _ => vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_requests_are_refused_or_decided_never_a_panic(
        stage in hostile(),
        freight in hostile(),
        text in hostile(),
        kind in -2i32..6,
        result in -2i32..6,
        metric in prop::num::f64::ANY,
        known_freight in any::<bool>(),
    ) {
        let mut s = Scenario::shop();
        let existing = s.discover("1.0");
        let f = if known_freight { existing } else { freight.clone() };
        let requests = vec![
            convert::promotion(&pb::RequestPromotionRequest {
                project: "shop".into(),
                stage: stage.clone(),
                freight_selector: Some(Selector::Freight(f.clone())),
                ticket: text.clone(),
                reason: text.clone(),
                ..Default::default()
            }),
            convert::discovery(&pb::RecordDiscoveryRequest {
                project: "shop".into(),
                warehouse: stage.clone(),
                artifacts: vec![pb::Artifact {
                    kind,
                    name: text.clone(),
                    version: freight.clone(),
                    digest: text.clone(),
                }],
                alias: freight.clone(),
                ..Default::default()
            }),
            convert::verification(&pb::RecordVerificationRequest {
                project: "shop".into(),
                freight: f.clone(),
                stage: stage.clone(),
                check: text.clone(),
                passed: true,
                metrics: [("m".to_string(), metric)].into_iter().collect(),
                evidence_url: text.clone(),
                details: text.clone(),
                ..Default::default()
            }),
            convert::result(&pb::ReportPromotionResultRequest {
                project: "shop".into(),
                promotion_id: f.clone(),
                result,
                details: text.clone(),
                ..Default::default()
            }),
        ];
        for request in requests {
            match request {
                Err(Rejection::Invalid { .. }) => {}
                Err(other) => prop_assert!(false, "conversion refused with {other:?}"),
                Ok(cmd) => {
                    if let Ok(Decision::Append { payload, .. }) = s.decide(alice(), cmd) {
                        if payload.validate().is_ok() {
                            for n in names(&payload) {
                                prop_assert!(name_problem(n).is_none(), "{n:?} in {payload:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}
