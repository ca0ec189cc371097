//! The gRPC server of `waybill serve` and the tasks that run beside it, from
//! the first accepted connection to the last flush.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use waybill_commands::auth::{Authenticator, Role};
use waybill_commands::handler::CommandHandler;
use waybill_commands::reactor::AutoPromoter;
use waybill_commands::service::CommandGrpc;
use waybill_projections::audit::AuditGrpc;
use waybill_projections::service::{Access, MayApprove, MayView, QueryGrpc};
use waybill_projections::ProjectionError;

use super::health::{watch_health, Health, LIVENESS};
use super::Services;

/// At a clean stop, how long the backup may take to copy the last events.
const BACKUP_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest command request (a pipeline file may be 512 KiB); larger ones are
/// refused with OUT_OF_RANGE before they are decoded.
const MAX_COMMAND_MESSAGE: usize = 1024 * 1024;
/// Largest query or audit request.
const MAX_READ_MESSAGE: usize = 64 * 1024;
/// How long saving the command state may take at shutdown.
const SAVE_STATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Requests one connection may have in flight; more wait.
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 256;

/// Queries need an authenticated caller holding the viewer role.
struct ViewerAccess(Arc<Authenticator>);

impl Access for ViewerAccess {
    fn check(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        project: &str,
    ) -> Result<(), tonic::Status> {
        self.0
            .authorize(metadata, Role::Viewer, project, None)
            .map(|_| ())
            .map_err(tonic::Status::from)
    }

