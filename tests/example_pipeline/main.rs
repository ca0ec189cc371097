//! The shipped example pipeline walked end to end with the CLI over real gRPC,
//! on both backends: auto-promotion into dev, gated staging, manual prod with
//! two approvers (a self-approval refused), a rollback, then — with the clock
//! on a Saturday — a freeze refusal and an emergency bypass.
//!
//! The parts: `cli` (the CLI as each person runs it), `weekday` (the
//! Wednesday: apply, approvals, ticket rules, a dry run, a rollback) and
//! `weekend` (the Saturday after, on the same ledger: the freeze, the
//! bypass, the read side). The setup, the walk that strings the two days
//! together and ends with `waybill verify`, and the two backends are here.

mod cli;
#[path = "../common/mod.rs"]
mod common;
mod weekday;
mod weekend;

use std::path::Path;

use common::{waybill, Served};
use sha2::{Digest, Sha256};
use waybill_ledger::testing::NatsServer;

const WEDNESDAY: &str = "2026-12-02T09:00:00Z";
const SATURDAY: &str = "2026-12-05T10:00:00Z";

/// Writes the auth config: one token per person, roles bound by name.
fn auth_config(dir: &Path) -> std::path::PathBuf {
    let mut tokens = String::new();
    for name in ["alice", "bob", "carol", "ci", "sre"] {
        let hash = hex::encode(Sha256::digest(format!("token-of-{name}").as_bytes()));
        tokens.push_str(&format!(
            "[[token]]\nname = \"{name}\"\nsha256 = \"{hash}\"\n\n"
        ));
    }
    std::fs::write(dir.join("tokens.toml"), tokens).expect("tokens");
    let auth = r#"tokens_file = "tokens.toml"

[[binding]]
subjects = ["user:alice"]
roles = ["admin", "promoter", "approver"]

[[binding]]
subjects = ["user:bob", "user:carol"]
roles = ["approver"]

[[binding]]
subjects = ["user:ci"]
roles = ["promoter"]

[[binding]]
subjects = ["user:sre"]
roles = ["bypass", "promoter"]
"#;
    let path = dir.join("auth.toml");
    std::fs::write(&path, auth).expect("auth");
    path
}

/// The example pipeline with a 2-second soak instead of 30 minutes.
fn pipeline(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/pipeline.yaml"
    ))
    .expect("example");
    assert!(text.contains("required_soak: 30m"));
    let path = dir.join("pipeline.yaml");
    std::fs::write(
        &path,
        text.replace("required_soak: 30m", "required_soak: 2s"),
    )
    .expect("write");
    path
}

fn serve(log_args: &[String], auth: &Path, clock: &str) -> Served {
    Served::start(
        waybill()
            .arg("serve")
            .args(log_args)
            .arg("--auth-config")
            .arg(auth)
            .args(["--clock-start", clock]),
    )
}

fn walk(log_args: Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = auth_config(dir.path());
    let file = pipeline(dir.path());
    let file = file.to_str().expect("utf8");

    // ── A Wednesday ─────────────────────────────────────────────────────────
    weekday::on_a_wednesday(&log_args, &auth, &dir, file);

    // ── The Saturday after, on the same ledger ──────────────────────────────
    weekend::the_saturday_after(&log_args, &auth);

    // The ledger verifies.
    let out = waybill()
        .arg("verify")
        .args(&log_args)
        .output()
        .expect("verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn example_pipeline_end_to_end_on_embedded_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    walk(vec![
        "--data-dir".into(),
        dir.path().join("data").display().to_string(),
    ]);
}

#[test]
fn example_pipeline_end_to_end_on_jetstream() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    walk(vec![
        "--nats".into(),
        server.url(),
        "--data-dir".into(),
        dir.path().display().to_string(),
    ]);
}
