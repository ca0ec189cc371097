//! `waybill serve`: open the log, serve gRPC until a shutdown signal.

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;

use crate::cli::ServeArgs;
use crate::config::{listen_addr, FileConfig};
use crate::open::{open, OpenLog};

/// How often the health service checks that the log answers.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

pub async fn run(args: ServeArgs, file: &FileConfig) -> anyhow::Result<()> {
    let addr = listen_addr(args.listen, file)?;
    let log = open(&args.log, file).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // Printed for scripts and tests that pass port 0.
    eprintln!("waybill listening on {local}");
    tracing::info!(addr = %local, backend = backend_name(&log), "serving gRPC");
    serve(listener, log.clone(), shutdown_signal()).await?;
    log.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn backend_name(log: &OpenLog) -> &'static str {
    match log {
        OpenLog::Embedded(_) => "embedded",
        OpenLog::JetStream(_) => "jetstream",
    }
}

/// Serves health and reflection on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    log: OpenLog,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(waybill_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;

    let watcher = tokio::spawn(watch_log_health(log, reporter));
    let result = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    watcher.abort();
    let _ = watcher.await;
    result.context("gRPC server failed")
}

/// Turns the health status NOT_SERVING while the log does not answer.
async fn watch_log_health(log: OpenLog, reporter: tonic_health::server::HealthReporter) {
    let log = log.log();
    let mut serving = true;
    loop {
        tokio::time::sleep(HEALTH_INTERVAL).await;
        let ok = tokio::time::timeout(HEALTH_INTERVAL, log.head())
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false);
        if ok != serving {
            serving = ok;
            let status = if ok {
                tracing::info!("event log reachable again");
                ServingStatus::Serving
            } else {
                tracing::warn!("event log unreachable: health is NOT_SERVING");
                ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
}
