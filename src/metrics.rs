//! The Prometheus scrape endpoint of `waybill serve` (`--metrics-listen`).
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `waybill_commands_total` | counter | `command`, `outcome` (accepted, already_done, rejected, invalid, not_found, denied, aborted, unavailable, internal), `reason` (policy reason when rejected) |
//! | `waybill_append_seconds` | histogram | |
//! | `waybill_append_conflicts_total` | counter | (each one is retried, up to 16 attempts) |
//! | `waybill_reactor_actions_total` | counter | `reactor`, `action` (requested, duplicate, not_allowed, failed) |
//! | `waybill_projection_applied_position`, `waybill_log_head_position`, `waybill_projection_lag` | gauge | |
//! | `waybill_log_up` | gauge | 1 while the log answers |
//! | `waybill_merkle_tree_size`, `waybill_checkpoints_signed_total` | gauge, counter | |

use std::net::SocketAddr;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Append latency buckets, in seconds: 100 µs to 1 s.
const APPEND_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Installs the recorder and serves the scrape endpoint on `addr`.
pub fn install(addr: SocketAddr) -> anyhow::Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full("waybill_append_seconds".into()),
            &APPEND_BUCKETS,
        )
        .context("append latency buckets")?
        .install()
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    tracing::info!(%addr, "serving Prometheus metrics");
    Ok(())
}
