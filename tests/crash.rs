//! Crash safety of the embedded backend: kill -9 a writer in the middle of a
//! burst of appends; after restart every acknowledged append is present,
//! nothing is half-written, and the chain verifies. Repeated over several
//! rounds on the same store, so that recovery itself is also exercised.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use futures::StreamExt;
use waybill_ledger::{verify_log, EventLog, Position, SledLog};

/// Acknowledgements to wait for before each kill (varied, so the kill lands
/// at different points of a batch).
const KILL_AFTER: [usize; 5] = [37, 400, 1, 1250, 777];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_acknowledged_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8").to_string();
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    for (round, kill_after) in KILL_AFTER.iter().enumerate() {
        let tag = format!("round{round}");
        let mut child = common::waybill()
            .args([
                "debug",
                "append-burst",
                "--data-dir",
                &data,
                "--count",
                "1000000",
            ])
            .args(["--writers", "8", "--tag", &tag])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut seen = 0;
        while seen < *kill_after {
            let line = lines.next().expect("writer ended early").expect("line");
            record(&mut acked, &line);
            seen += 1;
        }
        child.kill().expect("kill -9");
        // Acks already printed before the kill count too.
        for line in lines.map_while(Result::ok) {
            record(&mut acked, &line);
        }
        child.wait().expect("wait");

        let log = SledLog::open(dir.path()).expect("reopen after kill -9");
        let head = log.head().await.expect("head");
        let mut stored = BTreeMap::new();
        let mut events = log.read_all(Position(1)).await.expect("read");
        while let Some(ev) = events.next().await {
            let ev = ev.expect("every stored event decodes");
            stored.insert(ev.position.0, ev.event.command_id.clone());
        }
        assert_eq!(
            stored.len() as u64,
            head.0,
            "positions are dense up to the head"
        );
        for (pos, cmd) in &acked {
            assert_eq!(
                stored.get(pos),
                Some(cmd),
                "acknowledged append {cmd} at {pos} lost"
            );
        }
        let report = verify_log(&log, None, |_| {}).await.expect("verify");
        assert!(
            report.first_break.is_none(),
            "round {round}: {:?}",
            report.first_break
        );
        assert_eq!(report.events, head.0);
        let unique: std::collections::BTreeSet<_> = stored.values().collect();
        assert_eq!(unique.len(), stored.len(), "no command appended twice");
        drop(log);
    }
    assert!(acked.len() >= KILL_AFTER.iter().sum::<usize>());
}

fn record(acked: &mut BTreeMap<u64, String>, line: &str) {
    let mut parts = line.split_whitespace();
    assert_eq!(parts.next(), Some("ack"), "unexpected output {line:?}");
    let pos: u64 = parts.next().and_then(|p| p.parse().ok()).expect("position");
    let cmd = parts.next().expect("command id").to_string();
    acked.insert(pos, cmd);
}
