//! Helpers shared by the projection tests.

// Each test crate compiles its own copy and uses a subset.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use waybill_ledger::event::{Artifact, ArtifactKind, FreightDiscovered};
use waybill_ledger::{EventLog, EventPayload, Position};
use waybill_projections::Projections;

/// A runner of `p` on `log`, stopped by sending on the returned sender.
pub type Runner = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), waybill_projections::ProjectionError>>,
);

/// Starts `p` on `log` in a task.
pub fn spawn_runner(p: &Projections, log: Arc<dyn EventLog>) -> Runner {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let p = p.clone();
    let runner = tokio::spawn(async move {
        p.run(
            log,
            async {
                let _ = rx.await;
            },
            |_| {},
        )
        .await
    });
    (tx, runner)
}

/// Starts the Merkle tree `t` on `log` in a task (signing as its policy says).
pub fn spawn_tree(t: &waybill_projections::audit::Transparency, log: Arc<dyn EventLog>) -> Runner {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let t = t.clone();
    let tree = tokio::spawn(async move {
        t.run(log, async {
            let _ = rx.await;
        })
        .await
    });
    (tx, tree)
}

/// Stops a runner and checks that it ended without an error.
pub async fn stop((tx, runner): Runner) {
    let _ = tx.send(());
    runner.await.expect("join").expect("runner");
}

/// Runs `p` on `log` until it reflects `target`, then stops it.
pub async fn run_until(p: &Projections, log: Arc<dyn EventLog>, target: Position) {
    let runner = spawn_runner(p, log);
    p.wait_for(target, Duration::from_secs(60))
        .await
        .expect("caught up");
    stop(runner).await;
}

/// The discovery of freight `f{i:04}` (one image `app`, version `i`).
pub fn discovered(i: u64, alias: &str) -> EventPayload {
    EventPayload::FreightDiscovered(FreightDiscovered {
        freight_id: format!("f{i:04}"),
        warehouse: "images".into(),
        artifacts: vec![Artifact {
            kind: ArtifactKind::Image,
            name: "app".into(),
            version: i.to_string(),
            digest: String::new(),
        }],
        alias: alias.to_string(),
    })
}

