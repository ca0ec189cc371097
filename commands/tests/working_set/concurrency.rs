//! States dropped from a zero-budget cache and taken back, under commands
//! from several threads through two handlers on one log: no freight is
//! ever discovered twice.

use std::sync::Arc;

use waybill_commands::auth::Role;
use waybill_commands::Command;
use waybill_ledger::domain::PipelineDefinition;
use waybill_ledger::{EventLog, EventPayload, ProjectName};

use crate::common;
use crate::{handler, user, PIPELINE};

/// Commands from several threads on a few projects, through two handlers,
/// one with a zero cache budget: its every command drops the other
/// projects' states, which are saved
/// and taken back (or, when a command comes before the save, folded again,
/// and the late save is not written) all the time. Each re-discovery of a
/// known freight must still be recognised: no freight is discovered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn states_dropped_and_taken_back_under_concurrency_stay_right() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let h = handler(dir.path(), Some(2)).with_cache_budget(0);
    let projects: Vec<ProjectName> = (0..4)
        .map(|i| ProjectName::project(format!("p{i}")))
        .collect::<Result<_, _>>()?;
    for p in &projects {
        let definition = serde_json::from_str::<PipelineDefinition>(&PIPELINE.replace(
            "\"project\": \"ws\"",
            &format!("\"project\": \"{}\"", p.as_str()),
        ))?;
        let apply = Command::ApplyPipeline {
            definition,
            source_uri: String::new(),
            source_revision: String::new(),
            source_digest: String::new(),
        };
        h.execute(p, &user(0), apply, None).await?;
    }
    // Half the tasks go through a second handler on the same log, with
    // neither store nor budget: the first one's saved states fall behind
    // and must catch up when taken back.
    let plain = common::handler_for_anyone(
        h.log().clone(),
        vec![Role::Promoter, Role::Approver, Role::Bypass, Role::Admin],
    );
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let h = if t % 2 == 0 { h.clone() } else { plain.clone() };
        let projects = projects.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..120usize {
                let p = &projects[(t * 7 + i * 3 + i / 5) % projects.len()];
                let version = (t * 31 + i * 17) % 24;
                h.execute(p, &user(0), common::discovery(version), None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{p} v{version}: {e}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    // How many states were taken back meanwhile depends on how soon the
    // low-priority mover saved them: on a busy machine none may be (a save
    // is skipped when the project's next command came first, dropped states
    // are let go unsaved while `MAX_SAVING` wait, and a state is not dropped
    // while a move of its records waits for the mover). Once the mover has
    // done what waits, using another project drops the idle states, which
    // are saved; the next command on each project takes its state back.
    let store = h.cold_store().expect("a store");
    let other = ProjectName::project("other")?;
    for _ in 0..200 {
        store.moves_written().await;
        if store.snapshots()? > 0 {
            break;
        }
        h.inspect(&other, |_| ()).await?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(store.snapshots()? > 0, "a dropped state is saved");
    for p in &projects {
        h.execute(p, &user(0), common::discovery(1), None).await?;
    }
    let log: Arc<dyn EventLog> = h.log().clone();
    let mut discovered = std::collections::BTreeMap::new();
    let mut events = log.read_all(waybill_ledger::Position(1)).await?;
    while let Some(ev) = futures::StreamExt::next(&mut events).await {
        let ev = ev?;
        if let EventPayload::FreightDiscovered(d) = &ev.event.payload {
            *discovered
                .entry((ev.event.project.clone(), d.freight_id.clone()))
                .or_insert(0) += 1;
        }
    }
    assert_eq!(discovered.len(), 4 * 24, "every version of every project");
    assert!(
        discovered.values().all(|n| *n == 1),
        "discovered twice: {:?}",
        discovered
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect::<Vec<_>>()
    );
    assert!(store.restored() > 0);
    Ok(())
}