    fn approver(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<(String, MayApprove), tonic::Status> {
        let principal = self.0.authenticate(metadata).map_err(tonic::Status::from)?;
        let authorizer = self.0.authorizer().clone();
        let name = principal.name.clone();
        let may = move |project: &str, stage: &str| {
            authorizer.has_role(&principal, Role::Approver, project, Some(stage))
        };
        Ok((name, Box::new(may)))
    }

    fn viewer(&self, metadata: &tonic::metadata::MetadataMap) -> Result<MayView, tonic::Status> {
        let principal = self.0.authenticate(metadata).map_err(tonic::Status::from)?;
        let authorizer = self.0.authorizer().clone();
        Ok(Box::new(move |project: &str| {
            authorizer.has_role(&principal, Role::Viewer, project, None)
        }))
    }
}

/// Serves every gRPC service on `listener` until `shutdown` completes, or
/// until the store of the read models and the Merkle tree fails (a full
/// disk): then the server stops as it does at SIGTERM and this returns why,
/// so that the process exits non-zero and its supervisor starts it again.
/// Serving on would answer every query from read models that no longer
/// move, and sled refuses every write after an I/O error until it is opened
/// again; a restart resumes them from their last batch.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Option<String>> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    // Read models start out behind the log (empty, or as of the last stop):
    // queries are not served until they catch up (see `watch_health`).
    let health = Health {
        reporter,
        commands: services.commands,
        read_side: services.read_side.is_some(),
    };
    health.report(true, services.read_side.is_none()).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(waybill_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;

    let log = services.log.log();
    let authorizer = Arc::new(services.auth.authorizer().clone());
    let source = format!("waybill://{}", hostname());
    let mut handler = CommandHandler::new(log, authorizer, &source)
        .with_clock(services.clock)
        .with_cache_budget(services.command_cache_records);
    if let Some(store) = services.command_store.clone() {
        handler = handler.with_cold_store(store);
    }
    let commands = services
        .commands
        .then(|| CommandGrpc::new(handler.clone(), services.auth.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let read_services = services.read_side.as_ref().map(|r| {
        let clock = services.clock;
        let queries = QueryGrpc::new(
            r.projections.clone(),
            services.log.log(),
            Arc::new(ViewerAccess(services.auth.clone())),
            stop_rx.clone(),
        )
        .with_clock(move || clock.now());
        let audit = AuditGrpc::new(
            r.transparency.clone(),
            r.projections.clone(),
            services.log.log(),
            Arc::new(ViewerAccess(services.auth.clone())),
        );
        (queries, audit)
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // Why the read side stopped, when it did: the server stops too.
    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(watch_health(
        services.log.clone(),
        services.read_side.as_ref().map(|r| r.projections.clone()),
        health.clone(),
        stopped(stop_rx.clone()),
    )));
    if let Some(read_side) = &services.read_side {
        let projections = read_side.projections.clone();
        let log = services.log.log();
        let stop = stopped(stop_rx.clone());
        let failed = failed_tx.clone();
        tasks.push(tokio::spawn(async move {
            match projections.run(log, stop, |_| {}).await {
                Ok(()) => {}
                Err(e @ ProjectionError::Storage(_)) => {
                    tracing::error!(error = %e, "the read models stopped: stopping the server");
                    let _ = failed.send(format!("the read models stopped: {e}"));
                }
                // A record the runner cannot read stops it at every start
                // alike (a restart mends nothing), and every replica too:
                // the commands go on.
                Err(e) => tracing::error!(error = %e, "the read models stopped"),
            }
        }));
        let transparency = read_side.transparency.clone();
        let log = services.log.log();
        let stop = stopped(stop_rx.clone());
        let failed = failed_tx.clone();
        tasks.push(tokio::spawn(async move {
            match transparency.run(log, stop).await {
                Ok(()) => {}
                Err(e @ ProjectionError::Storage(_)) => {
                    tracing::error!(
                        error = %e,
                        "the Merkle tree and checkpoints stopped: stopping the server"
                    );
                    let _ = failed.send(format!("the Merkle tree and checkpoints stopped: {e}"));
                }
                Err(e) => tracing::error!(error = %e, "the Merkle tree and checkpoints stopped"),
            }
        }));
    }
    if let Some(backup) = &services.backup {
        let (source, target) = (services.log.log(), backup.log());
        tasks.push(tokio::spawn(crate::copy::follow(
            source,
            target,
            stopped(stop_rx.clone()),
        )));
    }
    if services.reactors {
        let reactor = AutoPromoter::new(handler.clone());
        tasks.push(tokio::spawn(reactor.run(stopped(stop_rx.clone()))));
    }

    let builder = tonic::transport::Server::builder();
    let limit = &services.rate_limit;
    let (queries, audit) = read_services.unzip();
    // A service of a role this process does not run is absent: UNIMPLEMENTED.
    let router = builder
        // Per connection: requests in flight at once, and HTTP/2 streams.
        .concurrency_limit_per_connection(MAX_IN_FLIGHT_PER_CONNECTION)
        .max_concurrent_streams(Some(MAX_IN_FLIGHT_PER_CONNECTION as u32))
        .add_service(health_service)
        .add_service(reflection)
        .add_optional_service(commands.map(|c| {
            InterceptedService::new(
                c.into_server()
                    .max_decoding_message_size(MAX_COMMAND_MESSAGE),
                limit.clone(),
            )
        }))
        .add_optional_service(queries.map(|q| {
            InterceptedService::new(
                q.into_server().max_decoding_message_size(MAX_READ_MESSAGE),
                limit.clone(),
            )
        }))
        .add_optional_service(audit.map(|a| {
            InterceptedService::new(
                a.into_server().max_decoding_message_size(MAX_READ_MESSAGE),
                limit.clone(),
            )
        }));
    // Stop accepting, and tell watches and reactors, at the same time;
    // in-flight requests then finish.
    drop(failed_tx);
    let failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let failed = failure.clone();
    let stopping = async move {
        tokio::select! {
            () = shutdown => {}
            Some(why) = failed_rx.recv() => {
                *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            }
        }
        let _ = stop_tx.send(true);
    };
    let result = match services.tls {
        Some(tls) => router
            .serve_with_incoming_shutdown(tls.incoming(listener), stopping)
            .boxed(),
        None => router
            .serve_with_incoming_shutdown(
                // No Nagle: small HTTP/2 frames must not wait for the peer's ACK.
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                stopping,
            )
            .boxed(),
    };
    // In-flight requests get a grace period; a client that keeps its
    // connection open (or stops reading) does not hold the shutdown forever.
    let mut stopping = stop_rx.clone();
    let grace = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let result = tokio::select! {
        result = result => result,
        () = grace => {
            tracing::warn!(
                grace_secs = SHUTDOWN_GRACE.as_secs(),
                "connections still open after the grace period; stopping anyway"
            );
            Ok(())
        }
    };
    for task in tasks {
        let _ = task.await;
    }
    if let Some(backup) = &services.backup {
        // Nothing appends any more: the backup takes the last events too.
        let (source, target) = (services.log.log(), backup.log());
        let catch_up = crate::copy::catch_up(&*source, &*target);
        match tokio::time::timeout(BACKUP_CATCH_UP_TIMEOUT, catch_up).await {
            Ok(Ok(copied)) => tracing::info!(copied, "the backup holds the whole log"),
            Ok(Err(e)) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "cannot bring the backup up to date"
                )
            }
            Err(_) => tracing::warn!(
                secs = BACKUP_CATCH_UP_TIMEOUT.as_secs(),
                "the backup is still behind the log; it goes on at the next start"
            ),
        }
        backup.close().await;
    }
    // The next start takes the project states back instead of folding
    // every project's log again.
    if services.command_store.is_some() {
        match tokio::time::timeout(SAVE_STATE_TIMEOUT, handler.save_state()).await {
            Ok(Ok(projects)) => tracing::info!(projects, "saved the command state"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot save the command state; the next start folds every project's log")
            }
            Err(_) => tracing::warn!(
                secs = SAVE_STATE_TIMEOUT.as_secs(),
                "saving the command state took too long; the next start folds every project's log"
            ),
        }
    }
    result.context("gRPC server failed")?;
    let failure = failure.lock().unwrap_or_else(|p| p.into_inner()).take();
    Ok(failure)
}

pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}
