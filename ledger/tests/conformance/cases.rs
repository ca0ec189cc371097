//! The behaviours every backend must share, written once.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use waybill_ledger::{verify_log, EventLog, LedgerError, Position};

use super::support::*;

/// Racing writers with the same expected position: exactly one wins, every
/// loser is told the winner's position, and the chain stays intact.
pub async fn racing_writers(log: Arc<dyn EventLog>, races: usize, writers: usize) {
    let p = project("race");
    let mut expected = Position::ZERO;
    for race in 0..races {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let log = log.clone();
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                log.append(&p, expected, approval(&format!("r{race}-w{w}")))
                    .await
            }));
        }
        let mut winners = Vec::new();
        let mut conflicts = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                Ok(a) => winners.push(a.position),
                Err(LedgerError::Conflict { actual }) => conflicts.push(actual),
                Err(e) => panic!("race {race}: unexpected error {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "race {race}: winners {winners:?}");
        assert!(
            conflicts.iter().all(|a| *a == winners[0]),
            "race {race}: losers saw {conflicts:?}, winner {winners:?}"
        );
        expected = winners[0];
    }
    let events = collect_project(&*log, &p).await;
    assert_eq!(events.len(), races);
    let report = verify_log(&*log, None, |_| {}).await.expect("verify");
    assert!(report.first_break.is_none(), "{:?}", report.first_break);
}

/// A retried command returns the original position and writes nothing.
pub async fn idempotent_retry(log: Arc<dyn EventLog>) {
    let p = project("idem");
    let first = log
        .append(&p, Position::ZERO, approval("cmd-1"))
        .await
        .expect("append");
    // Same command, same expected position: a plain retry.
    match log.append(&p, Position::ZERO, approval("cmd-1")).await {
        Err(LedgerError::Duplicate { original }) => assert_eq!(original, first.position),
        other => panic!("expected duplicate, got {other:?}"),
    }
    // The same retry after the project moved on: still the original.
    let second = log
        .append(&p, first.position, approval("cmd-2"))
        .await
        .expect("append");
    match log.append(&p, Position::ZERO, approval("cmd-1")).await {
        Err(LedgerError::Duplicate { original }) => assert_eq!(original, first.position),
        other => panic!("expected duplicate, got {other:?}"),
    }
    let events = collect(&*log, Position(1)).await;
    assert_eq!(events.len(), 2, "retries wrote nothing");
    assert_eq!(log.last_position(&p).await.expect("head"), second.position);
}

