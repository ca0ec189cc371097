//! A freight named by the start of its id (as the CLI's tables print it) is
//! found by the command handler wherever its record is, in memory or moved
//! out to the cold store, and the event names the whole id; a start of
//! several ids is refused, naming them, and appends nothing.

use std::collections::HashMap;

use waybill_commands::handler::CommandError;
use waybill_commands::{Command, FreightSelector, Rejection};
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
            let mut out = false;
            for _ in 0..500 {
                out = !h
                    .inspect(&project(), |s| s.freight.contains_key(&id_a))
                    .await?;
                if out {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
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
            .execute(
                &project(),
                &admin,
                Command::RequestPromotion {
                    stage: "dev".into(),
                    freight: FreightSelector::Named(id_b[..8].to_string()),
                    ticket: String::new(),
                    reason: String::new(),
                },
                None,
            )
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
            Err(CommandError::Rejected(Rejection::Invalid { field, message })) => {
                assert_eq!(field, "freight");
                assert!(message.contains("more than one freight id"), "{message}");
                assert!(
                    message.contains(&id_a) && message.contains(&id_b),
                    "{message}"
                );
            }
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
