//! A message published to Waybill's subjects by something else than
//! Waybill (a stray `nats pub`) stops nothing: the stream denies deletes,
//! so a reader that stopped at it would stop for ever, for every project.
//! Commands, read models, the Merkle tree and auto-promotion pass over it;
//! `waybill verify` names it and fails.

use crate::common::{caught_up, run, stdout, Served};
use crate::{insecure_dev_cmd, insecure_dev_on};
use waybill_ledger::testing::NatsServer;

fn status(served: &Served) -> String {
    let out = run(&["status", "-p", "shop", "--server", &served.endpoint()]);
    assert!(
        out.status.success(),
        "status: {}",
        crate::common::stderr(&out)
    );
    stdout(&out)
}

/// The freight dev runs, once it is no longer `before` (auto-promotion
/// follows each discovery).
async fn dev_moves_on(served: &Served, before: &str) -> String {
    for _ in 0..300 {
        let shown = status(served);
        let dev = shown
            .lines()
            .find(|l| l.starts_with("dev "))
            .expect("dev row");
        let freight = dev
            .split_whitespace()
            .nth(3)
            .unwrap_or_default()
            .to_string();
        if freight != before {
            return freight;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("dev never moved on from {before}: {}", status(served));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_message_on_the_stream_stops_nothing() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let served = insecure_dev_on(&nats, dir.path());
    served.apply_example();
    let out = served.discover_cli("1.4.2");
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    // Auto-promoted into dev (record-only: done at once).
    let first = dev_moves_on(&served, "-").await;

    // The project's last message is now one Waybill did not write.
    let client = async_nats::connect(nats.url()).await.expect("connect");
    client
        .publish("waybill.shop.FreightDiscovered", "hello".into())
        .await
        .expect("publish");
    client.flush().await.expect("flush");

    let out = served.discover_cli("1.4.3");
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let second = dev_moves_on(&served, &first).await;
    caught_up(served.endpoint(), None).await;
    let shown = status(&served);
    assert!(!shown.contains("behind the log"), "{shown}");
    let log = served.log_so_far();
    assert!(
        log.contains("passing over a message Waybill did not write"),
        "{log}"
    );
    assert!(!log.contains("stopped"), "{log}");
    let (exit, _) = served.terminate_and_log();
    assert!(exit.success(), "{exit:?}");

    let out = run(&["verify", "--nats", &nats.url()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("chains intact: "), "{text}");
    assert!(
        text.contains("FOREIGN: message at position")
            && text.contains("(subject waybill.shop.FreightDiscovered) was not written by Waybill"),
        "{text}"
    );
    // The same for scripts.
    let out = run(&["verify", "--nats", &nats.url(), "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["first_break"].is_null(), "{v}");
    assert_eq!(v["foreign_count"], 1, "{v}");
    let named: u64 = text
        .split("FOREIGN: message at position ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the position in the text");
    assert_eq!(v["foreign"][0]["position"], named, "{v}");
    assert_eq!(
        v["foreign"][0]["subject"], "waybill.shop.FreightDiscovered",
        "{v}"
    );

    // A copy (a backup into a data directory) keeps every position: the
    // stray message too, named by `verify` as on the stream.
    let copy = dir.path().join("copy");
    let copy = copy.to_str().expect("UTF-8 temp path");
    let out = run(&["copy", "--nats", &nats.url(), "--to-data-dir", copy]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let out = run(&["verify", "--data-dir", copy]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let foreign = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("FOREIGN"))
            .map(|l| {
                l.split(" was not written")
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(foreign(&stdout(&out)), foreign(&text), "{}", stdout(&out));
    assert_eq!(foreign(&text).len(), 1, "{text}");

    // A restart reads the same log the same way: the read models it kept
    // are its own (the Merkle tree took the stray message as a leaf). Its
    // live backup copies the stray message too.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let backup = elsewhere.path().join("backup");
    let served = Served::start(
        insecure_dev_cmd(&nats, dir.path())
            .arg("--backup-dir")
            .arg(&backup),
    );
    let out = served.discover_cli("1.4.4");
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    dev_moves_on(&served, &second).await;
    let (exit, _) = served.terminate_and_log();
    assert!(exit.success(), "{exit:?}");
    let out = run(&["verify", "--data-dir", backup.to_str().expect("UTF-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(foreign(&stdout(&out)), foreign(&text), "{}", stdout(&out));
    assert!(stdout(&out).contains("shop: 7 events,"), "{}", stdout(&out));
}
