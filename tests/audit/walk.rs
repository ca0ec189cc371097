//! The audit walk end to end, once per backend: activity, whole exports
//! (JSON lines with a JSON summary, CSV) and a ranged one that verify, the
//! served proofs, the CLI's `checkpoint` and `prove` (text and JSON), then
//! the tampering checks on the export.

use std::path::Path;

use waybill_ledger::audit::{Checkpoint, SignerKey, VerifierKey};
use waybill_ledger::testing::NatsServer;

use crate::common::{stderr, stdout, waybill};
use crate::proofs::check_proofs;
use crate::ranged::ranged;
use crate::setup::Setup;
use crate::verify_export::tamper;
use crate::{lines, verify, verify_json};

fn walk(log_args: Vec<String>) {
    let s = Setup::start(&log_args);
    s.activity(&["1.0", "1.1"]);
    let first = s.export("first", "jsonl");
    let (code, report) = verify(&first, &s.pubkey);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("OK: the export is complete and unaltered"),
        "{report}"
    );
    // The same export, summarized as JSON: what a script needs to check it.
    let (again, summary) = s.export_json("first-json");
    assert_eq!(summary["project"], "shop", "{summary}");
    assert_eq!(summary["public_key"], s.pubkey.as_str(), "{summary}");
    assert_eq!(
        summary["events"].as_u64(),
        Some(lines(&again.join("events.jsonl")).len() as u64),
        "{summary}"
    );
    let (code, verdict) = verify_json(&first, &s.pubkey);
    assert_eq!(code, 0, "{verdict}");
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["problems"], serde_json::json!([]), "{verdict}");
    assert!(verdict["facts"]["records"].is_string(), "{verdict}");

    s.activity(&["1.2", "1.3", "1.4"]);
    let export = s.export("second", "jsonl");
    let (code, report) = verify(&export, &s.pubkey);
    assert_eq!(code, 0, "{report}");
    let events = lines(&export.join("events.jsonl"));
    let promotions = lines(&export.join("promotions.jsonl"));
    assert!(events.len() >= 12, "{} events", events.len());
    assert!(promotions.len() >= 5, "{} promotions", promotions.len());
    let record: serde_json::Value = serde_json::from_str(&promotions[0]).expect("record");
    for field in [
        "requested_by",
        "approvals",
        "separation_of_duties",
        "ticket",
        "verifications",
        "policy_version",
        "bypass",
        "status",
    ] {
        assert!(record.get(field).is_some(), "{field} missing from {record}");
    }
    assert_eq!(
        record["freight"]["artifacts"][0]["name"], "ghcr.io/acme/shop",
        "{record}"
    );
    // The pipeline applied, with who applied it and what it brought, which
    // the promotions' policy version names.
    let policies = lines(&export.join("policies.jsonl"));
    assert_eq!(policies.len(), 1, "{policies:?}");
    let policy: serde_json::Value = serde_json::from_str(&policies[0]).expect("policy");
    assert_eq!(
        policy["policy_version"], record["policy_version"],
        "{policy}"
    );
    assert_eq!(policy["applied_by"], "anonymous", "{policy}");
    assert_eq!(
        policy["changes"],
        serde_json::json!(["new project shop: warehouses images; stages dev, staging, prod"]),
        "{policy}"
    );
    assert_eq!(
        policy["definition"]["stages"][2]["name"], "prod",
        "{policy}"
    );
    assert_eq!(policy["source_digest"].as_str().map(str::len), Some(64));
    assert!(
        report.contains("policies    1 record, matching its PipelineConfigured record"),
        "{report}"
    );
    ranged(&s, &events, &promotions);
    let csv = s.export("csv", "csv");
    let (code, report) = verify(&csv, &s.pubkey);
    assert_eq!(code, 0, "{report}");
    assert!(lines(&csv.join("promotions.csv"))[0].starts_with("project,promotion_id,stage"));
    // Parts left empty (no digest) leave no trailing space in a field.
    let mut rows = csv::Reader::from_path(csv.join("promotions.csv")).expect("csv");
    let headers = rows.headers().expect("headers").clone();
    let artifacts = headers
        .iter()
        .position(|h| h == "artifacts")
        .expect("column");
    let mut seen = 0;
    for row in rows.records() {
        let row = row.expect("row");
        assert!(
            row[artifacts].starts_with("image ghcr.io/acme/shop:"),
            "{row:?}"
        );
        for field in row.iter() {
            assert_eq!(field, field.trim_end(), "{row:?}");
        }
        seen += 1;
    }
    assert!(seen > 0);

    // The checkpoints are in the log and the proofs served check out.
    let key = VerifierKey::parse(&s.pubkey).expect("key");
    let open = |dir: &Path| {
        Checkpoint::open(
            &std::fs::read_to_string(dir.join("checkpoint.txt")).expect("read"),
            &key,
        )
        .expect("signed checkpoint")
    };
    let (old, new) = (open(&first), open(&export));
    assert!(old.size < new.size);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(check_proofs(s.served.endpoint(), &s.pubkey, &old, &new));

    // The CLI checks the server's checkpoint and proofs against the key.
    let cli = |args: &[&str]| {
        waybill()
            .args(args)
            .args(["--server", &s.served.endpoint()])
            .output()
            .expect("run")
    };
    let out = cli(&["checkpoint", "--pubkey", &s.pubkey]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("signature verified"),
        "{}",
        stderr(&out)
    );
    let since = old.size.to_string();
    let prove = [
        "prove",
        "--position",
        "1",
        "--since",
        &since,
        "--pubkey",
        &s.pubkey,
    ];
    let out = cli(&prove);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("included: the record at position 1"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(&format!("consistent: the tree of size {since}")));
    let impostor = SignerKey::generate("impostor")
        .expect("key")
        .verifier()
        .encode();
    let out = cli(&["prove", "--position", "1", "--pubkey", &impostor]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("NOT VERIFIED"), "{}", stdout(&out));

    // The same proofs as one JSON object each.
    let json = |args: &[&str]| -> (Option<i32>, serde_json::Value) {
        let out = cli(&[args, &["--output", "json"][..]].concat());
        let v = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        (out.status.code(), v)
    };
    let (code, v) = json(&prove);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["inclusion"]["included"], true, "{v}");
    assert_eq!(v["consistency"]["consistent"], true, "{v}");
    let (code, v) = json(&["prove", "--position", "1", "--pubkey", &impostor]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["signature"].is_string(), "{v}");

    tamper(s.dir.path(), &export, &first, &s.pubkey);
}

#[test]
fn audit_on_the_embedded_backend() {
    let dir = tempfile::tempdir().expect("tempdir");
    walk(vec![
        "--data-dir".into(),
        dir.path().to_str().expect("utf8").into(),
    ]);
}

#[test]
fn audit_on_jetstream() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    walk(vec![
        "--nats".into(),
        nats.url(),
        "--data-dir".into(),
        dir.path().to_str().expect("utf8").into(),
    ]);
}
