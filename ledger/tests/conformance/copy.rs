//! `EventLog::append_copies`: records copied from another log land as they
//! were (same bytes, hash and position) on either backend, from either
//! backend; a copy that does not follow what the target holds writes nothing.

use std::sync::Arc;

use waybill_ledger::{verify_log, EventLog, LedgerError, Position, StoredEvent};

use super::support::*;

/// 40 events over three projects, interleaved, on `log`.
async fn fill(log: &dyn EventLog, tag: &str) {
    let projects = [project("alpha"), project("beta"), project("gamma")];
    for i in 0..40 {
        let p = &projects[(i * 7 + i / 3) % 3];
        let head = log.last_position(p).await.expect("head");
        let event = if i % 2 == 0 {
            approval(&format!("{tag}-{i}"))
        } else {
            request(&format!("{tag}-{i}"), "prod")
        };
        log.append(p, head, event).await.expect("append");
    }
}

/// Copies everything `source` has past `target`'s head, `batch` records at a time.
async fn copy(source: &dyn EventLog, target: &dyn EventLog, batch: usize) {
    let from = target.head().await.expect("head").next();
    let records = collect(source, from).await;
    for chunk in records.chunks(batch) {
        let head = target.append_copies(chunk).await.expect("copy");
        assert_eq!(head, chunk[chunk.len() - 1].position);
    }
}

/// What the copy must keep: position, bytes and hash, and a stored hash
/// that agrees.
fn kept(events: &[StoredEvent]) -> Vec<(Position, Vec<u8>, String)> {
    events
        .iter()
        .map(|e| {
            assert_eq!(e.stored_hash, Some(e.hash), "stored hash at {}", e.position);
            (e.position, e.bytes.to_vec(), e.hash.to_hex())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_land_as_they_were_between_the_backends() {
    let source = sled();
    fill(&*source.log, "s").await;
    let original = kept(&collect(&*source.log, Position(1)).await);
    assert_eq!(original.len(), 40);

    // sled → JetStream, in two goes (a copy resumes from the target's head),
    // then JetStream → sled.
    let jet = jetstream().await;
    let first: Vec<StoredEvent> = collect(&*source.log, Position(1)).await[..11].to_vec();
    jet.log.append_copies(&first).await.expect("first part");
    copy(&*source.log, &*jet.log, 7).await;
    let back = sled();
    copy(&*jet.log, &*back.log, 16).await;

    for (name, target) in [("jetstream", &jet.log), ("sled", &back.log)] {
        assert_eq!(
            kept(&collect(&**target, Position(1)).await),
            original,
            "{name}"
        );
        let report = verify_log(&**target, None, |_| {}).await.expect("verify");
        assert!(
            report.first_break.is_none(),
            "{name}: {:?}",
            report.first_break
        );
        assert_eq!(report.events, 40, "{name}");
        for p in ["alpha", "beta", "gamma"] {
            let p = project(p);
            assert_eq!(
                target.project_head(&p).await.expect("head"),
                source.log.project_head(&p).await.expect("head"),
                "{name} {p}"
            );
        }
        // Appends go on from the copied heads.
        let p = project("beta");
        let head = target.last_position(&p).await.expect("head");
        let appended = target
            .append(&p, head, approval("after-copy"))
            .await
            .expect("append");
        assert_eq!(appended.position, Position(41), "{name}");
        let chain = collect_project(&**target, &p).await;
        assert_eq!(
            chain[chain.len() - 2].hash,
            appended.event.prev_hash,
            "{name}"
        );
        // A copied command id is known to the target's idempotency check.
        let first_beta = chain[0].event.command_id.clone();
        let retry = target
            .append(&p, appended.position, approval(&first_beta))
            .await;
        assert!(
            matches!(retry, Err(LedgerError::Duplicate { original }) if original == chain[0].position),
            "{name}: {retry:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_does_not_follow_the_target_writes_nothing() {
    let source = sled();
    fill(&*source.log, "s").await;
    let records = collect(&*source.log, Position(1)).await;
    let other = sled();
    fill(&*other.log, "o").await;
    let foreign = collect(&*other.log, Position(1)).await;

    let jet = jetstream().await;
    let embedded = sled();
    for (name, target) in [
        ("jetstream", jet.log.clone()),
        ("sled", embedded.log.clone()),
    ] {
        let target: Arc<dyn EventLog> = target;
        target
            .append_copies(&records[..10])
            .await
            .expect("first ten");
        let before = kept(&collect(&*target, Position(1)).await);
        let refused = |result: Result<Position, LedgerError>, what: &str| match result {
            Err(LedgerError::Conflict { actual }) => {
                assert_eq!(actual, Position(10), "{name}: {what}")
            }
            Err(LedgerError::Invalid { .. }) => {}
            other => panic!("{name}: {what}: {other:?}"),
        };
        // A gap, a repeat, another ledger's next record, a stored hash that
        // does not match, altered bytes.
        refused(target.append_copies(&records[11..14]).await, "gap");
        refused(target.append_copies(&records[4..12]).await, "repeat");
        refused(
            target.append_copies(&foreign[10..12]).await,
            "another ledger",
        );
        let mut wrong_hash = records[10].clone();
        wrong_hash.stored_hash = Some(foreign[10].hash);
        refused(target.append_copies(&[wrong_hash]).await, "stored hash");
        let mut altered = records[10].clone();
        let mut bytes = altered.bytes.to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        altered.bytes = bytes.into();
        altered.stored_hash = None;
        refused(target.append_copies(&[altered]).await, "altered bytes");
        assert_eq!(target.head().await.expect("head"), Position(10), "{name}");
        assert_eq!(
            kept(&collect(&*target, Position(1)).await),
            before,
            "{name}"
        );
        // The right records still go on.
        assert_eq!(
            target
                .append_copies(&records[10..])
                .await
                .expect("the rest"),
            Position(40),
            "{name}"
        );
    }
}