/// Per-project and global order, reads from a position, and the chain links.
pub async fn ordering(log: Arc<dyn EventLog>) {
    let projects = [project("alpha"), project("beta"), project("gamma")];
    let mut heads = BTreeMap::new();
    let mut appended = Vec::new();
    for i in 0..60 {
        let p = &projects[(i * 7) % 3];
        let expected = heads.get(p.as_str()).copied().unwrap_or(Position::ZERO);
        let a = log
            .append(p, expected, request(&format!("o{i}"), "dev"))
            .await
            .expect("append");
        heads.insert(p.as_str().to_string(), a.position);
        appended.push((p.clone(), a));
    }
    let all = collect(&*log, Position(1)).await;
    assert_eq!(all.len(), 60);
    for (ev, (p, a)) in all.iter().zip(&appended) {
        assert_eq!(ev.position, a.position);
        assert_eq!(ev.event.project, p.as_str());
        assert_eq!(ev.hash, a.hash);
        assert_eq!(ev.event.id, a.id);
    }
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    for p in &projects {
        let events = collect_project(&*log, p).await;
        assert_eq!(events.len(), 20);
        let seqs: Vec<u64> = events.iter().map(|e| e.event.project_seq).collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        for w in events.windows(2) {
            assert_eq!(w[1].event.prev_hash, w[0].hash, "chain link");
        }
        let head = log.project_head(p).await.expect("head");
        assert_eq!(head.position, events[19].position);
        assert_eq!(head.hash, events[19].hash);
        assert_eq!(head.seq, 20);
        // One event: at a position of the project, or the project's next
        // after another project's position; none after its last.
        for ev in &events {
            let one = log.next_event(p, ev.position).await.expect("next_event");
            let one = one.expect("an event");
            assert_eq!((one.position, one.hash), (ev.position, ev.hash));
            let after = log
                .next_event(p, Position(ev.position.0.saturating_sub(1)))
                .await
                .expect("next_event")
                .expect("an event");
            assert!(after.position <= ev.position && after.event.project == p.as_str());
        }
        let past = log
            .next_event(p, events[19].position.next())
            .await
            .expect("next_event");
        assert!(past.is_none(), "{past:?}");
    }
    // Reading from the middle starts exactly there.
    let mid = all[30].position;
    let tail_part = collect(&*log, mid).await;
    assert_eq!(tail_part.len(), 30);
    assert_eq!(tail_part[0].position, mid);
    assert_eq!(log.head().await.expect("head"), all[59].position);
    // Unknown projects are empty.
    assert_eq!(
        log.last_position(&project("nobody")).await.expect("head"),
        Position::ZERO
    );
    let none = log
        .next_event(&project("nobody"), Position(1))
        .await
        .expect("next_event");
    assert!(none.is_none(), "{none:?}");
    // Verification says which position it has checked, each in turn: the
    // whole log's, or one project's.
    let mut checked = Vec::new();
    let report = verify_log(&*log, None, |p| checked.push(p))
        .await
        .expect("verify");
    assert!(report.first_break.is_none());
    assert_eq!(report.events, 60);
    assert_eq!(report.heads.len(), 3);
    let positions: Vec<Position> = all.iter().map(|e| e.position).collect();
    assert_eq!(checked, positions);
    let mut checked = Vec::new();
    let report = verify_log(&*log, Some(&projects[1]), |p| checked.push(p))
        .await
        .expect("verify one project");
    assert_eq!(report.events, 20);
    let of_beta: Vec<Position> = appended
        .iter()
        .filter(|(p, _)| p == &projects[1])
        .map(|(_, a)| a.position)
        .collect();
    assert_eq!(checked, of_beta);
}

/// A stale or invented expected position is a conflict that writes nothing.
pub async fn conflicts(log: Arc<dyn EventLog>) {
    let p = project("occ");
    let a = log
        .append(&p, Position::ZERO, approval("c1"))
        .await
        .expect("append");
    for stale in [Position::ZERO, Position(a.position.0 + 5)] {
        match log.append(&p, stale, approval(&format!("c-{stale}"))).await {
            Err(LedgerError::Conflict { actual }) => assert_eq!(actual, a.position),
            other => panic!("expected conflict for {stale}, got {other:?}"),
        }
    }
    // Another project never conflicts with this one.
    log.append(&project("other"), Position::ZERO, approval("c2"))
        .await
        .expect("independent project");
    assert_eq!(collect(&*log, Position(1)).await.len(), 2);
}

/// Malformed input is refused before anything is written.
pub async fn invalid_input(log: Arc<dyn EventLog>) {
    for bad in ["Prod", "a.b", "a*", "a>", "a b", "", "-x", "ü", "x\u{7}"] {
        assert!(waybill_ledger::Name::project(bad).is_err(), "{bad:?}");
    }
    let p = project("valid");
    for (what, event) in [
        ("stage with a dot", request("i1", "prod.eu")),
        ("stage with a wildcard", request("i2", "*")),
        ("upper case stage", request("i3", "Prod")),
        ("empty command id", request("", "dev")),
        ("command id with spaces", request("a b", "dev")),
    ] {
        match log.append(&p, Position::ZERO, event).await {
            Err(LedgerError::Invalid { .. }) => {}
            other => panic!("{what}: expected Invalid, got {other:?}"),
        }
    }
    let mut huge = approval("i4");
    if let waybill_ledger::EventPayload::PromotionApproved(a) = &mut huge.payload {
        a.comment = "x".repeat(64 * 1024);
    }
    assert!(matches!(
        log.append(&p, Position::ZERO, huge).await,
        Err(LedgerError::Invalid { .. })
    ));
    assert_eq!(
        log.head().await.expect("head"),
        Position::ZERO,
        "nothing written"
    );
}

