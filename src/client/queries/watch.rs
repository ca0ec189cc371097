//! `watch`: entries as they happen, until Ctrl-C. After a stream error it
//! reconnects from the last position + 1 (bounded backoff, at most a second
//! between tries), so nothing is missed or repeated.

use std::future::Future;
use std::time::Duration;

use tonic::{Code, Status};
use waybill_proto::v1 as pb;

use super::command::WatchArgs;
use super::history::emit;
use super::rpc::{Out, Queries};
use crate::client::Output;

/// Wait before the first reconnection of a series.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Whether the caller of [`follow`] wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Failures worth reconnecting after: the server or the connection went away.
/// Refusals (invalid, denied, not found) are returned instead.
fn transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Internal
            | Code::Aborted
            | Code::Cancelled
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
    )
}

/// Watches what `watch` asks for (a project, or every one when empty; a
/// stage, an event type) from position `from`, handing each entry once to
/// `emit`, in order, until `emit` says stop, `shutdown` completes, or the
/// server refuses. `note` hears about reconnections.
pub async fn follow(
    svc: &mut Queries,
    watch: &pb::WatchRequest,
    from: u64,
    mut emit: impl FnMut(&pb::HistoryEntry) -> Flow,
    mut note: impl FnMut(&str),
    shutdown: impl Future<Output = ()>,
) -> Result<(), Status> {
    tokio::pin!(shutdown);
    let mut next = from;
    let mut last: Option<u64> = None;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let req = pb::WatchRequest {
            from_position: next,
            ..watch.clone()
        };
        let opened = tokio::select! {
            () = &mut shutdown => return Ok(()),
            r = svc.watch(req) => r,
        };
        let why = match opened {
            Err(s) if !transient(&s) => return Err(s),
            Err(s) => format!("{:?}: {}", s.code(), s.message()),
            Ok(reply) => {
                let mut stream = reply.into_inner();
                loop {
                    let msg = tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        m = stream.message() => m,
                    };
                    match msg {
                        Ok(Some(e)) => {
                            backoff = FIRST_BACKOFF;
                            // A server that resends what we have seen is skipped over.
                            if last.is_some_and(|l| e.position <= l) {
                                continue;
                            }
                            last = Some(e.position);
                            next = e.position.saturating_add(1);
                            if emit(&e) == Flow::Stop {
                                return Ok(());
                            }
                        }
                        Ok(None) => break "the server ended the stream".to_string(),
                        Err(s) if !transient(&s) => return Err(s),
                        Err(s) => break format!("{:?}: {}", s.code(), s.message()),
                    }
                }
            }
        };
        note(&format!(
            "watch interrupted ({why}); reconnecting from position {next} in {} ms",
            backoff.as_millis()
        ));
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Completes on Ctrl-C (never, if the handler cannot be installed).
pub async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The position the read models reflect, for `project` (empty: every
/// project the caller may view).
async fn reflected(svc: &mut Queries, project: &str) -> Result<u64, Status> {
    Ok(if project.is_empty() {
        svc.list_projects(pb::ListProjectsRequest::default())
            .await?
            .into_inner()
            .position
    } else {
        svc.list_stages(pb::ListStagesRequest {
            project: project.to_string(),
            min_position: 0,
        })
        .await?
        .into_inner()
        .position
    })
}

/// `watch`: prints entries as they come, until Ctrl-C.
pub async fn run(svc: &mut Queries, a: WatchArgs, output: Output) -> Result<(), Status> {
    super::stages::reflect(svc, &a.project, a.min_position).await?;
    let from = match a.from {
        Some(from) => {
            // A start past what has happened would look like a watch that
            // hangs: say what it waits for.
            let applied = reflected(svc, &a.project).await?;
            if from > applied + 1 && output == Output::Text {
                eprintln!(
                    "position {from} is beyond the last event (position {applied}): \
                     waiting until it is written; Ctrl-C to stop"
                );
            }
            from
        }
        // What happens from now on: after what the read models reflect.
        None => {
            let applied = reflected(svc, &a.project).await?;
            if output == Output::Text {
                eprintln!(
                    "watching from position {} (what happens from now on; --from 1 for the \
                     whole history); Ctrl-C to stop",
                    applied + 1
                );
            }
            applied + 1
        }
    };
    let mut out = Out::default();
    let every_project = a.project.is_empty();
    let watch = pb::WatchRequest {
        project: a.project.clone(),
        stage: a.stage.clone().unwrap_or_default(),
        event_type: a.event_type.clone().unwrap_or_default(),
        promotion_status: a.status.clone().unwrap_or_default(),
        from_position: 0,
    };
    follow(
        svc,
        &watch,
        from,
        |e| {
            // The server filters by status too; one older than the field
            // ignores the field, so the filter stays here as well.
            if a.status.as_ref().is_some_and(|s| *s != e.promotion_status) {
                return Flow::Continue;
            }
            emit(&mut out, output, e, every_project);
            if out.is_open() {
                Flow::Continue
            } else {
                Flow::Stop
            }
        },
        |note| eprintln!("{note}"),
        ctrl_c(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::client::queries::testing::{Flaky, Server};

    fn project(name: &str) -> pb::WatchRequest {
        pb::WatchRequest {
            project: name.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn reconnects_from_the_next_position_without_repeats() {
        let froms = Arc::new(Mutex::new(Vec::new()));
        let server = Server::start(Flaky {
            froms: froms.clone(),
        })
        .await;
        let mut svc = server.client().await;
        let mut seen = Vec::new();
        let mut notes = Vec::new();
        let result = follow(
            &mut svc,
            &project("shop"),
            1,
            |e| {
                seen.push(e.position);
                if e.position == 4 {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            },
            |n| notes.push(n.to_string()),
            std::future::pending(),
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(seen, [1, 2, 3, 4]);
        assert_eq!(*froms.lock().expect("not poisoned"), [1, 3, 4]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("from position 3 in 100 ms"), "{notes:?}");
        assert!(notes[1].contains("ended the stream"), "{notes:?}");
        assert!(notes[1].contains("in 100 ms"), "backoff resets: {notes:?}");
    }

    #[tokio::test]
    async fn a_refusal_ends_the_watch() {
        let server = Server::start(Flaky::default()).await;
        let mut svc = server.client().await;
        let result = follow(
            &mut svc,
            &project("secret"),
            0,
            |_| Flow::Continue,
            |n| panic!("no reconnection expected: {n}"),
            std::future::pending(),
        )
        .await;
        assert_eq!(result.map_err(|s| s.code()), Err(Code::PermissionDenied));
    }

    #[tokio::test]
    async fn shutdown_stops_a_quiet_watch() {
        // Start at the third call, which sends 4 and then nothing.
        let server = Server::start(Flaky {
            froms: Arc::new(Mutex::new(vec![0, 0])),
        })
        .await;
        let mut svc = server.client().await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut tx = Some(tx);
        let mut seen = Vec::new();
        let result = follow(
            &mut svc,
            &project("shop"),
            0,
            |e| {
                seen.push(e.position);
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
                Flow::Continue
            },
            |n| panic!("no reconnection expected: {n}"),
            async {
                let _ = rx.await;
            },
        )
        .await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(seen, [4]);
    }

    #[test]
    fn refusals_are_not_retried() {
        assert!(transient(&Status::unavailable("down")));
        assert!(!transient(&Status::invalid_argument("bad")));
        assert!(!transient(&Status::unauthenticated("who")));
    }
}
