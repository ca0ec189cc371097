//! The auditor's own tool agrees with Waybill: `scripts/verify-chain.py`
//! (Python, stdlib only, written from docs/ledger-format.md) verifies a
//! `waybill dump`, finds the same chain heads as `waybill verify`, and reports
//! tampered copies of the dump at the right record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const WAYBILL: &str = env!("CARGO_BIN_EXE_waybill");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify-chain.py");

/// `waybill` on the embedded backend only, whatever the environment says.
fn waybill(args: &[&str]) -> Output {
    let output = Command::new(WAYBILL)
        .args(args)
        .env_remove("WAYBILL_NATS_URL")
        .env_remove("WAYBILL_CONFIG")
        .env("WAYBILL_LOG", "warn")
        .output()
        .expect("run the waybill binary");
    assert!(
        output.status.code() != Some(2) && output.status.code().is_some(),
        "waybill {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs the script on `dump`; returns its exit code and stdout.
fn verify_chain(dump: &Path) -> (i32, String) {
    let output = match Command::new("python3").arg(SCRIPT).arg(dump).output() {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run python3 ({e}): this test runs scripts/verify-chain.py with it; \
             install Python 3 (CI has it)"
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let code = output.status.code().unwrap_or(-1);
    assert_ne!(
        code,
        2,
        "verify-chain.py could not run: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (code, stdout)
}

/// `project -> head hash` from lines like `  p: 3 events, head at position 9 hash ab12...`.
fn heads(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" hash "))
        .filter_map(|l| {
            let (project, rest) = l.trim_start().split_once(": ")?;
            let hash = rest.rsplit(' ').next()?;
            Some((project.to_string(), hash.to_string()))
        })
        .collect()
}

struct Line {
    text: String,
    position: u64,
    project: String,
}

fn parse(text: &str) -> Line {
    let value: Value = serde_json::from_str(text).expect("a dump line is JSON");
    Line {
        text: text.to_string(),
        position: value["position"].as_u64().expect("position"),
        project: value["project"].as_str().expect("project").to_string(),
    }
}

/// Index of the next line of the same project after `i`.
fn next_of_project(lines: &[Line], i: usize) -> usize {
    (i + 1..lines.len())
        .find(|&j| lines[j].project == lines[i].project)
        .expect("the project has a later record")
}

fn write(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text).expect("write dump copy");
    path
}

/// The line with one hex digit of its record changed, at `offset` within the record.
fn flip_digit(line: &str, offset: usize) -> String {
    let value: Value = serde_json::from_str(line).expect("JSON");
    let record = value["record"].as_str().expect("record");
    let mut digits: Vec<u8> = record.bytes().collect();
    let digit = u8::from_str_radix(&record[offset..=offset], 16).expect("hex digit");
    digits[offset] = b"0123456789abcdef"[usize::from(digit ^ 0x1)];
    let tampered = String::from_utf8(digits).expect("ASCII");
    line.replacen(record, &tampered, 1)
}

#[test]
fn python_verifier_agrees_with_waybill_and_catches_tampering() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let data_dir = data.to_str().expect("UTF-8 temp path");

    let burst = waybill(&[
        "debug",
        "append-burst",
        "--data-dir",
        data_dir,
        "--count",
        "50",
        "--writers",
        "3",
    ]);
    assert!(burst.status.success(), "append-burst failed");
    let acks = String::from_utf8_lossy(&burst.stdout);
    assert_eq!(acks.lines().filter(|l| l.starts_with("ack ")).count(), 150);

    let dump = waybill(&["dump", "--data-dir", data_dir]);
    assert!(dump.status.success(), "dump failed");
    let dump_text = String::from_utf8(dump.stdout).expect("UTF-8 dump");
    let dump_path = tmp.path().join("dump.jsonl");
    std::fs::write(&dump_path, &dump_text).expect("write dump");
    let lines: Vec<Line> = dump_text.lines().map(parse).collect();
    let positions: Vec<u64> = lines.iter().map(|l| l.position).collect();
    assert_eq!(positions, (1..=150).collect::<Vec<u64>>());

    // One project's dump is its lines of the whole dump; a project without
    // records is refused, not dumped as nothing.
    let dump_of = |project: &str| {
        Command::new(WAYBILL)
            .args(["dump", "--data-dir", data_dir, "--project", project])
            .env_remove("WAYBILL_NATS_URL")
            .env_remove("WAYBILL_CONFIG")
            .output()
            .expect("run the waybill binary")
    };
    let project = lines[0].project.clone();
    let one = dump_of(&project);
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let want: Vec<&str> = dump_text
        .lines()
        .zip(&lines)
        .filter(|(_, l)| l.project == project)
        .map(|(text, _)| text)
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&one.stdout)
            .lines()
            .collect::<Vec<_>>(),
        want
    );
    let none = dump_of("no-such-project");
    assert!(!none.status.success());
    assert!(none.stdout.is_empty());
    let said = String::from_utf8_lossy(&none.stderr);
    assert!(
        said.contains("project no-such-project has no events in this log"),
        "{said}"
    );

    // The clean dump verifies, with the same heads as `waybill verify`.
    let (code, stdout) = verify_chain(&dump_path);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("ok: 150 events, 3 projects"), "{stdout}");
    let verified = waybill(&["verify", "--data-dir", data_dir]);
    assert!(verified.status.success(), "waybill verify failed");
    let verified = String::from_utf8_lossy(&verified.stdout);
    let script_heads = heads(&stdout);
    assert_eq!(script_heads.len(), 3, "{stdout}");
    assert_eq!(
        script_heads,
        heads(&verified),
        "script:\n{stdout}\nwaybill:\n{verified}"
    );

    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let mid = lines.len() / 2;
    let (pos, project) = (lines[mid].position, &lines[mid].project);
    let next = next_of_project(&lines, mid);
    let next_pos = lines[next].position;

    // (a) One hex digit of one record changed: the break is at that record or
    // at the next record of its project, wherever in the record the digit is.
    let record_len = serde_json::from_str::<Value>(texts[mid]).expect("JSON")["record"]
        .as_str()
        .expect("record")
        .len();
    let mut offsets: Vec<usize> = (0..record_len).step_by(7).collect();
    offsets.push(record_len / 2);
    for offset in offsets {
        let flipped = flip_digit(texts[mid], offset);
        let mut copy = texts.clone();
        copy[mid] = &flipped;
        let (code, stdout) = verify_chain(&write(tmp.path(), "flipped.jsonl", &copy));
        assert_eq!(code, 1, "digit {offset} of position {pos}: {stdout}");
        let first = stdout.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("BROKEN at position {pos} "))
                || first.starts_with(&format!("BROKEN at position {pos}:"))
                || first.starts_with(&format!("BROKEN at position {next_pos} ")),
            "digit {offset} of position {pos} ({project}, next {next_pos}): {stdout}"
        );
    }

    // (b) A record removed: the next record of its project no longer links.
    let mut copy = texts.clone();
    copy.remove(mid);
    let (code, stdout) = verify_chain(&write(tmp.path(), "deleted.jsonl", &copy));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "BROKEN at position {next_pos} (project {project}): prev_hash expected"
        )),
        "deleted position {pos}: {stdout}"
    );

    // (c) Two records of one project swapped: the later one, now first, does not link.
    let mut copy = texts.clone();
    copy.swap(mid, next);
    let (code, stdout) = verify_chain(&write(tmp.path(), "swapped.jsonl", &copy));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "BROKEN at position {next_pos} (project {project})"
        )),
        "swapped positions {pos} and {next_pos}: {stdout}"
    );
}