/// Appends an approval to `p` after its last position in `positions`, and
/// records the new one there.
async fn append_next(
    log: &dyn EventLog,
    p: &waybill_ledger::ProjectName,
    positions: &mut Vec<Position>,
    command_id: &str,
) {
    let head = positions.last().copied().unwrap_or(Position::ZERO);
    let a = log
        .append(p, head, approval(command_id))
        .await
        .expect("append");
    positions.push(a.position);
}

/// A project read in runs of 1 to 48 consecutive records between another
/// project's, over more records than one read chunk (1,024): every record
/// once, in order, from any position, including one of the other project's.
pub async fn project_runs(log: Arc<dyn EventLog>) {
    let (solo, other) = (project("solo"), project("other"));
    let mut solo_positions = Vec::new();
    let mut other_positions = Vec::new();
    for run in 1..=48 {
        for i in 0..run {
            append_next(&*log, &solo, &mut solo_positions, &format!("s{run}-{i}")).await;
        }
        append_next(&*log, &other, &mut other_positions, &format!("o{run}")).await;
    }
    let solo_head = *solo_positions.last().expect("appended");
    assert!(solo_positions.len() > 1024);
    for from in [
        Position(1),
        solo_positions[700],
        other_positions[40],
        solo_head,
        solo_head.next(),
    ] {
        let read = collect_project_from(&*log, &solo, from).await;
        let got: Vec<Position> = read.iter().map(|e| e.position).collect();
        let want: Vec<Position> = solo_positions
            .iter()
            .copied()
            .filter(|p| *p >= from)
            .collect();
        assert_eq!(got, want, "solo from {from:?}");
        assert!(read.iter().all(|e| e.event.project == "solo"));
    }
    let other_read = collect_project(&*log, &other).await;
    let got: Vec<Position> = other_read.iter().map(|e| e.position).collect();
    assert_eq!(got, other_positions);

    // One event at a time: the project's next, never another project's,
    // not even one whose name starts with this one's.
    let longer = project("solo-2");
    append_next(&*log, &longer, &mut Vec::new(), "longer").await;
    for from in [other_positions[40], solo_positions[1023], solo_head.next()] {
        let one = log.next_event(&solo, from).await.expect("next_event");
        let want = solo_positions.iter().copied().find(|p| *p >= from);
        assert_eq!(one.as_ref().map(|e| e.position), want, "solo from {from:?}");
        assert!(one.iter().all(|e| e.event.project == "solo"));
    }
}

/// The live tail delivers what exists, then each new event, once and in order.
pub async fn tail_live(log: Arc<dyn EventLog>) {
    let p = project("tail");
    let mut last = Position::ZERO;
    for i in 0..10 {
        last = log
            .append(&p, last, approval(&format!("t{i}")))
            .await
            .expect("append")
            .position;
    }
    let mut tail = log.tail(Position(4)).await.expect("tail");
    let writer = {
        let log = log.clone();
        let p = p.clone();
        tokio::spawn(async move {
            let mut last = last;
            for i in 10..60 {
                last = log
                    .append(&p, last, approval(&format!("t{i}")))
                    .await
                    .expect("append")
                    .position;
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 57 {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(20), tail.next())
            .await
            .expect("tail stalled")
            .expect("tail ended")
            .expect("event");
        seen.push(ev.position.0);
    }
    writer.await.expect("writer");
    assert_eq!(seen, (4..=60).collect::<Vec<u64>>());
}
