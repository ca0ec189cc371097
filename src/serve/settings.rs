//! What `waybill serve` starts with: the flags, environment and config file
//! read and checked before anything is opened.

use std::sync::Arc;

use anyhow::Context;
use waybill_commands::auth::{AuthConfig, Authenticator};

use crate::cli::ServeArgs;
use crate::config::FileConfig;
use crate::open::OpenLog;
use crate::tls::{ServerTls, TlsFiles};

/// The page cache of the backup's embedded log.
const BACKUP_CACHE_BYTES: u64 = 16 << 20;

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
pub(super) async fn open_backup(dir: std::path::PathBuf, log: &OpenLog) -> anyhow::Result<OpenLog> {
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

/// How often the auth and TLS files are checked for changes (`None`: only
/// SIGHUP reloads them).
pub(crate) fn reload_check(args: &ServeArgs, file: &FileConfig) -> Option<std::time::Duration> {
    let secs = args
        .reload_check_secs
        .or(file.reload_check_secs)
        .unwrap_or(super::reload::DEFAULT_CHECK_SECS);
    (secs > 0).then(|| std::time::Duration::from_secs(secs))
}

/// The lock a server holds on its data directory (`<dir>/serve.lock`)
/// while it runs, taken before anything in the directory is opened or
/// created: a second server on the same directory is refused before it
/// creates an embedded log or a signing key beside the first one's stores.
/// `None` when the directory does not exist yet: no server uses it, and
/// nothing is created before the start has succeeded (NATS reached); the
/// stores' own locks stand behind this one.
pub(super) fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let path = dir.join("serve.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another waybill serve uses the data directory {}: give each server its own \
             (--data-dir)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}
