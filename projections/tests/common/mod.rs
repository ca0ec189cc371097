//! Helpers shared by the projection tests.

use std::sync::Arc;
use std::time::Duration;

use waybill_ledger::event::{Artifact, ArtifactKind, FreightDiscovered};
use waybill_ledger::{EventLog, EventPayload, Position};
use waybill_projections::Projections;

/// Runs `p` on `log` until it reflects `target`, then stops it.
pub async fn run_until(p: &Projections, log: Arc<dyn EventLog>, target: Position) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let p = p.clone();
        tokio::spawn(async move {
            p.run(
                log,
                async {
                    let _ = rx.await;
                },
                |_| {},
            )
            .await
        })
    };
    p.wait_for(target, Duration::from_secs(60))
        .await
        .expect("caught up");
    let _ = tx.send(());
    runner.await.expect("join").expect("runner");
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
