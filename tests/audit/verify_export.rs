//! `waybill verify-export` refuses what it should: every kind of tampering
//! (any byte of any file, a record dropped or reordered, a promotion
//! dropped, a policy edited, a checkpoint forged or older, an untrusted key)
//! is detected and named, in text and as JSON; no export or no key is a
//! usage error. An export of the format before the policies file still
//! verifies.

use std::path::Path;

use waybill_ledger::audit::{Checkpoint, SignerKey, VerifierKey};

use crate::{lines, verify, verify_json};

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

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

/// SHA-256 (hex) and length of a file.
fn file_digest(path: &Path) -> (String, u64) {
    use sha2::Digest;
    let bytes = std::fs::read(path).expect("read");
    (
        hex::encode(sha2::Sha256::digest(&bytes)),
        bytes.len() as u64,
    )
}

/// Rewrites the manifest of `dir` with `change` and signs it again with
/// `signer`, as a server holding the key could.
fn resign(dir: &Path, signer: &SignerKey, change: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("manifest");
    change(&mut manifest);
    let mut bytes = serde_json::to_vec_pretty(&manifest).expect("json");
    bytes.push(b'\n');
    std::fs::write(&path, &bytes).expect("write");
    let note = waybill_projections::audit::export::manifest_note(&file_digest(&path).0);
    std::fs::write(dir.join("manifest.sig"), signer.sign(&note).expect("sign")).expect("write");
}

/// Every kind of tampering is detected, with a message saying what and where.
pub(crate) fn tamper(base: &Path, export: &Path, older: &Path, pubkey: &str) {
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
        "policies.jsonl",
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

    // A policy record edited (what it changed), its digest and the
    // manifest's signature fixed up with the server's own key: only the
    // record itself can tell.
    let signer =
        SignerKey::parse(&std::fs::read_to_string(base.join("signing.key")).expect("signing key"))
            .expect("key");
    let dir = case("policy-edited");
    let mut policies = lines(&dir.join("policies.jsonl"));
    let mut record: serde_json::Value = serde_json::from_str(&policies[0]).expect("record");
    record["changes"] = serde_json::json!(["stage prod: policy.required_approvals: 1 → 2"]);
    policies[0] = record.to_string();
    write_lines(&dir.join("policies.jsonl"), &policies);
    resign(&dir, &signer, |manifest| {
        let digest = file_digest(&dir.join("policies.jsonl"));
        let files = manifest["files"].as_array_mut().expect("files");
        let entry = files
            .iter_mut()
            .find(|f| f["name"] == "policies.jsonl")
            .expect("listed");
        entry["sha256"] = digest.0.into();
        entry["bytes"] = digest.1.into();
    });
    assert_fails(
        &dir,
        pubkey,
        &["policies.jsonl line 1: its changes field does not match the pipeline applied at position 1"],
        "policy edited",
    );

    // An export of format 1 (before the policies file) verifies.
    let dir = case("format-1");
    std::fs::remove_file(dir.join("policies.jsonl")).expect("remove");
    resign(&dir, &signer, |manifest| {
        manifest["format"] = "waybill-export/1".into();
        let m = manifest.as_object_mut().expect("object");
        m.remove("policies");
        let files = m["files"].as_array_mut().expect("files");
        files.retain(|f| f["name"] != "policies.jsonl");
    });
    let (code, report) = verify(&dir, pubkey);
    assert_eq!(code, 0, "format 1:\n{report}");
    // A format-2 manifest without its policies file is not.
    let dir = case("format-2-without-policies");
    std::fs::remove_file(dir.join("policies.jsonl")).expect("remove");
    resign(&dir, &signer, |manifest| {
        let m = manifest.as_object_mut().expect("object");
        m.remove("policies");
        let files = m["files"].as_array_mut().expect("files");
        files.retain(|f| f["name"] != "policies.jsonl");
    });
    assert_fails(
        &dir,
        pubkey,
        &["states no policies file"],
        "format 2 without policies",
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
