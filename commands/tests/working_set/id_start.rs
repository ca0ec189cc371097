//! A freight named by the start of its id (as the CLI's tables print it) is
//! found by the command handler wherever its record is, in memory or moved
//! out to the cold store, and the event names the whole id; a start of
//! several ids is refused, naming them, and appends nothing. A promotion
//! named by the start of its id (`prm-` and six hex digits or more) too.

use std::collections::HashMap;

use waybill_commands::handler::CommandError;
use waybill_commands::{Command, FreightSelector, PromotionResult, Rejection};
use waybill_ledger::domain::freight_id;
use waybill_ledger::EventPayload;

use crate::common;
use crate::{apply_pipeline, handler, project, user};

/// The freight id of `common::discovery(i)`.
fn id_of(i: usize) -> String {
    let Command::RecordDiscovery {
        warehouse,
        artifacts,
        ..
    } = common::discovery(i)
    else {
        unreachable!("common::discovery makes discoveries")
    };
    freight_id(&warehouse, &artifacts)
}

/// Two discoveries whose freight ids share their first six hex digits, and
/// those digits (found by hashing, as the server does).
fn twins() -> (usize, usize, String) {
    let mut seen = HashMap::new();
    (0..200_000)
        .find_map(|i| {
            let start = id_of(i)[..6].to_string();
            seen.insert(start.clone(), i).map(|j| (j, i, start))
        })
        .expect("two ids with one start among 200,000")
}

