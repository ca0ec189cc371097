//! `waybill verify`: a clean log verifies; a log altered behind Waybill's
//! back is reported at the first broken link, with a non-zero exit.

mod common;

use common::{append_burst, run, stdout};
use waybill_ledger::testing::{mutable_jetstream, NatsServer};
use waybill_ledger::SledLog;

fn burst(log_args: &[&str], count: &str, writers: &str) {
    append_burst(log_args, count, writers, "burst");
}

#[test]
fn embedded_clean_then_tampered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8").to_string();
    burst(&["--data-dir", &data], "20", "2");
    let out = run(&["verify", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("ok: 40 events in 2 project(s)"),
        "{}",
        stdout(&out)
    );

    let out = run(&["verify", "--data-dir", &data, "--project", "burst-1"]);
    assert!(
        stdout(&out).contains("ok: 20 events in 1 project(s)"),
        "{}",
        stdout(&out)
    );

    {
        let log = SledLog::open(dir.path()).expect("open");
        let tree = log.raw_tree();
        let key = [b'e', 0, 0, 0, 0, 0, 0, 0, 17];
        let mut value = tree.get(key).expect("get").expect("event 17").to_vec();
        let at = value.len() - 3;
        value[at] ^= 0x20;
        tree.insert(key, value).expect("tamper");
        tree.flush().expect("flush");
    }
    let out = run(&["verify", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("BROKEN") && text.contains("position 17"),
        "{text}"
    );

    // The same verdict as one JSON object, for scripts.
    let out = run(&["verify", "--data-dir", &data, "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["first_break"]["position"], 17, "{v}");
    assert!(v["events"].as_u64().is_some_and(|n| n < 40), "{v}");
}

#[test]
fn a_clean_verification_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8").to_string();
    burst(&["--data-dir", &data], "20", "2");
    let out = run(&["verify", "--data-dir", &data, "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["events"], 40, "{v}");
    assert!(v["first_break"].is_null(), "{v}");
    let projects = v["projects"].as_array().expect("projects");
    assert_eq!(projects.len(), 2, "{v}");
    assert_eq!(projects[0]["project"], "burst-0", "{v}");
    assert_eq!(projects[0]["events"], 20, "{v}");
    assert_eq!(
        projects[0]["head_hash"].as_str().map(str::len),
        Some(64),
        "{v}"
    );
}

#[test]
fn bad_project_name_is_an_error_not_a_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(&[
        "verify",
        "--data-dir",
        dir.path().to_str().expect("utf8"),
        "--project",
        "Bad.Name",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("not a valid project name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_deleted_and_republished_messages_are_reported() {
    let server = NatsServer::start();
    let url = server.url();
    // A test stream without the deny flags, so that a message can be deleted.
    let js = mutable_jetstream(&url).await.context().clone();
    let log_args = ["--nats", url.as_str(), "--unsafe-allow-mutable-stream"];
    burst(&log_args, "10", "1");
    let mut verify = vec!["verify"];
    verify.extend_from_slice(&log_args);
    let out = run(&verify);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Re-publish a copy of event 3 behind Waybill's back.
    let s = js.get_stream("WAYBILL").await.expect("stream");
    let copy = s.get_raw_message(3).await.expect("get");
    js.publish(copy.subject.clone(), copy.payload.clone())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let out = run(&verify);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("position 11"), "{}", stdout(&out));

    // Without the unsafe flag Waybill refuses to use such a stream at all.
    let out = run(&["verify", "--nats", url.as_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("deny_delete"));

    // A deletion in the middle breaks the link at the next event.
    let fresh = NatsServer::start();
    let fresh_url = fresh.url();
    let js = mutable_jetstream(&fresh_url).await.context().clone();
    let log_args = [
        "--nats",
        fresh_url.as_str(),
        "--unsafe-allow-mutable-stream",
    ];
    burst(&log_args, "10", "1");
    let s = js.get_stream("WAYBILL").await.expect("stream");
    assert!(s.delete_message(4).await.expect("delete"));
    let mut verify = vec!["verify"];
    verify.extend_from_slice(&log_args);
    let out = run(&verify);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("position 5") && text.contains("prev_hash expected"),
        "{text}"
    );
}

/// The commands that only read the log, with `log_args` selecting it.
fn readers<'a>(log_args: &[&'a str]) -> Vec<Vec<&'a str>> {
    [
        &["verify"][..],
        &["dump"],
        &["projections", "rebuild"],
        &["projections", "catch-up"],
    ]
    .iter()
    .map(|cmd| cmd.iter().chain(log_args).copied().collect())
    .collect()
}

#[test]
fn readers_refuse_a_data_dir_without_a_log_and_create_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("typo");
    let missing_arg = missing.to_str().expect("utf8");
    for args in readers(&["--data-dir", missing_arg]) {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        let err = common::stderr(&out);
        assert!(
            err.contains(&format!("{missing_arg} does not exist")),
            "{args:?}: {err}"
        );
        assert!(!missing.exists(), "{args:?} created {missing_arg}");
    }

    // A directory that is there but holds no log (here, an empty one) is
    // refused the same way, and stays empty.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let empty_arg = empty.to_str().expect("utf8");
    for args in readers(&["--data-dir", empty_arg]) {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        let err = common::stderr(&out);
        assert!(err.contains("holds no Waybill log"), "{args:?}: {err}");
        let left = std::fs::read_dir(&empty).expect("read_dir").count();
        assert_eq!(left, 0, "{args:?} wrote into {empty_arg}");
    }

    // Once a log is there, they read it.
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf8");
    burst(&["--data-dir", data_arg], "3", "1");
    for args in readers(&["--data-dir", data_arg]) {
        let out = run(&args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            common::stderr(&out)
        );
    }
}

/// A data directory a running server holds: `verify`, `dump` and `copy`
/// are refused (one process at a time opens an embedded log) with what to
/// do instead, and the copy's target is not created.
#[test]
fn readers_refuse_a_data_dir_a_server_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf8");
    burst(&["--data-dir", data_arg], "3", "1");
    let served = common::Served::insecure_dev(&data);
    let target = dir.path().join("copy");
    let target_arg = target.to_str().expect("utf8");
    for args in [
        &["verify", "--data-dir", data_arg][..],
        &["dump", "--data-dir", data_arg],
        &["copy", "--data-dir", data_arg, "--to-data-dir", target_arg],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        let err = common::stderr(&out);
        assert!(
            err.contains("is in use by another Waybill process; stop it first")
                && err.contains("`waybill serve --backup-dir`"),
            "{args:?}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
    assert!(!target.exists(), "the refused copy created {target_arg}");
    assert!(served.terminate().success());
}

#[test]
fn verifying_a_project_without_events_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8");
    burst(&["--data-dir", data], "3", "1");
    let out = run(&["verify", "--data-dir", data, "--project", "burst-9"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        common::stderr(&out).contains("project burst-9 has no events in this log"),
        "{}",
        common::stderr(&out)
    );
    let out = run(&["verify", "--data-dir", data, "--project", "burst-0"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_refuse_a_missing_stream_and_create_none() {
    let server = NatsServer::start();
    let url = server.url();
    for args in readers(&["--nats", url.as_str(), "--stream", "TYPO"]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = args.clone();
        // The projections commands keep their read models in a data dir.
        args.extend(["--data-dir", dir.path().to_str().expect("utf8")]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        let err = common::stderr(&out);
        assert!(err.contains("there is no stream TYPO"), "{args:?}: {err}");
    }
    let client = async_nats::connect(url.as_str()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = futures::TryStreamExt::try_collect(js.stream_names())
        .await
        .expect("stream names");
    assert!(names.is_empty(), "a reader created {names:?}");
}

#[test]
fn a_dump_whose_reader_goes_away_stops_quietly() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8");
    // Far more than a pipe holds (64 KiB), so the dump is still writing.
    burst(&["--data-dir", data], "1500", "2");
    let mut child = common::waybill()
        .args(["dump", "--data-dir", data])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .expect("first line");
    assert!(first.contains("\"position\":1"), "{first}");
    // The reader is gone (as with `| head -1`).
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        common::stderr(&out)
    );
    assert!(common::stderr(&out).is_empty(), "{}", common::stderr(&out));
}
