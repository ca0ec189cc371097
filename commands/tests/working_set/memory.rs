//! Records really leave memory: after many discoveries and promotions the
//! working set stays bounded while retries and old aliases still work; and
//! the cold store belongs to one process and starts empty unless sealed.

use waybill_commands::handler::ColdStore;
use waybill_commands::{Command, FreightSelector, PromotionResult};
use waybill_ledger::EventPayload;

use crate::common;
use crate::{apply_pipeline, handler, project, user};

/// Records really leave memory: after many discoveries and promotions the
/// working set holds a bounded number of them, and a retry of the very
/// first command (its key long moved out) still answers with its position.
#[tokio::test]
async fn records_leave_memory_and_come_back() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let h = handler(dir.path(), Some(4));
    let admin = user(0);
    let apply = apply_pipeline()?;
    let first = h
        .execute(&project(), &admin, apply.clone(), Some("apply".into()))
        .await?;
    for i in 0..60 {
        let o = h
            .execute(&project(), &admin, common::discovery(i), None)
            .await?;
        let Some(EventPayload::FreightDiscovered(d)) = o.payload else {
            anyhow::bail!("discovery {i}: {o:?}");
        };
        let request = h
            .execute(
                &project(),
                &admin,
                Command::RequestPromotion {
                    stage: "dev".into(),
                    freight: FreightSelector::Named(d.freight_id.clone()),
                    ticket: String::new(),
                    reason: String::new(),
                },
                None,
            )
            .await?;
        let Some(EventPayload::PromotionRequested(r)) = request.payload else {
            anyhow::bail!("promotion {i}: {request:?}");
        };
        for result in [PromotionResult::Started, PromotionResult::Succeeded] {
            h.execute(
                &project(),
                &admin,
                Command::ReportPromotionResult {
                    promotion: r.promotion_id.clone(),
                    result,
                    details: String::new(),
                },
                None,
            )
            .await?;
        }
    }
    // Records move out on the store's own thread, after the command that
    // went over the limit: wait for the last move (at most 5 s).
    let mut counts = (0, 0, 0, 0);
    for _ in 0..500 {
        counts = h
            .inspect(&project(), |s| {
                (s.freight.len(), s.promotions.len(), s.commands.len(), s.seq)
            })
            .await?;
        if counts.0 <= 5 && counts.1 <= 5 && counts.2 <= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (freight, promotions, commands, seq) = counts;
    assert!(seq > 150, "{seq} events");
    assert!(freight <= 5, "{freight} freight in memory");
    assert!(promotions <= 5, "{promotions} promotions in memory");
    assert!(commands <= 5, "{commands} idempotency keys in memory");
    let retry = h
        .execute(&project(), &admin, apply, Some("apply".into()))
        .await?;
    assert!(retry.already_done);
    assert_eq!(retry.position, first.position);
    assert_eq!(retry.event_id, first.event_id);
    // An old freight, long moved out, is found by its alias and promoted.
    let again = h
        .execute(
            &project(),
            &admin,
            Command::RequestPromotion {
                stage: "dev".into(),
                freight: FreightSelector::Named("v3".into()),
                ticket: String::new(),
                reason: String::new(),
            },
            None,
        )
        .await?;
    assert!(matches!(
        again.payload,
        Some(EventPayload::PromotionRequested(ref r)) if r.stage == "dev"
    ));
    Ok(())
}

/// The store is one process's cache: a second open of it is refused while
/// the first holds it, and what a killed process left there is cleared away.
#[test]
fn the_store_belongs_to_one_process_and_starts_empty_unless_sealed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cold");
    let first = ColdStore::open(&path)?;
    let second = ColdStore::open(&path);
    let err = second.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("another process uses"), "{err}");
    drop(first);
    assert!(!path.exists(), "removed when dropped");

    std::fs::create_dir_all(&path)?;
    std::fs::write(path.join("conf"), b"not a sled config")?;
    std::fs::write(path.join("db"), b"not a sled database")?;
    let store = ColdStore::open(&path)?;
    assert_eq!(store.project("ws").alias("v1")?, None);
    Ok(())
}
