//! `waybill projections rebuild` next to a running server: refused while the
//! server holds the read models (rather than swapping them from under it),
//! done once it has stopped.

mod common;

use common::{run, stderr, waybill, Served};
use waybill_ledger::testing::NatsServer;

#[test]
fn rebuild_refuses_read_models_a_server_holds() {
    let nats = NatsServer::start();
    let url = nats.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8");
    let served = Served::start(
        waybill()
            .args(["serve", "--nats", &url, "--insecure-dev", "--no-reactors"])
            .args(["--no-checkpoints", "--data-dir", data]),
    );
    let rebuild = ["projections", "rebuild", "--nats", &url, "--data-dir", data];
    for args in [
        &rebuild[..],
        &[
            "projections",
            "catch-up",
            "--nats",
            &url,
            "--data-dir",
            data,
        ],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("in use by another Waybill process"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().starts_with("projections.")),
        "the refused rebuild left {names:?}"
    );

    assert!(served.terminate().success(), "the server stops cleanly");
    let out = run(&rebuild);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rebuilt the read models"),
        "{}",
        stderr(&out)
    );
}
