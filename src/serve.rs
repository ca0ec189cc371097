//! `waybill serve`: open the log, serve gRPC (health, reflection and the
//! services of the process's roles: commands; queries, audit and exports)
//! and run the projections and reactors until a shutdown signal.
//!
//! Shutdown order: stop accepting, finish in-flight requests, stop the
//! reactors, then drain NATS / flush sled.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

use crate::rate_limit::RateLimit;
use tonic_health::ServingStatus;
use waybill_commands::auth::{AuthConfig, Authenticator, Role};
use waybill_commands::clock::Clock;
use waybill_commands::handler::{ColdStore, CommandHandler};
use waybill_commands::reactor::AutoPromoter;
use waybill_commands::service::CommandGrpc;
use waybill_projections::audit::{AuditGrpc, Transparency};
use waybill_projections::service::{Access, MayApprove, MayView, QueryGrpc};
use waybill_projections::Projections;

use crate::cli::ServeArgs;
use crate::config::{listen_addr, FileConfig};
use crate::open::{open, OpenLog};
use crate::roles::Roles;
use crate::tls::{ServerTls, TlsFiles};

/// How often the health service checks that the log answers.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// The page cache of the backup's embedded log.
const BACKUP_CACHE_BYTES: u64 = 16 << 20;

/// At a clean stop, how long the backup may take to copy the last events.
const BACKUP_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest command request (a pipeline file may be 512 KiB); larger ones are
/// refused with OUT_OF_RANGE before they are decoded.
const MAX_COMMAND_MESSAGE: usize = 1024 * 1024;
/// Largest query or audit request.
const MAX_READ_MESSAGE: usize = 64 * 1024;
/// Requests per second per connection by default.
const DEFAULT_RATE_LIMIT: u32 = 1000;
/// How long saving the command state may take at shutdown.
const SAVE_STATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Requests one connection may have in flight; more wait.
const MAX_IN_FLIGHT_PER_CONNECTION: usize = 256;

/// Everything `serve` needs besides the listener.
#[derive(Debug)]
pub struct Services {
    pub log: OpenLog,
    pub auth: Arc<Authenticator>,
    pub clock: Clock,
    /// Records the command service's cached project states keep in memory.
    pub command_cache_records: u64,
    /// Where the command service keeps the records its project states leave
    /// out (none: each state keeps its whole history in memory).
    pub command_store: Option<ColdStore>,
    /// Serve the command service.
    pub commands: bool,
    pub reactors: bool,
    /// The `queries` role: read models and the Merkle tree, kept up to date
    /// here and served by the query and audit services.
    pub read_side: Option<ReadSide>,
    /// gRPC over TLS (and mutual TLS), when configured.
    pub tls: Option<Arc<ServerTls>>,
    /// Requests per second per connection.
    pub rate_limit: RateLimit,
    /// A live copy of the log (`--backup-dir`), kept up to date while serving.
    pub backup: Option<OpenLog>,
}

/// What the `queries` role keeps and serves.
#[derive(Debug)]
pub struct ReadSide {
    /// Read models (opened on `<data dir>/projections`).
    pub projections: Projections,
    /// The Merkle tree of the log and the checkpoint signer (same store).
    pub transparency: Transparency,
}

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

/// The command service's store, under the data dir: a cache of the log,
/// emptied at every start.
pub const COMMAND_STORE_DIR: &str = "command-state";

/// The read models' page cache of a server, MiB: a history or point-in-time
/// query on a cold page costs sled a page read and decode.
pub const DEFAULT_CACHE_MB: u64 = 512;

/// Opens the projections under the data dir the flags and config select.
pub async fn open_projections(
    args: &crate::cli::LogArgs,
    file: &FileConfig,
    cache_mb: u64,
) -> anyhow::Result<Projections> {
    let dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| std::path::PathBuf::from(crate::config::DEFAULT_DATA_DIR))
        .join("projections");
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        Projections::open_with_cache(&dir, cache_mb << 20)
            .with_context(|| format!("opening the projections in {}", dir.display()))
    })
    .await?
}

