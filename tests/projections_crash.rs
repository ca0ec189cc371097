//! The projection runner killed with SIGKILL again and again while it catches
//! up on 200,000 events: once it finishes, its store (read models and the
//! Merkle tree of the log) equals a clean rebuild, compared key by key. Seeded, so each run kills at the same points.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{read_models, run, waybill};

/// Events in the log (8 writers × 25,000).
const PER_WRITER: &str = "25000";
/// Kills before the runner is let finish.
const KILLS: usize = 8;

#[test]
fn kill_dash_nine_during_catch_up_ends_equal_to_a_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8").to_string();
    let out = run(&[
        "debug",
        "append-burst",
        "--data-dir",
        &data,
        "--count",
        PER_WRITER,
        "--writers",
        "8",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut seed: u64 = 0x5eed_2026;
    let mut kills = 0;
    let mut finished = false;
    while kills < KILLS {
        let mut child = waybill()
            .args(["projections", "catch-up", "--data-dir", &data])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait = Duration::from_millis(150 + (seed >> 33) % 900);
        std::thread::sleep(wait);
        if child.try_wait().expect("wait").is_some() {
            finished = true;
            break;
        }
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        kills += 1;
    }
    assert!(
        kills >= 3,
        "the runner was killed mid-way at least 3 times (killed {kills})"
    );
    if !finished {
        let out = run(&["projections", "catch-up", "--data-dir", &data]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let resumed = read_models(&dir.path().join("projections"));

    let out = run(&["projections", "rebuild", "--data-dir", &data]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt = read_models(&dir.path().join("projections"));

    assert_eq!(resumed.len(), rebuilt.len(), "same number of keys");
    for (k, v) in &rebuilt {
        assert_eq!(
            resumed.get(k),
            Some(v),
            "key {:?} differs",
            String::from_utf8_lossy(k)
        );
    }
    // 200,000 history items, and the checkpoint at the head.
    // (Items live in the project index, `x` `p`.)
    let history = rebuilt.keys().filter(|k| k.starts_with(b"viewsxp")).count();
    assert_eq!(history, 200_000);
    // The Merkle tree holds every record.
    assert_eq!(
        rebuilt.get(b"merklesize".as_slice()),
        Some(&200_000u64.to_be_bytes().to_vec())
    );
}
