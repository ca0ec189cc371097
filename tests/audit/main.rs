//! Verifiable audit end to end, on both backends: signed checkpoints in the
//! log, inclusion and consistency proofs over gRPC, `waybill export`, and
//! `waybill verify-export` offline — which accepts the export as taken and
//! detects every kind of tampering, saying what and where.
//!
//! The parts: `setup` (a served log with a signing key and the example
//! pipeline), `walk` (the whole walk, once per backend), `ranged` (exports
//! of a time range), `proofs` (what the audit service serves) and
//! `verify_export` (tampering detected, bad input refused). What several
//! of them use, running `waybill verify-export` and reading an export's
//! lines, is here.

#[path = "../common/mod.rs"]
mod common;
mod proofs;
mod ranged;
mod rotation;
mod setup;
mod verify_export;
mod walk;

use std::path::Path;

use common::{stderr, stdout, waybill};

/// Runs `waybill verify-export`; returns (exit code, stdout).
fn verify(dir: &Path, pubkey: &str) -> (i32, String) {
    let out = waybill()
        .arg("verify-export")
        .arg(dir)
        .args(["--pubkey", pubkey])
        .output()
        .expect("verify-export");
    (
        out.status.code().unwrap_or(-1),
        stdout(&out) + &stderr(&out),
    )
}

/// Runs `waybill verify-export --output json`; returns (exit code, verdict).
fn verify_json(dir: &Path, pubkey: &str) -> (i32, serde_json::Value) {
    let out = waybill()
        .arg("verify-export")
        .arg(dir)
        .args(["--pubkey", pubkey, "--output", "json"])
        .output()
        .expect("verify-export");
    let verdict = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code().unwrap_or(-1), verdict)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect()
}
