//! A state saved at a clean shutdown: taken back by the next process,
//! idempotency keys included, while a crash leaves nothing; and not used
//! when the log no longer matches it.

use waybill_commands::handler::{ColdStore, CommandHandler};
use waybill_commands::{Command, FreightSelector};

use crate::common;
use crate::{apply_pipeline, handler, project, user};

/// Applies the pipeline and discovers versions `0..n`.
async fn configure_and_discover(h: &CommandHandler, n: usize) -> anyhow::Result<()> {
    h.execute(&project(), &user(0), apply_pipeline()?, None)
        .await?;
    for i in 0..n {
        h.execute(&project(), &user(0), common::discovery(i), None)
            .await?;
    }
    Ok(())
}

/// The freight ids the project's state holds in memory.
async fn freight_in_memory(h: &CommandHandler) -> anyhow::Result<Vec<String>> {
    Ok(
        h.inspect(&project(), |s| s.freight.keys().cloned().collect())
            .await?,
    )
}

/// A clean shutdown's state is taken back by the next process, idempotency
/// keys included (a retry answers with the original event, not the log's
/// duplicate notice); a process that ends without saving leaves nothing
/// for the next one.
#[tokio::test]
async fn a_clean_shutdown_keeps_the_state_and_a_crash_does_not() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = user(0);
    let h = handler(dir.path(), Some(1000));
    configure_and_discover(&h, 3).await?;
    // A command that is not idempotent by its content: only its key tells
    // a retry from a second request.
    let request = || Command::RequestPromotion {
        stage: "dev".into(),
        freight: FreightSelector::Named("v1".into()),
        ticket: String::new(),
        reason: String::new(),
    };
    let first = h
        .execute(&project(), &admin, request(), Some("request".into()))
        .await?;
    assert!(!first.already_done);
    let before = freight_in_memory(&h).await?;
    assert_eq!(before.len(), 3);
    assert_eq!(h.save_state().await?, 1);
    drop(h);

    let h = handler(dir.path(), Some(1000));
    let store = h.cold_store().expect("store");
    assert_eq!(store.snapshots()?, 1);
    let retry = h
        .execute(&project(), &admin, request(), Some("request".into()))
        .await?;
    assert!(retry.already_done);
    assert_eq!(
        (retry.position, retry.event_id),
        (first.position, first.event_id)
    );
    assert_eq!(h.cold_store().map(ColdStore::restored), Some(1));
    assert_eq!(freight_in_memory(&h).await?, before);
    // A new command goes on from the state taken back.
    let next = h
        .execute(&project(), &admin, common::discovery(3), None)
        .await?;
    assert!(!next.already_done);
    drop(h);

    // Not saved this time (as if killed): the next store starts empty.
    let h = handler(dir.path(), Some(1000));
    assert_eq!(h.cold_store().expect("store").snapshots()?, 0);
    assert_eq!(freight_in_memory(&h).await?.len(), 4);
    assert_eq!(h.cold_store().map(ColdStore::restored), Some(0));
    Ok(())
}

/// A saved state whose last event the log no longer holds (here: the log
/// was replaced by another one with the same positions) is not used: the
/// project is folded from the new log.
#[tokio::test]
async fn a_saved_state_the_log_does_not_match_is_folded_again() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = user(0);
    let h = handler(dir.path(), Some(1000));
    configure_and_discover(&h, 3).await?;
    assert_eq!(h.save_state().await?, 1);
    drop(h);

    // Another history at the same positions.
    std::fs::remove_dir_all(dir.path().join("log"))?;
    let other = handler(dir.path(), None);
    other
        .execute(&project(), &admin, apply_pipeline()?, None)
        .await?;
    for i in 10..13 {
        other
            .execute(&project(), &admin, common::discovery(i), None)
            .await?;
    }
    let want = freight_in_memory(&other).await?;
    drop(other);

    let h = handler(dir.path(), Some(1000));
    assert_eq!(h.cold_store().expect("store").snapshots()?, 1);
    assert_eq!(freight_in_memory(&h).await?, want);
    assert_eq!(h.cold_store().map(ColdStore::restored), Some(0));
    assert_eq!(h.cold_store().expect("store").snapshots()?, 0);
    Ok(())
}