pub async fn run(args: ServeArgs, file: &FileConfig) -> anyhow::Result<()> {
    if args.check {
        return crate::check::run(&args, file);
    }
    // First: a SIGTERM during start-up stops the server once it serves.
    let shutdown = shutdown_signal()?;
    let addr = listen_addr(args.listen, file)?;
    let tls = server_tls(&args, file)?;
    // Before anything is created or opened: a port in use is refused with
    // nothing written (no data dir, no signing key).
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    if args.insecure_dev && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "INSECURE DEV MODE on an address other machines may reach: anyone who can \
             connect acts as an admin of every project"
        );
    }
    if let Some(metrics) = args.metrics_listen.or(file.metrics_listen) {
        crate::metrics::install(metrics)?;
    }
    let roles = Roles::chosen(&args.roles, file.roles.as_deref(), args.no_reactors)?;
    let command_cache_records = command_cache_records(&args, file)?;
    let backup_dir = backup_dir(&args, file)?;
    let auth = Arc::new(authenticator(&args)?);
    reload_on_sighup(auth.clone(), args.auth_config.clone(), tls.clone())?;
    let policy = crate::audit::checkpoint_policy(
        &args.audit,
        &file.audit,
        &crate::config::data_dir(&args.log, file),
        roles.queries,
        crate::audit::MissingKey::Create,
    )?;
    let log = open(&args.log, file).await?;
    let backup = match backup_dir {
        Some(dir) => Some(open_backup(dir, &log).await?),
        None => None,
    };
    let command_store = if roles.commands || roles.reactors {
        let dir = crate::config::data_dir(&args.log, file).join(COMMAND_STORE_DIR);
        let store = tokio::task::spawn_blocking(move || {
            ColdStore::open(&dir)
                .with_context(|| format!("opening the command state store in {}", dir.display()))
        })
        .await??;
        Some(store)
    } else {
        None
    };
    let read_side = if roles.queries {
        let cache_mb = args.cache_mb.or(file.cache_mb).unwrap_or(DEFAULT_CACHE_MB);
        let projections = open_projections(&args.log, file, cache_mb).await?;
        if let Some(key) = &policy.signer {
            tracing::info!(public_key = %key.verifier().encode(), origin = %policy.origin, "signing checkpoints");
        }
        let db = projections.store().db().clone();
        let transparency =
            tokio::task::spawn_blocking(move || Transparency::open(&db, policy)).await??;
        Some(ReadSide {
            projections,
            transparency,
        })
    } else {
        None
    };
    let local = listener.local_addr()?;
    // Printed for scripts and tests that pass port 0, whatever the log
    // level; as a JSON line when the log is JSON.
    if crate::json_logs() {
        eprintln!(
            "{}",
            serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "INFO",
                "fields": { "message": format!("waybill listening on {local}"), "addr": local.to_string() },
                "target": "waybill::serve",
            })
        );
    } else {
        eprintln!("waybill listening on {local}");
    }
    tracing::info!(
        addr = %local,
        backend = backend_name(&log),
        tls = tls.is_some(),
        roles = %roles,
        "serving gRPC"
    );
    let services = Services {
        log: log.clone(),
        auth,
        clock: args.clock_start.map(Clock::starting_at).unwrap_or_default(),
        command_cache_records,
        command_store,
        commands: roles.commands,
        reactors: roles.reactors,
        read_side,
        tls,
        rate_limit: RateLimit::new(
            args.rate_limit
                .or(file.rate_limit)
                .unwrap_or(DEFAULT_RATE_LIMIT),
        ),
        backup,
    };
    serve(listener, services, shutdown).await?;
    log.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// `--command-cache-records`, at least 1.
