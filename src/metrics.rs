//! The Prometheus scrape endpoint of `waybill serve` (`--metrics-listen`).
//!
//! Every metric, with its HELP text, is in [`METRICS`] (and in the README).

use std::net::SocketAddr;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Append latency buckets, in seconds: 100 µs to 1 s.
const APPEND_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Kinds of metric.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric `waybill serve` exports: name, kind, and the HELP text a
/// scrape shows (labels in brackets).
const METRICS: [(&str, Kind, &str); 20] = [
    ("waybill_commands_total", Kind::Counter,
     "Commands handled [command; outcome: accepted, already_done, rejected, invalid, not_found, denied, aborted, unavailable, internal; reason: the policy reason of a rejection]"),
    ("waybill_append_seconds", Kind::Histogram,
     "Time to append one event to the log, seconds"),
    ("waybill_append_conflicts_total", Kind::Counter,
     "Appends refused because the project moved on (each is decided again, up to 16 attempts)"),
    ("waybill_reactor_actions_total", Kind::Counter,
     "What the reactors did [reactor; action: requested, duplicate, not_allowed, failed]"),
    ("waybill_command_state_records", Kind::Gauge,
     "Records the command service's cached project states hold in memory (budget: --command-cache-records)"),
    ("waybill_command_states_dropped_total", Kind::Counter,
     "Cached project states dropped to stay within --command-cache-records (each is saved in the command state store and read back when next needed)"),
    ("waybill_command_states_restored_total", Kind::Counter,
     "Project states the command service took back from its store (saved at a clean shutdown or when dropped from the cache) instead of folding their log"),
    ("waybill_log_up", Kind::Gauge,
     "1 while the event log answers, else 0"),
    ("waybill_log_safe", Kind::Gauge,
     "0 while the log's configuration, as last read, would discard events (a JetStream stream changed to have a limit): appends are refused meanwhile; else 1"),
    ("waybill_log_head_position", Kind::Gauge,
     "The event log's last position"),
    ("waybill_projection_applied_position", Kind::Gauge,
     "The last position every read model reflects"),
    ("waybill_projection_lag", Kind::Gauge,
     "Positions the read models are behind the log's head"),
    ("waybill_promotions_under_way", Kind::Gauge,
     "Promotions requested (waiting for approvals), authorized (waiting for their executor) or running [project; stage; status]"),
    ("waybill_promotions_under_way_since_seconds", Kind::Gauge,
     "When the longest-waiting of those promotions entered its status, seconds since the Unix epoch (the time of the update when none waits) [project; stage; status]"),
    ("waybill_foreign_messages_total", Kind::Counter,
     "Messages on the log that Waybill did not write, passed over by the read models (docs/operations.md, \"Who may publish to the stream\")"),
    ("waybill_merkle_tree_size", Kind::Gauge,
     "Records in the Merkle tree of the log"),
    ("waybill_checkpoints_signed_total", Kind::Counter,
     "Checkpoints of the Merkle tree signed and appended by this process"),
    ("waybill_backup_position", Kind::Gauge,
     "The last position the live copy of the log (--backup-dir) holds"),
    ("waybill_tls_cert_expiry_timestamp_seconds", Kind::Gauge,
     "When the gRPC TLS certificate in force stops being valid (its notAfter), seconds since the Unix epoch"),
    ("waybill_config_reload_ok", Kind::Gauge,
     "0 while the last reload of these files was refused (the previous ones stay in force), else 1 [what: auth, tls]"),
];

/// Installs the recorder and serves the scrape endpoint on `addr`; port 0
/// takes a free port, which the log line names.
pub fn install(addr: SocketAddr) -> anyhow::Result<()> {
    let addr = with_free_port(addr)?;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full("waybill_append_seconds".into()),
            &APPEND_BUCKETS,
        )
        .context("append latency buckets")?
        .install()
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    for (name, kind, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
    tracing::info!(%addr, "serving Prometheus metrics");
    Ok(())
}

/// `addr`, or with port 0 the address the system gives a listener on it.
/// The exporter binds the address it is given and cannot be handed a
/// listener, so the port is found by binding it here and released just
/// before the exporter binds it again.
fn with_free_port(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    Ok(probe.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_metric() {
        let readme = include_str!("../README.md");
        for (name, _, _) in METRICS {
            assert!(
                readme.contains(&format!("| `{name}` |")),
                "README lacks {name}"
            );
        }
    }
}
