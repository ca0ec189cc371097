//! Putting a new auth config or new gRPC TLS files in force without a
//! restart: on SIGHUP, and when the files change.
//!
//! Each reload reads and checks the whole of what it replaces before it
//! swaps it in, so a file with an error (or one caught half-written) changes
//! nothing: the error is logged and the settings in force stay.
//!
//! Files are checked every `--reload-check-secs` (30 s by default; 0: only
//! on SIGHUP) by their modification time, length and inode. That is what
//! makes a Kubernetes Secret or ConfigMap update take effect (the kubelet
//! swaps the mounted files, and nobody sends a signal), and a certificate
//! renewed by cert-manager or an ACME client be served.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use waybill_commands::auth::{AuthConfig, Authenticator};

use crate::tls::ServerTls;

/// How often files are checked by default.
pub const DEFAULT_CHECK_SECS: u64 = 30;

/// What can be read again while serving.
pub(super) struct Reloadable {
    pub(super) auth: Arc<Authenticator>,
    /// `--auth-config`.
    pub(super) auth_path: Option<PathBuf>,
    pub(super) tls: Option<Arc<ServerTls>>,
}

/// A file as last seen: modification time, length and inode (`None`: not
/// there, or unreadable).
type Stamp = Option<(Option<SystemTime>, u64, u64)>;

fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok(), meta.len(), inode))
}

fn stamps(files: &[PathBuf]) -> Vec<(PathBuf, Stamp)> {
    files.iter().map(|f| (f.clone(), stamp(f))).collect()
}

impl Reloadable {
    /// The auth config and every file it names. A config that cannot be
    /// read now names only itself (its change is what will matter).
    fn auth_files(&self) -> Vec<PathBuf> {
        let Some(path) = &self.auth_path else {
            return Vec::new();
        };
        let mut files = vec![path.clone()];
        if let Ok(config) = AuthConfig::load(path) {
            files.extend(config.files());
        }
        files
    }

    fn tls_files(&self) -> Vec<PathBuf> {
        self.tls.as_ref().map(|t| t.files()).unwrap_or_default()
    }

    /// Reads the auth config again and puts it in force; `why` starts the
    /// log line.
    fn reload_auth(&self, why: &str) {
        let Some(path) = &self.auth_path else {
            return;
        };
        let result = AuthConfig::load(path).and_then(|config| self.auth.reload(config));
        reloaded("auth", result.is_ok());
        match result {
            Ok(()) => tracing::info!(auth_config = %path.display(), "{why}: auth config reloaded"),
            Err(e) => tracing::error!(
                auth_config = %path.display(),
                error = %e,
                "{why}: cannot reload the auth config; the previous one stays in force"
            ),
        }
    }

    /// Reads the TLS files again and puts them in force for new connections.
    fn reload_tls(&self, why: &str) {
        let Some(tls) = &self.tls else {
            return;
        };
        let cert = tls.cert_path().display().to_string();
        let result = tls.reload();
        reloaded("tls", result.is_ok());
        if result.is_ok() {
            certificate_served(tls);
        }
        match result {
            Ok(()) => tracing::info!(
                tls_cert = %cert,
                "{why}: TLS certificate reloaded; new connections use it"
            ),
            Err(e) => tracing::error!(
                tls_cert = %cert,
                error = format!("{e:#}"),
                "{why}: cannot reload the TLS files; the previous ones stay in force"
            ),
        }
    }
}

/// Sets `waybill_config_reload_ok` for `what` (an alert fires while a
/// refused reload has left older files in force).
fn reloaded(what: &'static str, ok: bool) {
    ::metrics::gauge!("waybill_config_reload_ok", "what" => what).set(if ok { 1.0 } else { 0.0 });
}

/// A certificate closer than this to its end is worth a warning when it is
/// put in force.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Sets `waybill_tls_cert_expiry_timestamp_seconds` from the certificate in
/// force (an alert fires before it ends).
fn certificate_served(tls: &ServerTls) {
    let expires = tls.expires();
    let secs = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    ::metrics::gauge!("waybill_tls_cert_expiry_timestamp_seconds").set(secs);
    let left = expires
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    if left < EXPIRY_WARNING {
        tracing::warn!(
            tls_cert = %tls.cert_path().display(),
            expires = %crate::tls::utc(expires),
            "the gRPC TLS certificate expires in less than 14 days; renew it"
        );
    }
}

/// Reloads on SIGHUP, and, every `check_every` (if any), when the files
/// changed. Without an auth config and TLS there is nothing to read, and
/// SIGHUP (which would otherwise end the process) only says so.
pub(super) fn start(reloadable: Reloadable, check_every: Option<Duration>) -> anyhow::Result<()> {
    #[cfg(unix)]
    let mut hup = {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup()).context("installing the SIGHUP handler")?
    };
    let nothing = reloadable.auth_path.is_none() && reloadable.tls.is_none();
    // What the process started with was read and checked.
    if reloadable.auth_path.is_some() {
        reloaded("auth", true);
    }
    if let Some(tls) = &reloadable.tls {
        reloaded("tls", true);
        certificate_served(tls);
    }
    let check_every = check_every.filter(|_| !nothing);
    if let Some(every) = check_every {
        tracing::info!(
            every_secs = every.as_secs(),
            "the auth config and TLS files are read again on SIGHUP and when they change"
        );
    }
    let mut auth_seen = stamps(&reloadable.auth_files());
    let mut tls_seen = stamps(&reloadable.tls_files());
    tokio::spawn(async move {
        let mut tick = check_every.map(|every| {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        loop {
            #[cfg(unix)]
            let hangup = hup.recv();
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            let checked = async {
                match tick.as_mut() {
                    Some(tick) => tick.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                signal = hangup => {
                    if signal.is_none() {
                        return;
                    }
                    if nothing {
                        tracing::warn!("SIGHUP: no --auth-config and no TLS files to read again");
                        continue;
                    }
                    // Taken first: a file that changes while it is read is
                    // read again at the next check.
                    auth_seen = stamps(&reloadable.auth_files());
                    tls_seen = stamps(&reloadable.tls_files());
                    reloadable.reload_auth("SIGHUP");
                    reloadable.reload_tls("SIGHUP");
                }
                _ = checked => {
                    let auth_now = stamps(&reloadable.auth_files());
                    if auth_now != auth_seen {
                        reloadable.reload_auth("auth files changed");
                        auth_seen = auth_now;
                    }
                    let tls_now = stamps(&reloadable.tls_files());
                    if tls_now != tls_seen {
                        reloadable.reload_tls("TLS files changed");
                        tls_seen = tls_now;
                    }
                }
            }
        }
    });
    Ok(())
}