pub(crate) fn command_cache_records(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<u64> {
    let records = args
        .command_cache_records
        .or(file.command_cache_records)
        .unwrap_or(waybill_commands::handler::DEFAULT_CACHE_RECORDS);
    anyhow::ensure!(
        records > 0,
        "command_cache_records must be at least 1 (the records the command service's cached \
         project states keep in memory)"
    );
    Ok(records)
}

/// `--backup-dir`, checked to be outside the data directory.
pub(crate) fn backup_dir(
    args: &ServeArgs,
    file: &FileConfig,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let Some(dir) = args.backup_dir.clone().or_else(|| file.backup_dir.clone()) else {
        return Ok(None);
    };
    // Resolved as far as it exists (either may not yet).
    let resolved = |p: &std::path::Path| {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let data = crate::config::data_dir(&args.log, file);
    let (a, b) = (resolved(&data), resolved(&dir));
    anyhow::ensure!(
        !(b.starts_with(&a) || a.starts_with(&b)),
        "--backup-dir {} must be outside the data directory {} (on another disk, ideally)",
        dir.display(),
        data.display()
    );
    Ok(Some(dir))
}

/// Opens the backup (an embedded log) and checks, before anything is
/// served, that it holds nothing or an earlier copy of this log.
async fn open_backup(dir: std::path::PathBuf, log: &OpenLog) -> anyhow::Result<OpenLog> {
    let at = dir.clone();
    // Written, hardly ever read: a small page cache.
    let backup = tokio::task::spawn_blocking(move || {
        waybill_ledger::SledLog::open_with_cache(&at, BACKUP_CACHE_BYTES)
    })
    .await?
    .map(OpenLog::Embedded)
    .with_context(|| format!("opening the backup in {}", dir.display()))?;
    crate::copy::resume_point(&*log.log(), &*backup.log())
        .await
        .with_context(|| format!("the backup in {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "keeping a live copy of the log");
    Ok(backup)
}

/// The gRPC TLS settings of the flags and the config file, read and
/// checked (SIGHUP reads them again).
pub(crate) fn server_tls(
    args: &ServeArgs,
    file: &FileConfig,
) -> anyhow::Result<Option<Arc<ServerTls>>> {
    let cert = args.tls_cert.clone().or_else(|| file.tls_cert.clone());
    let key = args.tls_key.clone().or_else(|| file.tls_key.clone());
    let client_ca = args
        .tls_client_ca
        .clone()
        .or_else(|| file.tls_client_ca.clone());
    match (cert, key) {
        (None, None) if client_ca.is_some() => {
            anyhow::bail!("--tls-client-ca needs --tls-cert and --tls-key")
        }
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(Arc::new(ServerTls::load(TlsFiles {
            cert,
            key,
            client_ca,
        })?))),
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    }
}

pub(crate) fn authenticator(args: &ServeArgs) -> anyhow::Result<Authenticator> {
    let config = match &args.auth_config {
        Some(path) => AuthConfig::load(path)?,
        None => AuthConfig::default(),
    };
    let auth = Authenticator::new(config)?.with_insecure_dev(args.insecure_dev);
    if !args.insecure_dev && !auth.accepts_credentials() {
        match &args.auth_config {
            None => tracing::warn!(
                "no --auth-config: every command will be refused as unauthenticated \
                 (give --auth-config FILE, or --insecure-dev for a local trial)"
            ),
            Some(path) => tracing::warn!(
                auth_config = %path.display(),
                "the auth config names no tokens file and no [jwt]: every request will be refused"
            ),
        }
    }
    Ok(auth)
}

/// SIGHUP reads the auth config again (tokens file, JWT keys, bindings) and
/// the gRPC TLS files, and puts each in force, or keeps the one in force if
/// the new one is wrong: a leaked token is revoked, and a rotated
/// certificate served, without a restart. With neither configured there is
/// nothing to read, and SIGHUP (which would otherwise end the process) only
/// says so.
fn reload_on_sighup(
    auth: Arc<Authenticator>,
    path: Option<std::path::PathBuf>,
    tls: Option<Arc<ServerTls>>,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if path.is_none() && tls.is_none() {
                    tracing::warn!("SIGHUP: no --auth-config and no TLS files to read again");
                    continue;
                }
                if let Some(path) = &path {
                    match AuthConfig::load(path).and_then(|config| auth.reload(config)) {
                        Ok(()) => tracing::info!(
                            auth_config = %path.display(),
                            "SIGHUP: auth config reloaded"
                        ),
                        Err(e) => tracing::error!(
                            auth_config = %path.display(),
                            error = %e,
                            "SIGHUP: cannot reload the auth config; the previous one stays in force"
                        ),
                    }
                }
                if let Some(tls) = &tls {
                    let cert = tls.cert_path().display().to_string();
                    match tls.reload() {
                        Ok(()) => tracing::info!(
                            tls_cert = %cert,
                            "SIGHUP: TLS certificate reloaded; new connections use it"
                        ),
                        Err(e) => tracing::error!(
                            tls_cert = %cert,
                            error = format!("{e:#}"),
                            "SIGHUP: cannot reload the TLS files; the previous ones stay in force"
                        ),
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (auth, path, tls);
    Ok(())
}

fn backend_name(log: &OpenLog) -> &'static str {
    match log {
        OpenLog::Embedded(_) => "embedded",
        OpenLog::JetStream(_) => "jetstream",
    }
}

/// Serves every gRPC service on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
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
        let queries = QueryGrpc::new(
            r.projections.clone(),
            services.log.log(),
            Arc::new(ViewerAccess(services.auth.clone())),
            stop_rx.clone(),
        );
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
        tasks.push(tokio::spawn(async move {
            if let Err(e) = projections.run(log, stop, |_| {}).await {
                tracing::error!(error = %e, "projections stopped");
            }
        }));
        let transparency = read_side.transparency.clone();
        let log = services.log.log();
        let stop = stopped(stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = transparency.run(log, stop).await {
                tracing::error!(error = %e, "the Merkle tree and checkpoints stopped");
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
    let stopping = async move {
        shutdown.await;
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
    result.context("gRPC server failed")
}

pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

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
struct Health {
    reporter: tonic_health::server::HealthReporter,
    commands: bool,
    read_side: bool,
}

impl Health {
    /// The overall status (`""`, for a readiness probe) is SERVING while the
    /// log answers and the read models (if this process keeps them) have
    /// caught up with the log as it was at the start; the command service
    /// follows the log, the query and audit services the read models. A
    /// service of a role this process does not run stays unknown to health
    /// (NOT_FOUND), as it is to gRPC (UNIMPLEMENTED).
    async fn report(&self, log_up: bool, caught_up: bool) {
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
/// head and the projections' lag. A process that starts with read models
/// behind the log (a new replica, a pod on a fresh volume) is not ready until
/// they reach the log's head as it was when the process first read it:
/// before, its queries would answer "no such project" for projects that
/// exist. Lag after that (the log grows while they catch up, or later) does
/// not take it out again; `min_position` is how a client reads its writes.
async fn watch_health(
    log: OpenLog,
    projections: Option<Projections>,
    health: Health,
    stopped: impl std::future::Future<Output = ()>,
) {
    let log = log.log();
    let mut log_up = true;
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
        let ok = matches!(head, Ok(Ok(_)));
        metrics::gauge!("waybill_log_up").set(if ok { 1.0 } else { 0.0 });
        let was = (log_up, caught_up);
        if let Ok(Ok(head)) = head {
            metrics::gauge!("waybill_log_head_position").set(head.0 as f64);
            if let Some(projections) = &projections {
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
        if ok != log_up {
            log_up = ok;
            if ok {
                tracing::info!("event log reachable again");
            } else {
                tracing::warn!("event log unreachable: health is NOT_SERVING");
            }
        }
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

/// Completes on Ctrl-C or SIGTERM.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    // The handlers are installed here, before anything is served: a signal
    // future polled only later (tonic polls it beside its first accept) let
    // a SIGTERM that came right after the first request kill the process
    // instead of stopping it.
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
    })
}
