//! `waybill serve --backup-dir`: a live copy of the log in another
//! directory, record for record. It follows the log while serving (seen in
//! its metric), holds the whole log after a clean stop, is a prefix of it
//! after a kill, and goes on from its head at the next start. A backup
//! directory inside the data directory, or holding another ledger, is
//! refused at start.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{run, stderr, stdout, waybill, Served};

/// The value of a gauge on the metrics endpoint, if it is there.
fn gauge(port: u16, name: &str) -> Option<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// `waybill discover` of `ghcr.io/acme/shop:<tag>` in project shop, which
/// must be accepted.
fn discover(served: &Served, tag: &str) {
    let out = served.discover_cli(tag);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn dump(dir: &str) -> Vec<String> {
    let out = run(&["dump", "--data-dir", dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn a_backup_follows_the_log_and_survives_stops_and_kills() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf8").to_string();
    let (data, backup) = (path("data"), path("backup"));
    let start = || {
        Served::start(
            waybill()
                .args(["serve", "--insecure-dev", "--no-checkpoints"])
                .args(["--data-dir", &data, "--backup-dir", &backup])
                .args(["--metrics-listen", "127.0.0.1:0"]),
        )
    };

    // Live: the backup reaches each new event while the server runs (the
    // auto-promoter appends after each discovery, so wait for the head).
    let served = start();
    let port = served.metrics_port();
    served.apply_example();
    for i in 0..10 {
        discover(&served, &format!("1.{i}"));
    }
    let mut caught_up = false;
    for _ in 0..1_000 {
        let (head, copied) = (
            gauge(port, "waybill_log_head_position"),
            gauge(port, "waybill_backup_position"),
        );
        if head.is_some() && head == copied && head > Some(20) {
            caught_up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(caught_up, "the backup did not follow the log");
    assert!(served.terminate().success());
    let whole = dump(&data);
    assert_eq!(dump(&backup), whole, "after a clean stop");

    // Killed: the backup is a prefix of the log; the next start completes it.
    let served = start();
    for i in 0..10 {
        discover(&served, &format!("2.{i}"));
    }
    let _ = served.kill_and_log();
    let (log, copy) = (dump(&data), dump(&backup));
    assert!(
        copy.len() <= log.len() && log[..copy.len()] == copy[..],
        "a prefix"
    );
    let served = start();
    discover(&served, "3.0");
    assert!(served.terminate().success());
    assert_eq!(dump(&backup), dump(&data), "after a restart");
    assert!(dump(&data).len() > whole.len() + 10);
}

#[test]
fn a_backup_inside_the_data_dir_or_of_another_ledger_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf8").to_string();
    let refused = |data: &str, backup: &str, says: &str| {
        let out = run(&["serve", "--insecure-dev", "--listen", "127.0.0.1:0"]
            .into_iter()
            .chain(["--data-dir", data, "--backup-dir", backup])
            .collect::<Vec<_>>());
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    };
    let data = path("data");
    refused(
        &data,
        &format!("{data}/backup"),
        "must be outside the data directory",
    );
    assert!(!dir.path().join("data").exists(), "nothing is created");

    // Two ledgers: a's backup cannot take b's log.
    for (name, tag) in [("a", "a"), ("b", "b")] {
        let out = run(&[
            "debug",
            "append-burst",
            "--count",
            "5",
            "--writers",
            "1",
            "--tag",
            tag,
            "--data-dir",
            &path(name),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run(&[
        "copy",
        "--data-dir",
        &path("a"),
        "--to-data-dir",
        &path("a-backup"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    refused(&path("b"), &path("a-backup"), "another ledger");
    assert_eq!(dump(&path("a-backup")), dump(&path("a")), "left as it was");
}

#[test]
fn a_backup_of_a_jetstream_log_holds_the_stream() {
    let nats = waybill_ledger::testing::NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf8").to_string();
    let backup = path("backup");
    let served = Served::start(
        waybill()
            .args([
                "serve",
                "--insecure-dev",
                "--no-checkpoints",
                "--nats",
                &url,
            ])
            .args(["--data-dir", &path("data"), "--backup-dir", &backup]),
    );
    served.apply_example();
    for i in 0..5 {
        discover(&served, &i.to_string());
    }
    assert!(served.terminate().success());
    let out = run(&["dump", "--nats", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stream: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert!(stream.len() >= 6, "{}", stream.len());
    assert_eq!(dump(&backup), stream);
}
