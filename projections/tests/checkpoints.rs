//! When the Merkle tree's runner signs: a tree built again from the log
//! (a new data directory on an existing stream, a key rotated) whose last
//! record is a checkpoint over everything before it signs nothing more
//! until something new is appended, and then signs again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{discovered, spawn_tree, stop, Runner};
use waybill_ledger::audit::SignerKey;
use waybill_ledger::{Actor, EventLog, NewEvent, Position, ProjectName, SledLog};
use waybill_projections::audit::{CheckpointPolicy, Transparency};
use waybill_projections::Projections;

const INTERVAL: Duration = Duration::from_millis(50);

/// A Merkle tree in its own store under `dir`, signing with a key of its
/// own every `INTERVAL` after something new, run on `log`.
fn tree(dir: &std::path::Path, log: &Arc<dyn EventLog>) -> (Projections, Transparency, Runner) {
    let store = Projections::open(dir).expect("store");
    let policy = CheckpointPolicy {
        every: 10_000,
        interval: INTERVAL,
        origin: "waybill.test/checkpoints".into(),
        signer: Some(Arc::new(SignerKey::generate("test").expect("key"))),
    };
    let transparency = Transparency::open(store.store().db(), policy).expect("transparency");
    let run = spawn_tree(&transparency, log.clone());
    (store, transparency, run)
}

async fn discover(log: &Arc<dyn EventLog>, i: u64) {
    let shop = ProjectName::project("shop").expect("name");
    let head = log.last_position(&shop).await.expect("head");
    let actor = Actor {
        principal: "ci".into(),
        auth_method: "token".into(),
    };
    let ev = NewEvent::new(discovered(i, ""), actor, format!("cmd-{i}"));
    log.append(&shop, head, ev).await.expect("append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_built_again_signs_only_what_no_checkpoint_covers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(&dir.path().join("log")).expect("log"));
    for i in 0..10 {
        discover(&log, i).await;
    }
    // The first tree signs the ten records; its checkpoint is the 11th.
    let (_first_store, first, run) = tree(&dir.path().join("first"), &log);
    let signed = first
        .checkpoint_covering(10, Duration::from_secs(30))
        .await
        .expect("a checkpoint of the first tree");
    assert_eq!((signed.size, signed.position), (10, 11));
    stop(run).await;
    assert_eq!(log.head().await.expect("head"), Position(11));

    // A second tree, with another key, built from the log: it reaches the
    // checkpoint and, many intervals later, has signed nothing more.
    let (_second_store, second, run) = tree(&dir.path().join("second"), &log);
    second
        .wait_for(11, Duration::from_secs(30))
        .await
        .expect("the second tree caught up");
    tokio::time::sleep(INTERVAL * 10).await;
    assert_eq!(
        log.head().await.expect("head"),
        Position(11),
        "a checkpoint over nothing new was signed"
    );

    // Something new: the second tree signs it by itself (nobody asks),
    // with its own key.
    discover(&log, 10).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let ours = loop {
        match second.latest() {
            Some(c) if c.size >= 12 => break c,
            _ if tokio::time::Instant::now() > deadline => panic!("nothing new was signed"),
            _ => tokio::time::sleep(INTERVAL).await,
        }
    };
    assert_eq!((ours.size, ours.position), (12, 13));
    assert_ne!(ours.note, signed.note);
    stop(run).await;
}
