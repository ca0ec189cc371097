//! `EventLog::append_copies`: records copied from another log land as they
//! were (same bytes, hash and position) on either backend, from either
//! backend; a copy that does not follow what the target holds writes nothing.

use std::sync::Arc;

use futures::StreamExt;

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

/// Every message of `source` after `target`'s head into `target`, one at a
/// time: records with `append_copies`, foreign messages with
/// `append_foreign_copy` (as `waybill copy` does).
async fn copy_all(source: &dyn EventLog, target: &dyn EventLog) {
    let from = target.head().await.expect("head").next();
    let mut items = source.read_all(from).await.expect("read");
    while let Some(item) = items.next().await {
        let written = match item {
            Ok(ev) => target.append_copies(std::slice::from_ref(&ev)).await,
            Err(LedgerError::Foreign(f)) => target.append_foreign_copy(&f).await,
            Err(e) => panic!("reading the source: {e}"),
        };
        written.expect("copy");
    }
}

/// Each message as (position, bytes, whether it is foreign).
async fn messages(log: &dyn EventLog) -> Vec<(u64, Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut items = log.read_all(Position(1)).await.expect("read");
    while let Some(item) = items.next().await {
        out.push(match item {
            Ok(ev) => (ev.position.0, ev.bytes.to_vec(), false),
            Err(LedgerError::Foreign(f)) => (f.position.0, f.bytes.to_vec(), true),
            Err(e) => panic!("{e}"),
        });
    }
    out
}

/// A message Waybill did not write, on a JetStream stream, is copied at its
/// position into the embedded store and back onto JetStream, and reads back
/// as foreign each time: the copy keeps every position (and so the Merkle
/// tree), the chains verify around it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_messages_are_copied_at_their_positions() {
    let jet = jetstream().await;
    fill(&*jet.log, "f").await;
    let url = jet.server.as_ref().expect("server").url();
    let client = async_nats::connect(url).await.expect("connect");
    client
        .publish("waybill.alpha.FreightDiscovered", "stray".into())
        .await
        .expect("publish");
    client.flush().await.expect("flush");
    let alpha = project("alpha");
    let last = jet.log.last_position(&alpha).await.expect("last");
    assert_eq!(last, Position(41), "the stray message is alpha's last");
    jet.log
        .append(&alpha, last, approval("after"))
        .await
        .expect("append after it");

    let original = messages(&*jet.log).await;
    assert_eq!(original.len(), 42);
    assert_eq!(original[40], (41, b"stray".to_vec(), true));
    let back = sled();
    copy_all(&*jet.log, &*back.log).await;
    let again = jetstream().await;
    copy_all(&*back.log, &*again.log).await;
    for (name, log) in [("sled", &back.log), ("jetstream", &again.log)] {
        assert_eq!(messages(&**log).await, original, "{name}");
        let report = verify_log(&**log, None, |_| {}).await.expect("verify");
        assert!(report.first_break.is_none(), "{name}");
        assert_eq!((report.events, report.foreign_count), (41, 1), "{name}");
    }

    // Not at the next position: refused, nothing written.
    let empty = sled();
    let foreign = match back
        .log
        .read_all(Position(41))
        .await
        .expect("read")
        .next()
        .await
    {
        Some(Err(LedgerError::Foreign(f))) => f,
        other => panic!("expected the foreign message, got {other:?}"),
    };
    let refused = empty.log.append_foreign_copy(&foreign).await;
    assert!(
        matches!(
            refused,
            Err(LedgerError::Conflict {
                actual: Position(0)
            })
        ),
        "{refused:?}"
    );
    assert_eq!(empty.log.head().await.expect("head"), Position(0));
}
