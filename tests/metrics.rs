//! The Prometheus endpoint of `waybill serve`: commands by outcome and
//! reason, append latency, reactor actions, projection lag, the Merkle tree
//! and the promotions under way, scraped over real HTTP.

mod common;

use std::time::Duration;

use common::{run, scrape, stderr, waybill, Served};

#[test]
fn serve_exposes_prometheus_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--insecure-dev", "--checkpoint-interval-secs", "1"])
            .args(["--metrics-listen", "127.0.0.1:0"]),
    );
    let port = served.metrics_port();
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
        "waybill_log_safe 1",
        "waybill_merkle_tree_size ",
        // At 0 from the start, so that an alert on its increase sees the first.
        "waybill_foreign_messages_total 0",
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

    // A promotion waiting for its executor shows, with since when, until it
    // is reported: a project whose dev is deployed by an executor.
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web.yaml");
    let example = std::fs::read_to_string(common::EXAMPLE_PIPELINE).expect("example");
    let yaml = example.replace("project: shop", "project: web").replacen(
        "record_only: true",
        "record_only: false",
        1,
    );
    std::fs::write(&web, yaml).expect("write");
    let out = cli(&["apply", "-f", web.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cli(&[
        "discover",
        "-p",
        "web",
        "-w",
        "images",
        "--image",
        "ghcr.io/acme/shop:1.0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let labels = "{project=\"web\",stage=\"dev\",status=\"Authorized\"}";
    let waiting = format!("waybill_promotions_under_way{labels} 1");
    let since = format!("waybill_promotions_under_way_since_seconds{labels} ");
    let scraped = |want: &[&str]| {
        let mut text = String::new();
        for _ in 0..100 {
            text = scrape(port);
            if want.iter().all(|w| text.contains(w)) {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("metrics lack one of {want:?}:\n{text}");
    };
    let text = scraped(&[&waiting, &since]);
    let at: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&since))
        .and_then(|v| v.trim().parse().ok())
        .expect("a timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs_f64();
    assert!((now - 600.0..=now + 1.0).contains(&at), "{at} vs {now}");
    let promotions = cli(&["promotions", "-p", "web", "--output", "json"]);
    let list: serde_json::Value =
        serde_json::from_slice(&promotions.stdout).expect("promotions json");
    let id = list["promotions"][0]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let out = cli(&["report", "-p", "web", "--promotion", &id, "--succeeded"]);
    assert!(out.status.success(), "{}", stderr(&out));
    scraped(&[&format!("waybill_promotions_under_way{labels} 0")]);
    drop(served);
}
