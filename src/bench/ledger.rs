//! The measured side: Waybill's `EventLog`, the same code for JetStream and sled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use futures::StreamExt;
use waybill_ledger::{EventLog, Position, ProjectName};

use super::sample::{self, RunId};
use super::stats::Rate;

/// Sequential appends to one project, each timed from the call to its return;
/// `head` is the project's last position, advanced as events are appended.
pub async fn latency(
    log: &dyn EventLog,
    run: &RunId,
    project: &ProjectName,
    head: &mut Position,
    n: u64,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..n {
        let event = sample::event(run.command_id(project.as_str(), 0, head.0), i);
        let started = Instant::now();
        let appended = log
            .append(project, *head, event)
            .await
            .with_context(|| format!("appending to {project}"))?;
        samples.push(started.elapsed());
        *head = appended.position;
    }
    Ok(samples)
}

/// `writers` concurrent tasks, each appending `per_writer` events in sequence
/// to its own new project `<tag>-w<n>`.
pub async fn throughput(
    log: &Arc<dyn EventLog>,
    run: &RunId,
    tag: &str,
    writers: usize,
    per_writer: u64,
) -> anyhow::Result<Rate> {
    let started = Instant::now();
    let tasks = spawn_writers(log, run, tag, writers, per_writer)?;
    for task in tasks {
        task.await.context("writer task")??;
    }
    Ok(Rate {
        events: writers as u64 * per_writer,
        elapsed: started.elapsed(),
    })
}

/// Appends `n` events spread over `projects` concurrent writers.
pub async fn fill(
    log: &Arc<dyn EventLog>,
    run: &RunId,
    n: u64,
    projects: usize,
) -> anyhow::Result<()> {
    let projects = projects.clamp(1, n.max(1) as usize);
    let per_project = n / projects as u64;
    let extra = n % projects as u64;
    let mut tasks = spawn_writers(log, run, "fill", projects - 1, per_project)?;
    // The last writer also takes the remainder.
    tasks.extend(spawn_writers(
        log,
        run,
        "fill-last",
        1,
        per_project + extra,
    )?);
    for task in tasks {
        task.await.context("fill task")??;
    }
    Ok(())
}

type Writer = tokio::task::JoinHandle<anyhow::Result<()>>;

fn spawn_writers(
    log: &Arc<dyn EventLog>,
    run: &RunId,
    tag: &str,
    writers: usize,
    per_writer: u64,
) -> anyhow::Result<Vec<Writer>> {
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let project = ProjectName::project(format!("{tag}-w{w}"))?;
        let log = Arc::clone(log);
        let run = run.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut head = Position::ZERO;
            for i in 0..per_writer {
                let event = sample::event(run.command_id(&tag, w, i), i);
                head = log
                    .append(&project, head, event)
                    .await
                    .with_context(|| format!("appending to {project}"))?
                    .position;
            }
            anyhow::Ok(())
        }));
    }
    Ok(tasks)
}

/// `read_all` from the first position, consuming every event (decoded and
/// hashed by the log); timed from the call to the last event. Checks that
/// `expected` events came back.
pub async fn replay(log: &dyn EventLog, expected: u64) -> anyhow::Result<Rate> {
    let started = Instant::now();
    let mut events = log.read_all(Position(1)).await?;
    let mut count = 0u64;
    let mut touched = 0u64;
    while let Some(event) = events.next().await {
        let event = event.context("replaying the log")?;
        count += 1;
        touched = touched.wrapping_add(event.event.project_seq);
        touched ^= u64::from(event.hash.0[0]);
    }
    let elapsed = started.elapsed();
    std::hint::black_box(touched);
    ensure!(
        count == expected,
        "replay returned {count} events, expected {expected}"
    );
    Ok(Rate {
        events: count,
        elapsed,
    })
}

/// The length of what the log stores for a typical event: one is appended
/// to the project `probe` and read back.
pub async fn record_len(log: &dyn EventLog, run: &RunId) -> anyhow::Result<usize> {
    let project = ProjectName::project("probe")?;
    let head = log.last_position(&project).await?;
    let event = sample::event(run.command_id("probe", 0, head.0), 0);
    let appended = log.append(&project, head, event).await?;
    let mut events = log.read_project(&project, appended.position).await?;
    let stored = events
        .next()
        .await
        .context("the probe event was not read back")??;
    Ok(stored.bytes.len())
}
