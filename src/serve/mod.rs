//! `waybill serve`: open the log, serve gRPC (health, reflection and the
//! services of the process's roles: commands; queries, audit and exports)
//! and run the projections and reactors until a shutdown signal.
//!
//! Shutdown order: stop accepting, finish in-flight requests, stop the
//! reactors, then drain NATS / flush sled.
//!
//! - `settings`: what the flags and the config file ask for, read and checked;
//! - `server`: the gRPC server and the tasks beside it, until shutdown;
//! - `health`: what gRPC health reports, and readiness while read models catch up;
//! - `signals`: SIGTERM/SIGINT (shutdown);
//! - `reload`: the auth config and TLS files read again, on SIGHUP and when
//!   they change.

mod health;
mod reload;
mod server;
mod settings;
mod signals;
mod under_way;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use waybill_commands::auth::Authenticator;
use waybill_commands::clock::Clock;
use waybill_commands::handler::ColdStore;
use waybill_projections::audit::Transparency;
use waybill_projections::Projections;

use crate::cli::ServeArgs;
use crate::config::{listen_addr, FileConfig};
use crate::open::{open_waiting, OpenLog};
use crate::rate_limit::RateLimit;
use crate::roles::Roles;
use crate::tls::ServerTls;

pub use server::{hostname, serve};
pub(crate) use settings::{
    authenticator, backup_dir, command_cache_records, reload_check, server_tls,
};
use settings::{lock_data_dir, open_backup};
pub use signals::shutdown_signal;

/// Requests per second per connection by default.
const DEFAULT_RATE_LIMIT: u32 = 1000;

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

pub async fn run(mut args: ServeArgs, file: &FileConfig) -> anyhow::Result<()> {
    // The flag (or WAYBILL_AUTH_CONFIG) wins over the file; from here on the
    // path is read, reloaded and reported from `args` alone.
    if args.auth_config.is_none() {
        args.auth_config = file.auth_config.clone();
    }
    if args.check {
        return crate::check::run(&args, file);
    }
    // First: a SIGTERM during start-up stops the server once it serves (or
    // the wait for NATS, see below).
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown_signal()?));
    // Every setting is checked first, so that a bad one is named whatever
    // else is wrong (a port in use among them).
    let addr = listen_addr(args.listen, file)?;
    let tls = server_tls(&args, file)?;
    let roles = Roles::chosen(&args.roles, file.roles.as_deref(), args.no_reactors)?;
    let command_cache_records = command_cache_records(&args, file)?;
    let backup_dir = backup_dir(&args, file)?;
    let auth = Arc::new(authenticator(&args)?);
    crate::config::log_config(&args.log, file)?;
    // Before anything is created or opened: a port in use is refused with
    // nothing written (no data dir, no signing key).
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    // Held until the server stops.
    let _data_dir_lock = lock_data_dir(&crate::config::data_dir(&args.log, file))?;
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
    reload::start(
        reload::Reloadable {
            auth: auth.clone(),
            auth_path: args.auth_config.clone(),
            tls: tls.clone(),
        },
        reload_check(&args, file),
    )?;
    // The checkpoint settings and a configured key are checked now; a key
    // to be made in the data dir is made once the log is open, so that a
    // start that fails (NATS unreachable) leaves nothing behind.
    let checkpoints = |missing| {
        crate::audit::checkpoint_policy(
            &args.audit,
            &file.audit,
            &crate::config::data_dir(&args.log, file),
            roles.queries,
            missing,
        )
    };
    checkpoints(crate::audit::MissingKey::Leave)?;
    let wait = std::time::Duration::from_secs(
        args.nats_connect_wait
            .or(file.nats.connect_wait_secs)
            .unwrap_or(0),
    );
    let Some(log) = open_waiting(&args.log, file, wait, shutdown.clone()).await? else {
        tracing::info!("stopped while waiting for NATS");
        return Ok(());
    };
    let policy = checkpoints(crate::audit::MissingKey::Create)?;
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
        let dir = crate::config::data_dir(&args.log, file).join("projections");
        waybill_projections::origin::check_built_from(
            &*log.log(),
            projections.applied(),
            transparency.store(),
            &dir,
        )
        .await?;
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
    let failure = serve(listener, services, shutdown).await?;
    log.close().await;
    if let Some(why) = failure {
        anyhow::bail!(
            "{why}; the server stopped (nothing recorded is lost: mend the cause, e.g. free \
             disk space, and start it again, and the read models resume from their last \
             batch)"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

fn backend_name(log: &OpenLog) -> &'static str {
    match log {
        OpenLog::Embedded(_) => "embedded",
        OpenLog::JetStream(_) => "jetstream",
    }
}
