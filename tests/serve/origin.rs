//! Read models opened beside another log than the one they were built from
//! (a stream deleted and created again, a restore from an older backup,
//! another ledger) are refused at start, by `serve` and by `projections
//! catch-up`, instead of showing a history the log does not have; `waybill
//! projections rebuild` builds them from the log at hand. A store that does
//! not read is built again from the log by itself.

use std::path::Path;

use crate::common::{run, stderr, waybill, Served};
use crate::discover;

/// A ledger in `data`: the example pipeline and a discovery of each tag.
async fn ledger(data: &Path, tags: &[&str]) {
    let served = Served::start(
        waybill()
            .args(["serve", "--insecure-dev", "--no-reactors", "--data-dir"])
            .arg(data),
    );
    served.apply_example();
    for tag in tags {
        discover(&served, tag, "").await;
    }
    crate::common::caught_up(served.endpoint(), None).await;
    assert!(served.terminate().success());
}

/// `waybill ARGS --data-dir DATA`, which must fail (within a minute, or it
/// is killed); its stderr.
fn refused(args: &[&str], data: &Path) -> String {
    let mut child = waybill()
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("waybill {args:?} was not refused");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    stderr(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_of_another_log_are_refused_until_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (short, long) = (dir.path().join("short"), dir.path().join("long"));
    ledger(&short, &["1.0"]).await;
    ledger(&long, &["2.0", "2.1", "2.2", "2.3"]).await;
    // Each ledger's read models beside the other's log.
    let aside = dir.path().join("aside");
    std::fs::rename(short.join("projections"), &aside).expect("move");
    std::fs::rename(long.join("projections"), short.join("projections")).expect("move");
    std::fs::rename(&aside, long.join("projections")).expect("move");
    let serve = ["serve", "--insecure-dev", "--listen", "127.0.0.1:0"];

    // Further along than the log ends.
    let said = refused(&serve, &short);
    assert!(said.contains("which ends at position"), "{said}");
    assert!(said.contains("waybill projections rebuild"), "{said}");
    // At positions the log has, holding other records.
    let said = refused(&serve, &long);
    assert!(said.contains("is not the one the read models"), "{said}");
    let said = refused(&["projections", "catch-up"], &long);
    assert!(said.contains("is not the one the read models"), "{said}");

    // Rebuilt from the log at hand, they show its four discoveries.
    let out = run(&[
        "projections",
        "rebuild",
        "--data-dir",
        long.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let served = Served::start(
        waybill()
            .args(["serve", "--insecure-dev", "--no-reactors", "--data-dir"])
            .arg(&long),
    );
    assert_eq!(tags_listed(&served), ["2.3", "2.2", "2.1", "2.0"]);
    assert!(served.terminate().success());

    // A store that does not read (a damaged disk) is built again from the
    // log at the next start, with a warning, rather than refused.
    let db = long.join("projections").join("db");
    let mut bytes = std::fs::read(&db).expect("read");
    let damaged = bytes.len().min(4096);
    bytes[..damaged].fill(0xff);
    std::fs::write(&db, bytes).expect("damage");
    let served = Served::start(
        waybill()
            .args(["serve", "--insecure-dev", "--no-reactors", "--data-dir"])
            .arg(&long),
    );
    crate::common::caught_up(served.endpoint(), None).await;
    assert_eq!(tags_listed(&served), ["2.3", "2.2", "2.1", "2.0"]);
    let (status, log) = served.terminate_and_log();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("the projection store is damaged; building it again from the log"),
        "{log}"
    );
}

/// The image tags of the freight `waybill freight -p shop` lists, newest first.
fn tags_listed(served: &Served) -> Vec<String> {
    let out = run(&[
        "freight",
        "-p",
        "shop",
        "--output",
        "json",
        "--server",
        &served.endpoint(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    listed["freight"]
        .as_array()
        .expect("freight")
        .iter()
        .map(|f| {
            f["artifacts"][0]["version"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// An embedded log whose first 4 KiB are damaged, which sled reads as an
/// empty log, is not served (new appends would take positions the ledger
/// had given out already), nor verified as whole: it is shorter than it
/// had reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_embedded_log_is_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    ledger(&data, &["1.0", "1.1", "1.2"]).await;
    let db = data.join("db");
    let mut bytes = std::fs::read(&db).expect("read");
    let damaged = bytes.len().min(4096);
    bytes[..damaged].fill(0xff);
    std::fs::write(&db, bytes).expect("damage");
    for args in [
        &["serve", "--insecure-dev", "--listen", "127.0.0.1:0"][..],
        &["verify"][..],
    ] {
        let said = refused(args, &data);
        assert!(
            said.contains("ends at position 0, but it had reached"),
            "{said}"
        );
    }
}
