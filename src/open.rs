//! Opening the configured log backend.

use std::sync::Arc;

use anyhow::Context;
use waybill_ledger::{EventLog, JetStreamLog, SledLog};

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

/// Opens the backend the flags, environment and config file select.
pub async fn open(args: &LogArgs, file: &FileConfig) -> anyhow::Result<OpenLog> {
    open_with_cache(args, file, None).await
}

/// [`open`], with a page cache of `cache_bytes` for an embedded log.
pub async fn open_with_cache(
    args: &LogArgs,
    file: &FileConfig,
    cache_bytes: Option<u64>,
) -> anyhow::Result<OpenLog> {
    match log_config(args, file)? {
        LogConfig::Embedded { data_dir } => {
            let dir = data_dir.clone();
            let log = tokio::task::spawn_blocking(move || match cache_bytes {
                Some(bytes) => SledLog::open_with_cache(&dir, bytes),
                None => SledLog::open(&dir),
            })
            .await
            .context("opening the embedded log")??;
            Ok(OpenLog::Embedded(log))
        }
        LogConfig::JetStream(opts) => Ok(OpenLog::JetStream(JetStreamLog::connect(*opts).await?)),
    }
}