/// Whether a record `held` finds in the project's state leaves memory
/// within five seconds (moves run beside the commands).
async fn moved_out(
    h: &waybill_commands::handler::CommandHandler,
    held: impl Fn(&waybill_ledger::domain::ProjectState) -> bool + Copy,
) -> anyhow::Result<bool> {
    for _ in 0..500 {
        if !h.inspect(&project(), held).await? {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(false)
}

/// Asserts that `refused` is the refusal of a start that the `kind` ids
/// `ids` share, naming them.
fn ambiguous(refused: CommandError, kind: &str, ids: [&String; 2]) {
    let CommandError::Rejected(Rejection::Invalid { field, message }) = refused else {
        panic!("{kind}: {refused:?}")
    };
    assert_eq!(field, kind);
    assert!(
        message.contains(&format!("more than one {kind} id")),
        "{message}"
    );
    assert!(
        ids.iter().all(|id| message.contains(id.as_str())),
        "{message}"
    );
}

/// A promotion of `freight` into dev.
fn into_dev(freight: impl Into<String>) -> Command {
    Command::RequestPromotion {
        stage: "dev".into(),
        freight: FreightSelector::Named(freight.into()),
        ticket: String::new(),
        reason: String::new(),
    }
}

fn verification(freight: &str) -> Command {
    Command::RecordVerification {
        freight: freight.into(),
        stage: "staging".into(),
        check: "integration-tests".into(),
        passed: true,
        metrics: Default::default(),
        evidence_url: String::new(),
        details: String::new(),
    }
}

#[tokio::test]
async fn a_freight_is_named_by_the_start_of_its_id_in_memory_or_moved_out() -> anyhow::Result<()> {
    let (a, b, shared) = twins();
    let (id_a, id_b) = (id_of(a), id_of(b));
    for hot in [Some(4), None] {
        let dir = tempfile::tempdir()?;
        let h = handler(dir.path(), hot);
        let admin = user(0);
        h.execute(&project(), &admin, apply_pipeline()?, None)
            .await?;
        // One twin first, twenty others, then the other twin: with four
        // records in memory the first is moved out.
        h.execute(&project(), &admin, common::discovery(a), None)
            .await?;
        for i in 0..20 {
            h.execute(&project(), &admin, common::discovery(1_000_000 + i), None)
                .await?;
        }
        h.execute(&project(), &admin, common::discovery(b), None)
            .await?;
        if hot.is_some() {
            let out = moved_out(&h, |s| s.freight.contains_key(&id_a)).await?;
            assert!(out, "{hot:?}: the first twin stays in memory");
        }

        // Twelve digits, as `waybill status` prints them: the whole id in
        // the event, wherever the record was.
        let o = h
            .execute(&project(), &admin, verification(&id_a[..12]), None)
            .await?;
        match o.payload {
            Some(EventPayload::VerificationRecorded(v)) => assert_eq!(v.freight_id, id_a),
            other => panic!("{hot:?}: {other:?}"),
        }
        let o = h
            .execute(&project(), &admin, into_dev(id_b[..8].to_string()), None)
            .await?;
        match o.payload {
            Some(EventPayload::PromotionRequested(r)) => assert_eq!(r.freight_id, id_b),
            other => panic!("{hot:?}: {other:?}"),
        }

        // The shared start: refused, naming both, nothing appended.
        let before = h.inspect(&project(), |s| s.position).await?;
        match h
            .execute(&project(), &admin, verification(&shared), None)
            .await
        {
            Err(refused) => ambiguous(refused, "freight", [&id_a, &id_b]),
            other => panic!("{hot:?}: {other:?}"),
        }
        // A start of no id, and one too short to be taken for one: not found.
        let none = if shared.starts_with('0') {
            "1111111"
        } else {
            "0000000"
        };
        for reference in [none, &id_a[..5]] {
            match h
                .execute(&project(), &admin, verification(reference), None)
                .await
            {
                Err(CommandError::Rejected(Rejection::NotFound { what, id })) => {
                    assert_eq!((what, id.as_str()), ("freight", reference));
                }
                other => panic!("{hot:?} {reference}: {other:?}"),
            }
        }
        assert_eq!(h.inspect(&project(), |s| s.position).await?, before);
    }
    Ok(())
}

/// Two idempotency keys whose promotions' ids share their first six hex
/// digits (a promotion id is the start of the SHA-256 of the command id).
const PROMOTION_KEYS: [&str; 2] = ["prefix-test-6600", "prefix-test-7036"];
const SHARED_PROMOTION: &str = "prm-63cc50";

fn report(promotion: &str, result: PromotionResult) -> Command {
    Command::ReportPromotionResult {
        promotion: promotion.into(),
        result,
        details: String::new(),
    }
}

#[tokio::test]
async fn a_promotion_is_named_by_the_start_of_its_id_in_memory_or_moved_out() -> anyhow::Result<()>
{
    for hot in [Some(4), None] {
        let dir = tempfile::tempdir()?;
        let h = handler(dir.path(), hot);
        let admin = user(0);
        h.execute(&project(), &admin, apply_pipeline()?, None)
            .await?;
        // Two promotions into dev (deployed by an executor), under keys
        // that give their ids one start.
        let mut ids = Vec::new();
        for (i, key) in PROMOTION_KEYS.into_iter().enumerate() {
            h.execute(&project(), &admin, common::discovery(i), None)
                .await?;
            let o = h
                .execute(
                    &project(),
                    &admin,
                    into_dev(format!("v{i}")),
                    Some(key.to_string()),
                )
                .await?;
            match o.payload {
                Some(EventPayload::PromotionRequested(r)) => {
                    assert!(r.promotion_id.starts_with(SHARED_PROMOTION), "{r:?}");
                    ids.push(r.promotion_id);
                }
                other => panic!("{hot:?}: {other:?}"),
            }
        }
        let (first, second) = (ids[0].clone(), ids[1].clone());
        // The first, named by twelve characters, runs and succeeds: the
        // events name the whole id.
        for result in [PromotionResult::Started, PromotionResult::Succeeded] {
            let o = h
                .execute(&project(), &admin, report(&first[..12], result), None)
                .await?;
            let named = o
                .payload
                .as_ref()
                .and_then(waybill_ledger::domain::working_set::promotion_of);
            assert_eq!(named, Some(first.as_str()), "{hot:?}");
        }
        // The second and five more promotions succeed there: with more
        // than four promotions in memory the oldest finished ones are moved
        // out (after twenty discoveries, so are the freight).
        for result in [PromotionResult::Started, PromotionResult::Succeeded] {
            h.execute(&project(), &admin, report(&second, result), None)
                .await?;
        }
        for i in 2..7 {
            h.execute(&project(), &admin, common::discovery(i), None)
                .await?;
            let o = h
                .execute(&project(), &admin, into_dev(format!("v{i}")), None)
                .await?;
            let id = match o.payload {
                Some(EventPayload::PromotionRequested(r)) => r.promotion_id,
                other => panic!("{hot:?}: {other:?}"),
            };
            for result in [PromotionResult::Started, PromotionResult::Succeeded] {
                h.execute(&project(), &admin, report(&id, result), None)
                    .await?;
            }
        }
        for i in 0..20 {
            h.execute(&project(), &admin, common::discovery(2_000_000 + i), None)
                .await?;
        }
        if hot.is_some() {
            let out = moved_out(&h, |s| s.promotions.contains_key(&first)).await?;
            assert!(out, "{hot:?}: the ended promotion stays in memory");
        }
        let before = h.inspect(&project(), |s| s.position).await?;
        // Found where it is: aborting it is refused because it ended.
        match h
            .execute(
                &project(),
                &admin,
                Command::AbortPromotion {
                    promotion: first[..12].to_string(),
                    reason: String::new(),
                },
                None,
            )
            .await
        {
            Err(CommandError::Rejected(Rejection::Policy { message, .. })) => {
                assert!(
                    message.contains(&first) && message.contains("Succeeded"),
                    "{message}"
                );
            }
            other => panic!("{hot:?}: {other:?}"),
        }
        // The shared start: refused, naming both.
        match h
            .execute(
                &project(),
                &admin,
                Command::AbortPromotion {
                    promotion: SHARED_PROMOTION.into(),
                    reason: String::new(),
                },
                None,
            )
            .await
        {
            Err(refused) => ambiguous(refused, "promotion", [&first, &second]),
            other => panic!("{hot:?}: {other:?}"),
        }
        // A start of no id, and one too short to be taken for one.
        for reference in ["prm-000000", "prm-63cc5"] {
            match h
                .execute(
                    &project(),
                    &admin,
                    report(reference, PromotionResult::Started),
                    None,
                )
                .await
            {
                Err(CommandError::Rejected(Rejection::NotFound { what, id })) => {
                    assert_eq!((what, id.as_str()), ("promotion", reference));
                }
                other => panic!("{hot:?} {reference}: {other:?}"),
            }
        }
        assert_eq!(h.inspect(&project(), |s| s.position).await?, before);
    }
    Ok(())
}
