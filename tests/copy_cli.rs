//! `waybill copy`: an embedded ledger onto JetStream and back, record for
//! record (the dumps are identical and the chains verify), resuming from the
//! target's head; a copy onto another ledger, or with bad arguments, is
//! refused and writes nothing.

mod common;

use common::{append_burst, run, stderr, stdout};
use waybill_ledger::testing::NatsServer;

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn burst(data_dir: &str, count: &str, writers: &str, tag: &str) {
    append_burst(&["--data-dir", data_dir], count, writers, tag);
}

#[test]
fn an_embedded_ledger_moves_to_jetstream_and_back_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let back = dir.path().join("back");
    let (src, back) = (src.to_str().expect("utf8"), back.to_str().expect("utf8"));
    burst(src, "150", "3", "first");
    let nats = NatsServer::start();
    let url = nats.url();

    let out = ok(&["copy", "--data-dir", src, "--to-nats", &url]);
    assert!(
        out.contains("copied 450 events (positions 1 to 450)"),
        "{out}"
    );
    // Byte for byte, hash for hash, position for position.
    let source_dump = ok(&["dump", "--data-dir", src]);
    assert_eq!(source_dump.lines().count(), 450);
    assert_eq!(ok(&["dump", "--nats", &url]), source_dump);
    let verified = ok(&["verify", "--nats", &url]);
    assert!(
        verified.contains("ok: 450 events in 3 project(s)"),
        "{verified}"
    );

    // Again: nothing to copy. After new events: only those.
    let out = ok(&["copy", "--data-dir", src, "--to-nats", &url]);
    assert!(out.contains("nothing to copy"), "{out}");
    burst(src, "5", "1", "more");
    let out = ok(&[
        "copy",
        "--data-dir",
        src,
        "--to-nats",
        &url,
        "--output",
        "json",
    ]);
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(summary["copied"], 5, "{summary}");
    assert_eq!(summary["from_position"], 451, "{summary}");
    assert_eq!(summary["target_head"], 455, "{summary}");

    // Into a second stream on the same account: another name and subjects.
    ok(&[
        "copy",
        "--nats",
        &url,
        "--to-nats",
        &url,
        "--to-stream",
        "LEDGER_TWO",
        "--to-subject-prefix",
        "acme.two",
    ]);
    let second = [
        "--nats",
        &url,
        "--stream",
        "LEDGER_TWO",
        "--subject-prefix",
        "acme.two",
    ];
    assert_eq!(
        ok(&[&["dump"][..], &second[..]].concat()),
        ok(&["dump", "--nats", &url])
    );
    let verified = ok(&[&["verify"][..], &second[..]].concat());
    assert!(
        verified.contains("ok: 455 events in 3 project(s)"),
        "{verified}"
    );

    // And back into a new data directory, as a backup.
    ok(&["copy", "--nats", &url, "--to-data-dir", back]);
    let source_dump = ok(&["dump", "--data-dir", src]);
    assert_eq!(ok(&["dump", "--data-dir", back]), source_dump);
    assert_eq!(ok(&["dump", "--nats", &url]), source_dump);
}

#[test]
fn a_copy_onto_another_ledger_or_with_bad_arguments_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf8").to_string();
    let (a, b) = (path("a"), path("b"));
    burst(&a, "10", "2", "a");
    burst(&b, "15", "2", "b");
    let nats = NatsServer::start();
    let url = nats.url();
    ok(&["copy", "--data-dir", &a, "--to-nats", &url]);
    let copied = ok(&["dump", "--nats", &url]);

    let refused = |args: &[&str], says: &str| {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    };
    // Another ledger's events after this one's: refused, nothing written.
    refused(
        &["copy", "--data-dir", &b, "--to-nats", &url],
        "another ledger",
    );
    // Fewer events than the target holds.
    let small = path("small");
    burst(&small, "3", "1", "small");
    refused(
        &["copy", "--data-dir", &small, "--to-nats", &url],
        "another ledger",
    );
    assert_eq!(ok(&["dump", "--nats", &url]), copied);

    // A subject prefix NATS cannot take.
    refused(
        &[
            "copy",
            "--data-dir",
            &a,
            "--to-nats",
            &url,
            "--to-subject-prefix",
            "bad prefix",
        ],
        "invalid subject prefix",
    );
    // No target, two targets, a source that is not there.
    refused(&["copy", "--data-dir", &a], "--to-data-dir");
    refused(
        &["copy", "--data-dir", &a, "--to-data-dir", &a],
        "is the log to copy",
    );
    refused(
        &[
            "copy",
            "--data-dir",
            &a,
            "--to-data-dir",
            &path("x"),
            "--to-nats",
            &url,
        ],
        "cannot be used with",
    );
    refused(
        &[
            "copy",
            "--data-dir",
            &path("missing"),
            "--to-data-dir",
            &path("y"),
        ],
        "missing",
    );
    assert!(!dir.path().join("x").exists() && !dir.path().join("y").exists());
}