/// The stream's messages as `nats stream get WAYBILL SEQ --json | jq -c .`
/// prints them: `seq`, `subject`, `data` and `hdrs` (the header block),
/// base64.
async fn stream_get_lines(url: &str) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let client = async_nats::connect(url).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("WAYBILL").await.expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut lines = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.expect("get");
        let mut block = String::from("NATS/1.0\r\n");
        for (name, values) in m.headers.iter() {
            for v in values {
                block.push_str(&format!("{name}: {}\r\n", v.as_str()));
            }
        }
        block.push_str("\r\n");
        let mut line = serde_json::json!({
            "seq": seq,
            "subject": m.subject.to_string(),
            "data": b64.encode(&m.payload),
        });
        if !m.headers.is_empty() {
            line["hdrs"] = b64.encode(block).into();
        }
        lines.push(line.to_string());
    }
    lines
}

/// Read straight from the stream (`nats stream get`), messages published by
/// something else than Waybill are reported as such and passed over, as
/// `waybill verify` does: the chains around them verify to the same heads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_verifier_passes_over_foreign_messages_as_waybill_does() {
    let nats = waybill_ledger::testing::NatsServer::start();
    let url = nats.url();
    let tmp = tempfile::tempdir().expect("tempdir");
    let burst = |tag: &str| {
        let out = waybill(&[
            "debug",
            "append-burst",
            "--nats",
            &url,
            "--count",
            "4",
            "--writers",
            "2",
            "--tag",
            tag,
        ]);
        assert!(out.status.success(), "append-burst failed");
    };
    burst("a");
    // A stray message, then a record's bytes under a chain hash not its own.
    let client = async_nats::connect(url.as_str()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.publish("waybill.burst-0.FreightDiscovered", "hello".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let stream = js.get_stream("WAYBILL").await.expect("stream");
    let copied = stream.get_raw_message(2).await.expect("get");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Waybill-Hash", "cd".repeat(32).as_str());
    js.publish_with_headers(copied.subject.clone(), headers, copied.payload.clone())
        .await
        .expect("publish")
        .await
        .expect("ack");
    // A record, with its own chain hash, on another project's subject.
    let mut headers = async_nats::HeaderMap::new();
    let hash = copied.headers.get("Waybill-Hash").expect("hash header");
    headers.insert("Waybill-Hash", hash.as_str());
    js.publish_with_headers(
        "waybill.elsewhere.promotion-approved",
        headers,
        copied.payload.clone(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
    burst("b");

    let lines = stream_get_lines(&url).await;
    assert_eq!(lines.len(), 19);
    let texts: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (code, stdout) = verify_chain(&write(tmp.path(), "stream.jsonl", &texts));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FOREIGN at position 9: not written by Waybill (no Waybill-Hash header)")
            && stdout.contains(
                "FOREIGN at position 10: not written by Waybill (its Waybill-Hash header does \
                 not match its bytes)"
            )
            && stdout.contains(
                "FOREIGN at position 11: not written by Waybill (a record of project burst-"
            ),
        "{stdout}"
    );
    assert!(
        stdout.contains("chains intact: 16 events, 2 projects"),
        "{stdout}"
    );

    let verified = waybill(&["verify", "--nats", &url]);
    assert_eq!(verified.status.code(), Some(1));
    let verified = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.starts_with("chains intact: 16 events in 2 project(s)"),
        "{verified}"
    );
    assert_eq!(
        heads(&stdout),
        heads(&verified),
        "script:\n{stdout}\nwaybill:\n{verified}"
    );
    assert_eq!(heads(&stdout).len(), 2);
}
