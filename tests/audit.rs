//! Verifiable audit end to end, on both backends: signed checkpoints in the
//! log, inclusion and consistency proofs over gRPC, `waybill export`, and
//! `waybill verify-export` offline — which accepts the export as taken and
//! detects every kind of tampering, saying what and where.

mod common;

use std::path::{Path, PathBuf};

use common::{stderr, stdout, waybill, Served};
use waybill_ledger::audit::{
    leaf_hash, verify_consistency, verify_inclusion, Checkpoint, Hash, SignerKey, VerifierKey,
};
use waybill_ledger::testing::NatsServer;
use waybill_proto::v1 as pb;
use waybill_proto::v1::audit_service_client::AuditServiceClient;

fn keygen(path: &Path, name: &str) -> String {
    let out = waybill()
        .args([
            "keygen",
            "--out",
            path.to_str().expect("utf8"),
            "--name",
            name,
        ])
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

struct Setup {
    dir: tempfile::TempDir,
    served: Served,
    pubkey: String,
}

impl Setup {
    fn start(log_args: &[String]) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("signing.key");
        let pubkey = keygen(&key, "audit-test-log");
        let served = Served::start(
            waybill()
                .arg("serve")
                .args(log_args)
                .arg("--insecure-dev")
                .arg("--signing-key")
                .arg(&key)
                .args(["--checkpoint-every", "7", "--checkpoint-interval-secs", "1"]),
        );
        let s = Setup {
            dir,
            served,
            pubkey,
        };
        s.cli(&[
            "apply",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/pipeline.yaml"),
        ]);
        s
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = waybill()
            .args(args)
            .args(["--server", &self.served.endpoint()])
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// New freight, verified in dev: promotions into dev and staging follow.
    fn activity(&self, tags: &[&str]) {
        for tag in tags {
            let image = format!("ghcr.io/acme/shop:{tag}");
            let out = self.cli(&[
                "discover", "-p", "shop", "-w", "images", "--image", &image, "--output", "json",
            ]);
            let json: serde_json::Value =
                serde_json::from_str(out.lines().last().expect("line")).expect("json");
            let freight = json["freight_id"].as_str().expect("freight").to_string();
            let said = self.cli(&[
                "record-verification",
                "-p",
                "shop",
                "--freight",
                &freight,
                "--stage",
                "dev",
                "--check",
                "integration-tests",
                "--pass",
                "--evidence",
                &format!("https://ci.example/run/{tag}"),
            ]);
            assert!(
                said.starts_with(
                    "verification recorded (integration-tests passed in dev): project shop"
                ),
                "{said}"
            );
        }
    }

    fn export(&self, name: &str, format: &str) -> PathBuf {
        self.export_with(name, &["--format", format])
    }

    /// An export taken with `--output json`; returns its directory and summary.
    fn export_json(&self, name: &str) -> (PathBuf, serde_json::Value) {
        let out_dir = self.dir.path().join(name);
        let out = waybill()
            .args(["export", "--project", "shop", "--output", "json", "--out"])
            .arg(&out_dir)
            .args(["--server", &self.served.endpoint()])
            .output()
            .expect("export");
        assert!(out.status.success(), "export: {}", stderr(&out));
        let summary =
            serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
        (out_dir, summary)
    }

    fn export_with(&self, name: &str, args: &[&str]) -> PathBuf {
        let out_dir = self.dir.path().join(name);
        let out = waybill()
            .args(["export", "--project", "shop"])
            .args(args)
            .arg("--out")
            .arg(&out_dir)
            .args(["--server", &self.served.endpoint()])
            .output()
            .expect("export");
        assert!(
            out.status.success(),
            "export: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("verify it with: waybill verify-export"));
        out_dir
    }
}

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

fn assert_fails(dir: &Path, pubkey: &str, expect: &[&str], case: &str) {
    let (code, report) = verify(dir, pubkey);
    assert_eq!(code, 1, "{case}: verify-export should fail:\n{report}");
    for e in expect {
        assert!(report.contains(e), "{case}: report lacks {e:?}:\n{report}");
    }
    // The same verdict as JSON, with every problem listed.
    let (code, verdict) = verify_json(dir, pubkey);
    assert_eq!(code, 1, "{case}: {verdict}");
    assert_eq!(verdict["ok"], false, "{case}: {verdict}");
    let text = verdict.to_string();
    for e in expect {
        assert!(
            text.contains(e),
            "{case}: JSON verdict lacks {e:?}: {verdict}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

async fn audit_client(endpoint: String) -> AuditServiceClient<tonic::transport::Channel> {
    AuditServiceClient::connect(endpoint)
        .await
        .expect("connect")
}

fn hash(bytes: &[u8]) -> Hash {
    Hash::try_from(bytes).expect("32 bytes")
}

/// The proofs served verify against the signed checkpoints.
async fn check_proofs(endpoint: String, pubkey: &str, old: &Checkpoint, new: &Checkpoint) {
    let key = VerifierKey::parse(pubkey).expect("key");
    let mut audit = audit_client(endpoint).await;
    let latest = audit
        .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
        .await
        .expect("latest")
        .into_inner();
    assert_eq!(latest.public_key, pubkey);
    let opened = Checkpoint::open(&latest.note, &key).expect("latest is signed");
    assert!(opened.size >= new.size);
    let exact = audit
        .get_checkpoint(pb::GetCheckpointRequest { size: old.size })
        .await
        .expect("at a size")
        .into_inner();
    assert_eq!(Checkpoint::open(&exact.note, &key).expect("signed"), *old);
    let missing = audit
        .get_checkpoint(pb::GetCheckpointRequest { size: u64::MAX })
        .await
        .expect_err("no such checkpoint");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    for position in [1, old.size / 2 + 1, old.size, new.size] {
        let p = audit
            .get_inclusion_proof(pb::InclusionProofRequest {
                position,
                size: new.size,
            })
            .await
            .expect("inclusion")
            .into_inner();
        let proof: Vec<Hash> = p.proof.iter().map(|h| hash(h)).collect();
        verify_inclusion(
            p.leaf_index,
            new.size,
            &hash(&p.leaf_hash),
            &proof,
            &new.root,
        )
        .expect("inclusion proof verifies against the signed root");
        // A proof for another leaf does not.
        let other = leaf_hash(b"not a record");
        assert!(verify_inclusion(p.leaf_index, new.size, &other, &proof, &new.root).is_err());
    }
    let c = audit
        .get_consistency_proof(pb::ConsistencyProofRequest {
            old_size: old.size,
            new_size: new.size,
        })
        .await
        .expect("consistency")
        .into_inner();
    let proof: Vec<Hash> = c.proof.iter().map(|h| hash(h)).collect();
    verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
        .expect("the old signed tree is a prefix of the new one");
    let beyond = audit
        .get_inclusion_proof(pb::InclusionProofRequest {
            position: 1,
            size: u64::MAX / 2,
        })
        .await
        .expect_err("beyond the tree");
    assert_eq!(beyond.code(), tonic::Code::OutOfRange);
    let bad = audit
        .get_inclusion_proof(pb::InclusionProofRequest {
            position: 0,
            size: 0,
        })
        .await
        .expect_err("position 0");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    // A record in the log but after the latest signed checkpoint (at least
    // that checkpoint's own record) is refused as such, not as unknown.
    let mut said = None;
    for _ in 0..100 {
        let latest = audit
            .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
            .await
            .expect("latest")
            .into_inner();
        if latest.tree_size > latest.size {
            let asked = audit
                .get_inclusion_proof(pb::InclusionProofRequest {
                    position: latest.size + 1,
                    size: 0,
                })
                .await;
            // Err unless a checkpoint was signed in between.
            if let Err(e) = asked {
                assert_eq!(e.code(), tonic::Code::InvalidArgument);
                said = Some(e.message().to_string());
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let said = said.expect("a record after the latest checkpoint");
    assert!(
        said.contains("in the log but after the latest signed checkpoint"),
        "{said}"
    );
    let chain = audit
        .verify_chain(pb::VerifyChainRequest {
            project: "shop".into(),
        })
        .await
        .expect("verify chain")
        .into_inner();
    assert!(chain.ok, "{chain:?}");
    assert!(chain.events > 0);
}

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

/// An export of a time range holds exactly the records stamped within it
/// (`from` inclusive, `to` exclusive) and the promotions requested by them,
/// and verifies. `all_events`, `all_promotions`: the lines of a whole export.
fn ranged(s: &Setup, all_events: &[String], all_promotions: &[String]) {
    let parse = |l: &String| serde_json::from_str::<serde_json::Value>(l).expect("json line");
    let events: Vec<serde_json::Value> = all_events.iter().map(parse).collect();
    let from = events[3]["time"].as_str().expect("time").to_string();
    let to = events[events.len() - 3]["time"]
        .as_str()
        .expect("time")
        .to_string();
    let dir = s.export_with("ranged", &["--from", &from, "--to", &to]);
    let (code, report) = verify(&dir, &s.pubkey);
    assert_eq!(code, 0, "{report}");
    let got: Vec<serde_json::Value> = lines(&dir.join("events.jsonl")).iter().map(parse).collect();
    let stamp = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v["time"].as_str().expect("time")).expect("rfc 3339")
    };
    let (from_t, to_t) = (
        chrono::DateTime::parse_from_rfc3339(&from).expect("from"),
        chrono::DateTime::parse_from_rfc3339(&to).expect("to"),
    );
    let expected: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| stamp(e) >= from_t && stamp(e) < to_t)
        .collect();
    assert!(
        !expected.is_empty() && expected.len() < events.len(),
        "the range should hold some records, not all"
    );
    assert_eq!(got.iter().collect::<Vec<_>>(), expected);
    let positions = |v: &[&serde_json::Value]| {
        v.iter()
            .map(|e| e["position"].as_u64().expect("position"))
            .collect::<Vec<_>>()
    };
    let span = positions(&expected);
    let (lo, hi) = (span[0], span[span.len() - 1]);
    let want: Vec<serde_json::Value> = all_promotions
        .iter()
        .map(parse)
        .filter(|p| (lo..=hi).contains(&p["requested_position"].as_u64().expect("position")))
        .collect();
    let have: Vec<serde_json::Value> = lines(&dir.join("promotions.jsonl"))
        .iter()
        .map(parse)
        .collect();
    assert!(!want.is_empty() && want.len() < all_promotions.len());
    assert_eq!(
        have.iter().map(|p| &p["promotion_id"]).collect::<Vec<_>>(),
        want.iter().map(|p| &p["promotion_id"]).collect::<Vec<_>>()
    );

    // A range after the last record: an empty export that says so, and verifies.
    let out_dir = s.dir.path().join("empty-range");
    let out = waybill()
        .args([
            "export",
            "--project",
            "shop",
            "--from",
            "2999-01-01",
            "--out",
        ])
        .arg(&out_dir)
        .args(["--server", &s.served.endpoint()])
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("exported no events (none in the range asked) and 0 promotions"),
        "{}",
        stdout(&out)
    );
    let (code, report) = verify(&out_dir, &s.pubkey);
    assert_eq!(code, 0, "{report}");
    assert!(lines(&out_dir.join("events.jsonl")).is_empty());
}

/// Every kind of tampering is detected, with a message saying what and where.
fn tamper(base: &Path, export: &Path, older: &Path, pubkey: &str) {
    let case = |name: &str| {
        let dir = base.join(format!("tampered-{name}"));
        copy_dir(export, &dir);
        dir
    };
    // Any byte of any file: first, middle and last.
    let files = [
        "events.jsonl",
        "proof.txt",
        "promotions.jsonl",
        "checkpoint.txt",
        "manifest.json",
        "manifest.sig",
    ];
    for file in files {
        let len = std::fs::metadata(export.join(file)).expect("meta").len() as usize;
        for at in [0, len / 2, len - 2] {
            let dir = case(&format!("{file}-{at}"));
            let mut bytes = std::fs::read(dir.join(file)).expect("read");
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            std::fs::write(dir.join(file), bytes).expect("write");
            assert_fails(&dir, pubkey, &[file], &format!("byte {at} of {file}"));
        }
    }

    // A record dropped (and the manifest's digest of events.jsonl fixed up:
    // the manifest's signature then fails too, and the gap is named).
    let dir = case("dropped");
    let mut events = lines(&dir.join("events.jsonl"));
    let dropped = events.remove(3);
    write_lines(&dir.join("events.jsonl"), &events);
    assert!(dropped.contains("\"project_seq\":4"), "{dropped}");
    assert_fails(
        &dir,
        pubkey,
        &[
            "events.jsonl line 4",
            "expected the project's record 4",
            "missing",
        ],
        "dropped record",
    );

    // Two records swapped.
    let dir = case("reordered");
    let mut events = lines(&dir.join("events.jsonl"));
    events.swap(2, 5);
    write_lines(&dir.join("events.jsonl"), &events);
    assert_fails(
        &dir,
        pubkey,
        &["events.jsonl line", "out of order", "chain broken"],
        "reordered records",
    );

    // A promotion record dropped.
    let dir = case("promotion-dropped");
    let mut promotions = lines(&dir.join("promotions.jsonl"));
    promotions.remove(0);
    write_lines(&dir.join("promotions.jsonl"), &promotions);
    assert_fails(
        &dir,
        pubkey,
        &["promotions.jsonl: no record for promotion"],
        "dropped promotion",
    );

    // The checkpoint signed by another key (same tree).
    let other = SignerKey::generate("impostor").expect("key");
    let key = VerifierKey::parse(pubkey).expect("key");
    let dir = case("other-key");
    let genuine = Checkpoint::open(
        &std::fs::read_to_string(dir.join("checkpoint.txt")).expect("read"),
        &key,
    )
    .expect("genuine");
    let forged = other.sign(&genuine.body()).expect("sign");
    std::fs::write(dir.join("checkpoint.txt"), forged).expect("write");
    assert_fails(
        &dir,
        pubkey,
        &["checkpoint.txt", "no signature by", "audit-test-log"],
        "checkpoint signed by another key",
    );
    // And the whole export checked against a key the auditor does not trust.
    assert_fails(
        export,
        &other.verifier().encode(),
        &["not the key you trust"],
        "untrusted key",
    );

    // An older (genuinely signed) checkpoint passed off as the export's.
    let dir = case("older-checkpoint");
    std::fs::copy(older.join("checkpoint.txt"), dir.join("checkpoint.txt")).expect("copy");
    assert_fails(
        &dir,
        pubkey,
        &[
            "an older checkpoint passed off",
            "the checkpoint is older than the records",
        ],
        "older checkpoint",
    );
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

#[test]
fn verify_export_needs_an_export_and_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SignerKey::generate("k").expect("key").verifier().encode();
    let (code, report) = verify(dir.path(), &key);
    assert_eq!(code, 2, "{report}");
    assert!(report.contains("manifest.json"), "{report}");
    let (code, report) = verify(dir.path(), "not-a-key");
    assert_eq!(code, 2, "{report}");
    assert!(report.contains("neither a public key"), "{report}");
}
