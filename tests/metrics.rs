//! The Prometheus endpoint of `waybill serve`: commands by outcome and
//! reason, append latency, reactor actions, projection lag and the Merkle
//! tree, scraped over real HTTP.

mod common;

use std::time::Duration;

use common::{free_port, run, scrape, stderr, waybill, Served};

#[test]
fn serve_exposes_prometheus_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let served = Served::start(
        waybill()
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--insecure-dev", "--checkpoint-interval-secs", "1"])
            .args(["--metrics-listen", &format!("127.0.0.1:{port}")]),
    );
    let server = served.endpoint();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &server]);
        run(&all)
    };
    served.apply_example();
    let out = served.discover_cli("1.0");
    assert!(out.status.success(), "{}", stderr(&out));
    // Refused by policy: nothing is verified in staging yet.
    let out = cli(&[
        "promote", "-p", "shop", "--stage", "prod", "--newest", "--ticket", "CHG-1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // Gauges are refreshed every 2 s and the auto-promoter acts on its own:
    // poll until everything is there (bounded).
    let wanted = [
        "waybill_commands_total{command=\"ApplyPipeline\",outcome=\"accepted\",reason=\"\"} 1",
        "waybill_commands_total{command=\"RecordDiscovery\",outcome=\"accepted\",reason=\"\"} 1",
        "command=\"RequestPromotion\",outcome=\"rejected\",reason=\"",
        "waybill_append_seconds_bucket{le=\"0.001\"}",
        "waybill_reactor_actions_total{reactor=\"auto-promoter\",action=\"requested\"}",
        "waybill_projection_lag ",
        "waybill_log_head_position ",
        "waybill_log_up 1",
        "waybill_merkle_tree_size ",
        "waybill_checkpoints_signed_total ",
        "waybill_command_state_records ",
        // Every metric is described.
        "# HELP waybill_commands_total Commands handled",
        "# HELP waybill_projection_lag Positions the read models are behind",
    ];
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(port);
        if wanted.iter().all(|w| text.contains(w)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for w in wanted {
        assert!(text.contains(w), "metrics lack {w:?}:\n{text}");
    }
    drop(served);
}
