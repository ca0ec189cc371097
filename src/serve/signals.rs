//! SIGTERM and SIGINT stop the server (SIGHUP: see `reload`).

use anyhow::Context;

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
