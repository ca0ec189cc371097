//! `waybill watch`: by default what happens from now on (it says from which
//! position); `--from 1` the whole history first; a start past the last
//! event says that it waits for it. `waybill history --last N`: the most
//! recent entries.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::{run, stderr, waybill, Served};

/// The lines `from` writes, as they come.
fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next(rx: &Receiver<String>, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("no {what}: {e}"))
}

/// `waybill watch ARGS` against `served`, with its stdout and stderr lines.
fn watch(served: &Served, args: &[&str]) -> (Child, Receiver<String>, Receiver<String>) {
    let mut child = waybill()
        .arg("watch")
        .args(args)
        .args(["--server", &served.endpoint()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let out = lines(child.stdout.take().expect("stdout"));
    let err = lines(child.stderr.take().expect("stderr"));
    (child, out, err)
}

/// The project's history as JSON lines, once it holds `n` entries.
fn history_of(served: &Served, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run(&[
            "history",
            "-p",
            "shop",
            "--output",
            "json",
            "--server",
            &served.endpoint(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &serde_json::Value| e["position"].is_u64())
            .collect();
        if entries.len() >= n || Instant::now() > deadline {
            return entries;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watch_starts_now_unless_asked_for_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::insecure_dev(&dir.path().join("data"));
    served.apply_example();
    assert!(served.discover_cli("1.0").status.success());
    // The pipeline and the discovery (this server runs no reactors).
    let before = history_of(&served, 2);
    assert_eq!(before.len(), 2, "{before:?}");
    let head = before[1]["position"].as_u64().expect("position");
    let freight = before[1]["freight"].as_str().expect("freight").to_string();

    let (mut now, now_out, now_err) = watch(&served, &["-p", "shop"]);
    let said = next(&now_err, "note");
    assert!(
        said.starts_with(&format!("watching from position {}", head + 1)),
        "{said}"
    );
    let ahead = (head + 5).to_string();
    let (mut later, _, later_err) = watch(&served, &["-p", "shop", "--from", &ahead]);
    let said = next(&later_err, "note");
    assert!(
        said.starts_with(&format!(
            "position {ahead} is beyond the last event (position {head})"
        )),
        "{said}"
    );
    let (mut all, all_out, _) = watch(&served, &["-p", "shop", "--from", "1", "--output", "json"]);
    let first: serde_json::Value =
        serde_json::from_str(&next(&all_out, "the first entry")).expect("json");
    assert_eq!(first["position"], 1, "{first}");
    // Only verifications of dev: nothing of the history so far.
    let (mut typed, typed_out, _) = watch(
        &served,
        &[
            "-p",
            "shop",
            "-s",
            "dev",
            "--type",
            "verification-recorded",
            "--from",
            "1",
            "--output",
            "json",
        ],
    );

    let verified = run(&[
        "record-verification",
        "-p",
        "shop",
        "--freight",
        &freight,
        "--stage",
        "dev",
        "--check",
        "integration-tests",
        "--pass",
        "--server",
        &served.endpoint(),
    ]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    let line = next(&now_out, "the new entry");
    assert!(
        line.trim_start().starts_with(&format!("{} ", head + 1)),
        "the first entry watched from now is the verification: {line}"
    );
    assert!(line.contains("VerificationRecorded"), "{line}");
    let typed_first: serde_json::Value =
        serde_json::from_str(&next(&typed_out, "the verification")).expect("json");
    assert_eq!(typed_first["position"], head + 1, "{typed_first}");
    assert_eq!(typed_first["event_type"], "VerificationRecorded");
    for child in [&mut now, &mut later, &mut all, &mut typed] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `history --last N`: the N most recent entries, oldest first, and how to
/// see earlier ones; with --from, those at or before that position.
#[test]
fn history_last_shows_the_most_recent_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::insecure_dev(&dir.path().join("data"));
    served.apply_example();
    for tag in ["1.0", "1.1", "1.2"] {
        assert!(served.discover_cli(tag).status.success());
    }
    let all: Vec<u64> = history_of(&served, 4)
        .iter()
        .filter_map(|e| e["position"].as_u64())
        .collect();
    assert_eq!(all.len(), 4, "{all:?}");
    let endpoint = served.endpoint();
    let last = |args: &[&str]| {
        let mut cmd = vec!["history", "-p", "shop", "--output", "json"];
        cmd.extend(args);
        cmd.extend(["--server", &endpoint]);
        let out = run(&cmd);
        assert!(out.status.success(), "{}", stderr(&out));
        let positions: Vec<u64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e["position"].as_u64())
            .collect();
        (positions, stderr(&out))
    };
    let (two, said) = last(&["--last", "2"]);
    assert_eq!(two, all[2..], "the two most recent, oldest first");
    assert!(
        said.contains(&format!("earlier ones with --last 2 --from {}", all[2] - 1)),
        "{said}"
    );
    let (earlier, _) = last(&["--last", "2", "--from", &(all[2] - 1).to_string()]);
    assert_eq!(earlier, all[..2]);
    let (everything, said) = last(&["--last", "10"]);
    assert_eq!(everything, all);
    assert!(!said.contains("earlier ones"), "{said}");
    let out = run(&[
        "history",
        "-p",
        "shop",
        "--last",
        "0",
        "--server",
        &served.endpoint(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A deployment job's watch: `--status authorized` hands it each promotion
/// as it becomes its work (here an auto stage's request, authorized at
/// once), and nothing else; every entry says where its promotion stands,
/// and the history line of an event that leaves it otherwise than its type
/// says shows it.
#[test]
fn a_deployment_job_watches_for_authorized_promotions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .args(["serve", "--insecure-dev", "--data-dir"])
            .arg(dir.path().join("data")),
    );
    // dev deployed by an executor rather than completed at authorization.
    let example = std::fs::read_to_string(common::EXAMPLE_PIPELINE).expect("example");
    let yaml = example.replacen("record_only: true", "record_only: false", 1);
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, yaml).expect("write");
    let applied = run(&[
        "apply",
        "-f",
        file.to_str().expect("utf-8"),
        "--server",
        &served.endpoint(),
    ]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let (mut child, out, _err) = watch(
        &served,
        &[
            "-p",
            "shop",
            "--from",
            "1",
            "--status",
            "authorized",
            "--output",
            "json",
        ],
    );
    let discovered = served.discover_cli("1.0");
    assert!(discovered.status.success(), "{}", stderr(&discovered));
    let line = next(&out, "an authorized promotion");
    let e: serde_json::Value = serde_json::from_str(&line).expect("json");
    assert_eq!(
        (&e["event_type"], &e["stage"], &e["promotion_status"]),
        (
            &serde_json::json!("PromotionRequested"),
            &serde_json::json!("dev"),
            &serde_json::json!("Authorized")
        ),
        "{e}"
    );
    // The pipeline and the discovery before it were not handed over.
    assert!(e["position"].as_u64().expect("position") > 2, "{e}");
    child.kill().expect("kill watch");
    let _ = child.wait();
    let text = run(&["history", "-p", "shop", "--server", &served.endpoint()]);
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(
        said.lines()
            .any(|l| l.contains("PromotionRequested") && l.contains("now Authorized")),
        "{said}"
    );
}
