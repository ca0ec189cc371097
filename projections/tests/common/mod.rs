//! Helpers shared by the projection tests.

use std::sync::Arc;
use std::time::Duration;

use waybill_ledger::{EventLog, Position};
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
