//! `waybill verify`: a clean log verifies; a log altered behind Waybill's
//! back is reported at the first broken link, with a non-zero exit.

mod common;

use common::{run, stdout};
use waybill_ledger::testing::{mutable_jetstream, NatsServer};
use waybill_ledger::SledLog;

fn burst(log_args: &[&str], count: &str, writers: &str) {
    let mut args = vec![
        "debug",
        "append-burst",
        "--count",
        count,
        "--writers",
        writers,
    ];
    args.extend_from_slice(log_args);
    let out = run(&args);
    assert!(out.status.success(), "{}", common::stderr(&out));
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
