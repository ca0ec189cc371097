//! Every `waybill bench` section that `scripts/bench` runs, at toy sizes:
//! each must run to the end against freshly spawned servers and write its
//! marked section with a measured figure and a ratio on every row. The
//! figures themselves are not asserted (wall-clock time is the bench's
//! business, not a test's); that they exist and are finite is.

use std::path::Path;
use std::process::Command;

fn waybill() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waybill"));
    cmd.env("WAYBILL_LOG", "warn");
    cmd
}

/// Runs `waybill bench ARGS --write FILE`; returns the file's text.
fn bench(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("BENCHMARKS.md");
    let out = waybill()
        .arg("bench")
        .args(args)
        .arg("--write")
        .arg(&file)
        .output()
        .expect("run waybill bench");
    assert!(
        out.status.success(),
        "waybill bench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    read(&file)
}

fn read(file: &Path) -> String {
    std::fs::read_to_string(file).expect("the bench wrote its section")
}

/// The row of `metric` in the section's table: its ratio, which must be a
/// positive finite number.
fn ratio(doc: &str, metric: &str) -> f64 {
    let row = doc
        .lines()
        .find(|l| {
            l.strip_prefix('|')
                .is_some_and(|rest| rest.trim_start().starts_with(metric))
        })
        .unwrap_or_else(|| panic!("no row {metric:?} in\n{doc}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    // "", metric, waybill, raw, ratio, target, result, ""
    assert_eq!(cells.len(), 8, "malformed row {row:?}");
    assert!(
        cells[2].chars().any(|c| c.is_ascii_digit()),
        "no figure in {row:?}"
    );
    let ratio: f64 = cells[4]
        .trim_end_matches('×')
        .parse()
        .unwrap_or_else(|_| panic!("no ratio in {row:?}"));
    assert!(ratio.is_finite() && ratio > 0.0, "ratio {ratio} in {row:?}");
    ratio
}

fn section(doc: &str, name: &str) {
    assert!(
        doc.contains(&format!("<!-- bench:{name}:start -->"))
            && doc.contains(&format!("<!-- bench:{name}:end -->")),
        "no bench:{name} section in\n{doc}"
    );
    assert!(doc.contains("- Command: `cargo run --release -- bench "));
}

#[test]
fn bench_log_runs_and_reports_every_row() {
    let doc = bench(&[
        "log",
        "--latency-samples",
        "20",
        "--writers",
        "4",
        "--per-writer",
        "10",
        "--replay-events",
        "500",
    ]);
    section(&doc, "log");
    for metric in [
        "1-writer append p50",
        "4-writer throughput",
        "4-writer throughput vs raw with Waybill's header set",
        "full replay",
        "full replay, sled (embedded backend)",
    ] {
        ratio(&doc, metric);
    }
}

#[test]
fn bench_commands_runs_on_jetstream_and_embedded() {
    let small = [
        "--latency-samples",
        "20",
        "--clients",
        "4",
        "--per-client",
        "5",
    ];
    let doc = bench(&[&["commands"], &small[..]].concat());
    section(&doc, "commands");
    ratio(&doc, "RequestPromotion p50, 1 client");
    ratio(&doc, "RequestPromotion throughput");
    ratio(&doc, "retried RequestPromotion p50 (no append)");
    let doc = bench(&[&["commands", "--embedded"], &small[..]].concat());
    section(&doc, "commands-embedded");
    ratio(&doc, "RequestPromotion p50, 1 client");
}

#[test]
fn bench_queries_runs_and_reports_rebuild_and_latencies() {
    let doc = bench(&[
        "queries",
        "--events",
        "2000",
        "--projects",
        "4",
        "--samples",
        "10",
    ]);
    section(&doc, "queries");
    for metric in [
        "projection rebuild",
        "GetStage p99",
        "History, 1,000 items, p99",
        "StateAt p99",
        "command-to-visible lag p99",
    ] {
        ratio(&doc, metric);
    }
    assert!(doc.contains("Peak RSS of the rebuild process: **"));
    assert!(
        doc.contains("events folded per second), after one `RecordDiscovery` on each project"),
        "{doc}"
    );
}

#[test]
fn bench_export_runs_on_both_backends_and_on_a_cluster() {
    let doc = bench(&["export", "--events", "2000"]);
    section(&doc, "export");
    ratio(&doc, "export, JetStream (vs raw ordered consumer)");
    ratio(&doc, "export, embedded (vs the 100k ev/s target)");
    ratio(&doc, "verify-export, embedded export (offline)");
    let doc = bench(&["export", "--cluster", "--events", "1000"]);
    section(&doc, "export-r3");
    ratio(&doc, "export, JetStream R3 (vs raw ordered consumer)");
    ratio(&doc, "verify-export, JetStream R3 export (offline)");
    assert!(!doc.contains("embedded (vs"), "{doc}");
}

#[test]
fn bench_export_refuses_a_run_the_disk_cannot_hold() {
    // Its own temporary dir, so that the check reads a known place and
    // anything written by mistake would show.
    let tmp = tempfile::tempdir().expect("temp dir");
    let file = tmp.path().join("BENCHMARKS.md");
    let out = waybill()
        .env("TMPDIR", tmp.path())
        .args(["bench", "export", "--events", "1000000000000", "--write"])
        .arg(&file)
        .output()
        .expect("run waybill bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must refuse:\n{stderr}");
    assert!(stderr.contains("needs about"), "{stderr}");
    assert!(stderr.contains("GB free"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read temp dir")
        .collect();
    assert!(left.is_empty(), "wrote {left:?} before refusing");
}
