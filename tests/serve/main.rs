//! `waybill serve`: the gRPC endpoint comes up on either backend, reports
//! health (following the log's reachability), offers reflection, and stops
//! cleanly on SIGTERM.
//!
//! The parts: `health` (health and reflection, readiness behind the log),
//! `config` (where settings come from, how the log reads), `refusals` (bad
//! configuration, an unreachable server), `roles` (commands and queries in
//! separate processes) and `shutdown` (stopping cleanly, the command state
//! kept across a clean restart). The health probes and a discovery call
//! several of them use are here.

#[path = "../common/mod.rs"]
mod common;
mod config;
mod foreign;
mod health;
mod origin;
mod refusals;
mod roles;
mod shutdown;

use std::time::Duration;

use common::Served;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The server's overall health status (`None`: no answer).
async fn health(endpoint: &str) -> Option<ServingStatus> {
    service_health(endpoint, "").await
}

async fn wait_for_health(endpoint: &str, want: ServingStatus) {
    for _ in 0..300 {
        if health(endpoint).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health never became {want:?}");
}

/// `waybill serve --insecure-dev --nats URL --data-dir DATA`, for more
/// flags or settings before it starts.
pub(crate) fn insecure_dev_cmd(
    nats: &waybill_ledger::testing::NatsServer,
    data: &std::path::Path,
) -> std::process::Command {
    let mut cmd = common::waybill();
    cmd.args([
        "serve",
        "--insecure-dev",
        "--nats",
        &nats.url(),
        "--data-dir",
    ])
    .arg(data);
    cmd
}

/// `waybill serve --insecure-dev` (auto-promotion on) on `nats`.
pub(crate) fn insecure_dev_on(
    nats: &waybill_ledger::testing::NatsServer,
    data: &std::path::Path,
) -> Served {
    Served::start(&mut insecure_dev_cmd(nats, data))
}

/// The health status of one service (`None`: no answer).
async fn service_health(endpoint: &str, service: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .ok()?
        .connect()
        .await
        .ok()?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(reply.into_inner().status).ok()
}

/// Records `ghcr.io/acme/shop:<tag>` in project `shop` on `served`, with
/// idempotency key `key`.
async fn discover(served: &Served, tag: &str, key: &str) -> waybill_proto::v1::CommandReply {
    use waybill_proto::v1::command_service_client::CommandServiceClient;
    CommandServiceClient::connect(served.endpoint())
        .await
        .expect("connect")
        .record_discovery(common::discovery(tag, key))
        .await
        .expect("discover")
        .into_inner()
}
