//! Exports and the key that signs them: a server whose signing key
//! replaced the one that signed the log's latest checkpoint exports at
//! once (it signs a checkpoint of its own instead of refusing until
//! something new is appended); a server that signs nothing says why it
//! cannot export.

use crate::common::{stderr, stdout, waybill, Served};
use crate::setup::{keygen, Setup};
use crate::verify;

fn serve(data: &str, key: &std::path::Path) -> Served {
    Served::start(
        waybill()
            .args([
                "serve",
                "--insecure-dev",
                "--no-reactors",
                "--data-dir",
                data,
            ])
            .arg("--signing-key")
            .arg(key)
            .args(["--checkpoint-every", "7", "--checkpoint-interval-secs", "1"]),
    )
}

fn export(served: &Served, out: &std::path::Path) -> std::process::Output {
    waybill()
        .args(["export", "--project", "shop", "--out"])
        .arg(out)
        .args(["--server", &served.endpoint()])
        .output()
        .expect("export")
}

#[test]
fn a_rotated_key_signs_its_own_checkpoint_for_an_export() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().to_str().expect("utf8").to_string();
    let first = Setup::start(&["--data-dir".to_string(), data_dir.clone()]);
    first.activity(&["1.0.0"]);
    // The export waits for a checkpoint by the first key covering the
    // project: after it, that checkpoint's record is the log's last.
    let before = first.export("before", "jsonl");
    assert_eq!(verify(&before, &first.pubkey).0, 0);
    let Setup {
        dir,
        served,
        pubkey: old_pubkey,
    } = first;
    assert!(served.terminate().success());

    let new_key = dir.path().join("new.key");
    let new_pubkey = keygen(&new_key, "audit-test-rotated");
    let second = serve(&data_dir, &new_key);
    let after = dir.path().join("after");
    let out = export(&second, &after);
    assert!(
        out.status.success(),
        "export after the rotation: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let (code, said) = verify(&after, &new_pubkey);
    assert_eq!(code, 0, "{said}");
    let (code, said) = verify(&after, &old_pubkey);
    assert_ne!(code, 0, "the old key does not sign the new export: {said}");
    assert!(second.terminate().success());
}

#[test]
fn a_server_that_signs_no_checkpoints_says_why_it_cannot_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .args([
                "serve",
                "--insecure-dev",
                "--no-reactors",
                "--no-checkpoints",
            ])
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    served.apply_example();
    let out = export(&served, &dir.path().join("export"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signs no checkpoints (`--no-checkpoints`"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("export").exists(),
        "a refused export writes nothing"
    );
    assert!(served.terminate().success());
}
