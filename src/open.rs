//! Opening the configured log backend.

use std::sync::Arc;

use anyhow::Context;
use waybill_ledger::{EventLog, JetStreamLog, LedgerError, SledLog};

use crate::cli::LogArgs;
use crate::config::{log_config, FileConfig, LogConfig};

/// An open log, with what it takes to close it cleanly.
#[derive(Debug, Clone)]
pub enum OpenLog {
    Embedded(SledLog),
    JetStream(JetStreamLog),
}

impl OpenLog {
    /// The log behind the trait.
    pub fn log(&self) -> Arc<dyn EventLog> {
        match self {
            OpenLog::Embedded(l) => Arc::new(l.clone()),
            OpenLog::JetStream(l) => Arc::new(l.clone()),
        }
    }

    /// Flushes sled or drains the NATS connection.
    pub async fn close(&self) {
        match self {
            OpenLog::Embedded(l) => {
                if let Err(e) = l.flush().await {
                    tracing::warn!(error = %e, "flushing the embedded log failed");
                }
            }
            OpenLog::JetStream(l) => l.close().await,
        }
    }
}

/// Opens the backend the flags, environment and config file select, creating
/// the log (an embedded one, or the JetStream stream) if it is absent.
pub async fn open(args: &LogArgs, file: &FileConfig) -> anyhow::Result<OpenLog> {
    open_log(args, file, None, true).await
}

/// [`open`], retrying while NATS cannot be reached, for up to `wait`: a
/// server started before NATS (a reboot, a cluster coming up) serves once
/// NATS does, instead of exiting. `None` if `stop` (a shutdown signal)
/// completes first. Errors other than an unreachable NATS (a refused stream,
/// bad credentials) are returned at once.
pub async fn open_waiting(
    args: &LogArgs,
    file: &FileConfig,
    wait: std::time::Duration,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Option<OpenLog>> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_millis(500);
    tokio::pin!(stop);
    loop {
        let result = tokio::select! {
            result = open(args, file) => result,
            () = &mut stop => return Ok(None),
        };
        let unreachable = matches!(
            result
                .as_ref()
                .err()
                .and_then(|e| e.downcast_ref::<LedgerError>()),
            Some(LedgerError::Unavailable(_))
        );
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !unreachable || left.is_zero() {
            return result.map(Some);
        }
        if let Err(e) = &result {
            tracing::warn!(
                error = %e,
                retry_in_ms = pause.min(left).as_millis() as u64,
                left_secs = left.as_secs(),
                "cannot reach NATS yet; trying again (--nats-connect-wait)"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(pause.min(left)) => {}
            () = &mut stop => return Ok(None),
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(5));
    }
}

/// Opens an existing log, for commands that read it (`verify`, `dump`,
/// `projections`): a data directory or stream that is not there is an error,
/// and nothing is created. `cache_bytes`: the page cache of an embedded log.
pub async fn open_existing(
    args: &LogArgs,
    file: &FileConfig,
    cache_bytes: Option<u64>,
) -> anyhow::Result<OpenLog> {
    open_log(args, file, cache_bytes, false).await
}

async fn open_log(
    args: &LogArgs,
    file: &FileConfig,
    cache_bytes: Option<u64>,
    create: bool,
) -> anyhow::Result<OpenLog> {
    match log_config(args, file)? {
        LogConfig::Embedded { data_dir } => {
            let dir = data_dir.clone();
            let cache = cache_bytes.unwrap_or(SledLog::DEFAULT_CACHE_BYTES);
            let log = tokio::task::spawn_blocking(move || match create {
                true => SledLog::open_with_cache(&dir, cache),
                false => SledLog::open_existing(&dir, cache),
            })
            .await
            .context("opening the embedded log")??;
            Ok(OpenLog::Embedded(log))
        }
        LogConfig::JetStream(mut opts) => {
            if opts.allow_mutable_stream {
                tracing::warn!("accepting a stream that allows deletes and purges: tests only");
            }
            opts.create_stream = create;
            Ok(OpenLog::JetStream(JetStreamLog::connect(*opts).await?))
        }
    }
}
