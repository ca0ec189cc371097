//! Signals: SIGTERM and SIGINT stop the server, SIGHUP reloads what can be
//! reloaded.

use std::sync::Arc;

use anyhow::Context;
use waybill_commands::auth::{AuthConfig, Authenticator};

use crate::tls::ServerTls;

/// SIGHUP reads the auth config again (tokens file, JWT keys, bindings) and
/// the gRPC TLS files, and puts each in force, or keeps the one in force if
/// the new one is wrong: a leaked token is revoked, and a rotated
/// certificate served, without a restart. With neither configured there is
/// nothing to read, and SIGHUP (which would otherwise end the process) only
/// says so.
pub(super) fn reload_on_sighup(
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
