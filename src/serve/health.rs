//! What gRPC health reports: liveness always, each service while the log
//! answers, and the read side only once its read models have caught up.

use std::time::Duration;

use tonic_health::ServingStatus;
use waybill_projections::Projections;

use crate::open::OpenLog;

/// How often the health service checks that the log answers.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// The health service's name that is SERVING for as long as the process
/// answers at all: for a liveness probe, which must not restart a process
/// because NATS is down or its read models are still catching up.
pub const LIVENESS: &str = "liveness";

/// How often a catch-up says how far it is.
const CATCH_UP_REPORT: Duration = Duration::from_secs(10);

/// How often health looks at the read models while they catch up.
const CATCH_UP_POLL: Duration = Duration::from_millis(100);

/// What gRPC health reports, by service.
#[derive(Clone)]
pub(super) struct Health {
    pub(super) reporter: tonic_health::server::HealthReporter,
    pub(super) commands: bool,
    pub(super) read_side: bool,
}

impl Health {
    /// The overall status (`""`, for a readiness probe) is SERVING while the
    /// log answers and the read models (if this process keeps them) have
    /// caught up with the log as it was at the start; the command service
    /// follows the log, the query and audit services the read models. A
    /// service of a role this process does not run stays unknown to health
    /// (NOT_FOUND), as it is to gRPC (UNIMPLEMENTED).
    pub(super) async fn report(&self, log_up: bool, caught_up: bool) {
        let status = |on: bool| {
            if on {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        let reporter = &self.reporter;
        if self.commands {
            reporter
                .set_service_status("waybill.v1.CommandService", status(log_up))
                .await;
        }
        if self.read_side {
            for service in ["waybill.v1.QueryService", "waybill.v1.AuditService"] {
                reporter
                    .set_service_status(service, status(caught_up))
                    .await;
            }
        }
        // Last: once the whole is SERVING, so is each of its services.
        reporter
            .set_service_status("", status(log_up && caught_up))
            .await;
    }
}

/// Keeps gRPC health (see [`Health::report`]) and the gauges of the log's
/// head, the projections' lag and the promotions under way. A process that starts with read models
/// behind the log (a new replica, a pod on a fresh volume) is not ready until
/// they reach the log's head as it was when the process first read it:
/// before, its queries would answer "no such project" for projects that
/// exist. Lag after that (the log grows while they catch up, or later) does
/// not take it out again; `min_position` is how a client reads its writes.
pub(super) async fn watch_health(
    log: OpenLog,
    projections: Option<Projections>,
    health: Health,
    stopped: impl std::future::Future<Output = ()>,
) {
    let log = log.log();
    let mut under_way = super::under_way::UnderWayGauges::default();
    let mut log_up = true;
    let mut was_reachable = true;
    // Why the log takes no appends, when it was last seen so.
    let mut refusing: Option<String> = None;
    let mut caught_up = projections.is_none();
    let mut catch_up_to = None;
    // When the catch-up last said how far it was, and where it was then.
    let mut progress = (
        tokio::time::Instant::now(),
        projections
            .as_ref()
            .map(Projections::applied)
            .unwrap_or_default(),
    );
    tokio::pin!(stopped);
    loop {
        let head = tokio::time::timeout(HEALTH_INTERVAL, log.head()).await;
        let reachable = matches!(head, Ok(Ok(_)));
        metrics::gauge!("waybill_log_up").set(if reachable { 1.0 } else { 0.0 });
        // Seen by the `head` above.
        let problem = log.unsafe_config();
        metrics::gauge!("waybill_log_safe").set(if problem.is_some() { 0.0 } else { 1.0 });
        match (&refusing, &problem) {
            (None, Some(problem)) => {
                tracing::error!("{problem}: health is NOT_SERVING");
            }
            (Some(_), None) => {
                tracing::info!("the log is safe for an immutable ledger again: appending");
            }
            _ => {}
        }
        refusing = problem;
        let ok = reachable && refusing.is_none();
        let was = (log_up, caught_up);
        if let Ok(Ok(head)) = head {
            metrics::gauge!("waybill_log_head_position").set(head.0 as f64);
            if let Some(projections) = &projections {
                under_way.update(projections);
                let applied = projections.applied();
                let lag = head.0.saturating_sub(applied.0);
                metrics::gauge!("waybill_projection_lag").set(lag as f64);
                let target = *catch_up_to.get_or_insert(head);
                if !caught_up && applied >= target {
                    caught_up = true;
                    tracing::info!(
                        position = applied.0,
                        "read models caught up with the log: serving queries"
                    );
                } else if !caught_up && progress.0.elapsed() >= CATCH_UP_REPORT {
                    // A long catch-up (a new replica on a big log) says how far it is.
                    let secs = progress.0.elapsed().as_secs_f64();
                    let rate = applied.0.saturating_sub(progress.1 .0) as f64 / secs;
                    let eta = target.0.saturating_sub(applied.0) as f64 / rate.max(1.0);
                    tracing::info!(
                        applied = applied.0,
                        target = target.0,
                        events_per_sec = rate.round() as u64,
                        eta_secs = eta.round() as u64,
                        "read models catching up with the log (health NOT_SERVING until they have)"
                    );
                    progress = (tokio::time::Instant::now(), applied);
                }
            }
        }
        if reachable != was_reachable {
            was_reachable = reachable;
            if reachable {
                tracing::info!("event log reachable again");
            } else {
                let error = match &head {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {HEALTH_INTERVAL:?}"),
                };
                tracing::warn!(%error, "event log unreachable: health is NOT_SERVING");
            }
        }
        log_up = ok;
        if (log_up, caught_up) != was {
            health.report(log_up, caught_up).await;
        }
        let pause = if caught_up {
            HEALTH_INTERVAL
        } else {
            CATCH_UP_POLL
        };
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