/// Every key of the read models (tree `views`) of `p`.
#[allow(dead_code)] // not every test binary compares stores
pub fn views(p: &Projections) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    p.store()
        .views()
        .iter()
        .map(|kv| {
            let (k, v) = kv.expect("entry");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Folds the whole log into project states (what the command side does) and
/// checks that the read models of `p` hold the same: every freight, every
/// promotion (and no others), each stage, the pipeline and the position.
#[allow(dead_code)]
pub async fn assert_models_equal_fold(p: &Projections, log: &dyn EventLog) {
    use futures::StreamExt;
    use std::collections::BTreeMap;
    use waybill_ledger::domain::ProjectState;
    use waybill_projections::models;

    let mut folded: BTreeMap<String, ProjectState> = BTreeMap::new();
    let mut events = log.read_all(Position(1)).await.expect("read");
    while let Some(ev) = events.next().await {
        let ev = ev.expect("event");
        folded
            .entry(ev.event.project.clone())
            .or_insert_with(|| ProjectState::new(&ev.event.project))
            .apply(&ev);
    }
    let tree = p.store().views();
    for (name, want) in &folded {
        let have = p.project(name).expect("project");
        assert_eq!(have.position, want.position, "{name}");
        assert_eq!(have.stages, want.stages, "{name}");
        assert_eq!(have.pipeline, want.pipeline, "{name}");
        for (id, f) in &want.freight {
            assert_eq!(
                p.freight(name, id).expect("read").as_ref(),
                Some(&**f),
                "{name} {id}"
            );
        }
        for (alias, id) in &want.aliases {
            let f = p.freight(name, alias).expect("read").expect("alias");
            assert_eq!(&f.id, id, "{name} alias {alias}");
        }
        let listed: Vec<String> = models::freight_newest_first(tree, name, None)
            .map(|f| f.expect("freight").1.id)
            .collect();
        let newest_first: Vec<String> = want
            .by_discovery
            .iter()
            .rev()
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(listed, newest_first, "{name}: freight listed");
        for (id, pr) in &want.promotions {
            assert_eq!(
                p.promotion(name, id).expect("read").as_ref(),
                Some(&**pr),
                "{name} {id}"
            );
        }
        let stored: Vec<_> = models::promotions_after(tree, name, Position::ZERO)
            .map(|r| r.expect("promotion"))
            .collect();
        assert_eq!(
            stored.len(),
            want.promotions.len(),
            "{name}: promotions stored"
        );
        assert!(stored.windows(2).all(|w| w[0].requested < w[1].requested));
        for pr in stored {
            assert_eq!(
                want.promotions.get(&pr.id).map(|p| &**p),
                Some(&pr),
                "{name}: stored {}",
                pr.id
            );
        }
        // Lists by stage and of active promotions, read through the stage's
        // history index and the active index, equal the filtered whole list,
        // from the start and from the middle.
        let all: Vec<_> = models::promotions_after(tree, name, Position::ZERO)
            .map(|r| r.expect("promotion"))
            .collect();
        let middle = all
            .get(all.len() / 2)
            .map_or(Position::ZERO, |p| p.requested);
        for after in [Position::ZERO, middle] {
            let later = || all.iter().filter(|p| p.requested > after);
            for stage in want.stages.keys() {
                let by_index: Vec<String> =
                    models::stage_promotions_after(tree, name, stage, after)
                        .map(|r| r.expect("promotion").id)
                        .collect();
                let filtered: Vec<String> = later()
                    .filter(|p| &p.stage == stage)
                    .map(|p| p.id.clone())
                    .collect();
                assert_eq!(by_index, filtered, "{name}/{stage} after {after}");
            }
            let by_index: Vec<String> = models::active_promotions_after(tree, name, after)
                .map(|r| r.expect("promotion").id)
                .collect();
            let filtered: Vec<String> = later()
                .filter(|p| p.status.is_active())
                .map(|p| p.id.clone())
                .collect();
            assert_eq!(by_index, filtered, "{name} active after {after}");
        }
        // The same lists backwards: newest first, before the end and
        // before the middle.
        for before in [Position(u64::MAX), middle] {
            let earlier = || all.iter().rev().filter(|p| p.requested < before);
            let ids =
                |it: &mut dyn Iterator<Item = Result<waybill_ledger::domain::Promotion, _>>| {
                    it.map(|r: Result<_, waybill_projections::ProjectionError>| {
                        r.expect("promotion").id
                    })
                    .collect::<Vec<String>>()
                };
            let whole: Vec<String> = earlier().map(|p| p.id.clone()).collect();
            assert_eq!(
                ids(&mut models::promotions_before(tree, name, before)),
                whole,
                "{name} before {before}"
            );
            for stage in want.stages.keys() {
                let filtered: Vec<String> = earlier()
                    .filter(|p| &p.stage == stage)
                    .map(|p| p.id.clone())
                    .collect();
                assert_eq!(
                    ids(&mut models::stage_promotions_before(
                        tree, name, stage, before
                    )),
                    filtered,
                    "{name}/{stage} before {before}"
                );
            }
            let filtered: Vec<String> = earlier()
                .filter(|p| p.status.is_active())
                .map(|p| p.id.clone())
                .collect();
            assert_eq!(
                ids(&mut models::active_promotions_before(tree, name, before)),
                filtered,
                "{name} active before {before}"
            );
        }
        // The index of active promotions names exactly the active ones, and
        // the id index every promotion.
        use waybill_projections::keys::{self, model};
        let indexed = |tag: u8| -> Vec<Vec<u8>> {
            let prefix = keys::model_prefix(tag, name);
            tree.scan_prefix(&prefix)
                .map(|kv| kv.expect("key").0[prefix.len()..].to_vec())
                .collect()
        };
        let mut active: Vec<Vec<u8>> = want
            .promotions
            .values()
            .filter(|pr| pr.status.is_active())
            .map(|pr| keys::pos(pr.requested).to_vec())
            .collect();
        active.sort();
        assert_eq!(indexed(model::ACTIVE), active, "{name}: active index");
        let mut ids: Vec<Vec<u8>> = want
            .promotions
            .keys()
            .map(|id| id.as_bytes().to_vec())
            .collect();
        ids.sort();
        assert_eq!(
            indexed(model::PROMOTION_ID),
            ids,
            "{name}: promotion id index"
        );
    }
}
