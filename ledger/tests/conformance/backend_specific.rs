//! Behaviours that need a backend's own tools to provoke: server restarts,
//! unsafe stream configurations, tampering behind Waybill's back, reopening.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use waybill_ledger::jetstream::check_version;
use waybill_ledger::testing::{mutable_jetstream, NatsServer};
use waybill_ledger::verify::BreakKind;
use waybill_ledger::{
    verify_log, EventLog, EventStream, JetStreamLog, JetStreamOptions, LedgerError, Position,
    SledLog,
};

use super::support::*;

async fn append_n(log: &dyn EventLog, p: &str, n: usize, tag: &str) -> Position {
    let p = project(p);
    let mut last = log.last_position(&p).await.expect("head");
    for i in 0..n {
        last = log
            .append(&p, last, approval(&format!("{tag}-{i}")))
            .await
            .expect("append")
            .position;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_tail_survives_a_server_restart() {
    let mut h = jetstream().await;
    let log = h.log.clone();
    append_n(&*log, "tail", 20, "a").await;
    let mut tail = log.tail(Position(1)).await.expect("tail");
    let mut seen = Vec::new();
    while seen.len() < 20 {
        seen.push(tail.next().await.expect("item").expect("event").position.0);
    }
    let server = h.server.as_mut().expect("server");
    server.kill();
    server.restart();
    // The client reconnects by itself; appends succeed again once it has.
    let p = project("tail");
    let mut last = Position(20);
    let mut i = 0;
    let mut attempts = 0;
    while i < 20 {
        match log.append(&p, last, approval(&format!("b-{i}"))).await {
            Ok(a) => {
                last = a.position;
                i += 1;
            }
            Err(LedgerError::Unavailable(_)) if attempts < 200 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("append after restart: {e}"),
        }
    }
    while seen.len() < 40 {
        let ev = tokio::time::timeout(Duration::from_secs(30), tail.next())
            .await
            .expect("tail stalled after restart")
            .expect("tail ended")
            .expect("event");
        seen.push(ev.position.0);
    }
    assert_eq!(seen, (1..=40).collect::<Vec<u64>>(), "once each, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_refuses_a_stream_that_allows_deletes() {
    let server = NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "WAYBILL".into(),
        subjects: vec!["waybill.>".into()],
        ..Default::default()
    })
    .await
    .expect("create unsafe stream");
    let err = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect_err("must refuse");
    let text = err.to_string();
    assert!(matches!(err, LedgerError::Misconfigured(_)), "{text}");
    assert!(
        text.contains("deny_delete") && text.contains("deny_purge"),
        "{text}"
    );
}

/// Stream creation that waiting cannot fix is refused at once with what to
/// do, instead of being retried as "JetStream not ready" for 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_refuses_at_once_a_stream_it_can_never_create() {
    let server = NatsServer::start();
    // A Waybill stream is there; another name on the same subjects overlaps.
    JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect("the first ledger");
    // (Setup retries only `Unavailable`: a `Misconfigured` error came at once.)
    let err = JetStreamLog::connect(JetStreamOptions {
        stream: "OTHER".into(),
        ..JetStreamOptions::new(server.url())
    })
    .await
    .expect_err("overlapping subjects must be refused");
    let text = err.to_string();
    assert!(matches!(err, LedgerError::Misconfigured(_)), "{text}");
    assert!(
        text.contains("overlap") && text.contains("--stream"),
        "{text}"
    );

    // Three replicas on a server that is not clustered.
    let single = NatsServer::start();
    let err = JetStreamLog::connect(JetStreamOptions {
        replicas: 3,
        ..JetStreamOptions::new(single.url())
    })
    .await
    .expect_err("R3 on one server must be refused");
    let text = err.to_string();
    assert!(matches!(err, LedgerError::Misconfigured(_)), "{text}");
    assert!(text.contains("--replicas 1"), "{text}");
}

#[test]
fn old_servers_are_refused_with_advice() {
    for old in ["2.9.10", "2.10.26", "v2.10.0"] {
        let err = check_version(old).expect_err(old).to_string();
        assert!(err.contains("2.11"), "{err}");
    }
    for ok in ["2.11.0", "2.12.3", "2.15.1", "3.0.0"] {
        check_version(ok).expect(ok);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_deleted_message_breaks_the_chain() {
    let server = NatsServer::start();
    let log = mutable_jetstream(&server.url()).await;
    append_n(&log, "audit", 10, "x").await;
    let clean = verify_log(&log, None, |_| {}).await.expect("verify");
    assert!(clean.first_break.is_none());
    let s = log.context().get_stream("WAYBILL").await.expect("stream");
    assert!(s.delete_message(5).await.expect("delete"));
    let report = verify_log(&log, None, |_| {}).await.expect("verify");
    let broken = report.first_break.expect("deletion must be detected");
    assert_eq!(broken.position, Position(6));
    assert_eq!(broken.project, "audit");
    assert!(
        matches!(broken.kind, BreakKind::PrevHash { .. }),
        "{broken}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_republished_message_breaks_the_chain() {
    let server = NatsServer::start();
    let log = mutable_jetstream(&server.url()).await;
    append_n(&log, "audit", 5, "x").await;
    // Copy event 2 and publish it again, bypassing Waybill, with its chain
    // hash (without it, it is no Waybill record at all: see below).
    let s = log.context().get_stream("WAYBILL").await.expect("stream");
    let original = s.get_raw_message(2).await.expect("get");
    let mut headers = async_nats::HeaderMap::new();
    let hash = original.headers.get("Waybill-Hash").expect("hash header");
    headers.insert("Waybill-Hash", hash.as_str());
    log.context()
        .publish_with_headers(original.subject.clone(), headers, original.payload.clone())
        .await
        .expect("publish")
        .await
        .expect("ack");
    append_n(&log, "other", 1, "y").await;
    let report = verify_log(&log, None, |_| {}).await.expect("verify");
    let broken = report.first_break.expect("re-publication must be detected");
    assert_eq!(broken.position, Position(6), "{broken}");
    assert!(broken.to_string().contains("expected"), "{broken}");
}

/// A message published to Waybill's subjects by something else is no
/// event: readers pass over it (it would otherwise stop every reader for
/// ever, as the stream denies deletes), appends go on after it, and
/// `verify` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_foreign_messages_are_passed_over() {
    let server = NatsServer::start();
    let log = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect("connect");
    let p = project("shop");
    append_n(&log, "shop", 3, "a").await;
    let js = log.context();
    // A stray publish, without headers (position 4).
    js.publish("waybill.shop.FreightDiscovered", "hello".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    // A record copied with a chain hash that is not its own (5).
    let stream = js.get_stream("WAYBILL").await.expect("stream");
    let original = stream.get_raw_message(2).await.expect("get");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Waybill-Hash", "ab".repeat(32).as_str());
    js.publish_with_headers(original.subject.clone(), headers, original.payload.clone())
        .await
        .expect("publish")
        .await
        .expect("ack");

    // An append expects the subject's last message, and the chain goes on
    // from the last record.
    assert_eq!(log.last_position(&p).await.expect("last"), Position(5));
    let appended = log
        .append(&p, Position(5), approval("b-0"))
        .await
        .expect("append after foreign messages");
    assert_eq!((appended.position, appended.project_seq), (Position(6), 4));

    let kinds = |items: Vec<Result<waybill_ledger::StoredEvent, LedgerError>>| {
        items
            .into_iter()
            .map(|item| match item {
                Ok(ev) => (ev.position.0, String::new()),
                Err(LedgerError::Foreign(f)) => (f.position.0, f.reason),
                Err(e) => panic!("unexpected: {e}"),
            })
            .collect::<Vec<_>>()
    };
    let all = kinds(
        log.read_all(Position(1))
            .await
            .expect("read")
            .collect()
            .await,
    );
    let in_project = kinds(
        log.read_project(&p, Position(1))
            .await
            .expect("read")
            .collect()
            .await,
    );
    let mut tail = log.tail(Position(1)).await.expect("tail");
    let mut tailed = Vec::new();
    while tailed.len() < 6 {
        let item = tokio::time::timeout(Duration::from_secs(30), tail.next())
            .await
            .expect("tail stalled")
            .expect("tail ended");
        tailed.push(item);
    }
    for items in [all, in_project, kinds(tailed)] {
        let positions: Vec<u64> = items.iter().map(|(p, _)| *p).collect();
        assert_eq!(positions, [1, 2, 3, 4, 5, 6], "{items:?}");
        assert!(items[3].1.contains("no Waybill-Hash header"), "{items:?}");
        assert!(items[4].1.contains("does not match"), "{items:?}");
        assert!(items.iter().filter(|(_, why)| !why.is_empty()).count() == 2);
    }
    assert!(matches!(
        log.next_event(&p, Position(4)).await,
        Err(LedgerError::Foreign(f)) if f.position == Position(4)
    ));

    let report = verify_log(&log, None, |_| {}).await.expect("verify");
    assert!(report.first_break.is_none(), "{:?}", report.first_break);
    assert_eq!((report.events, report.foreign_count), (4, 2));
    let named: Vec<u64> = report.foreign.iter().map(|f| f.position.0).collect();
    assert_eq!(named, [4, 5]);
    assert!(!report.is_clean());
    let (at, text) = report.first_problem().expect("a problem");
    assert_eq!(at, Position(4));
    assert!(text.contains("not written by Waybill"), "{text}");

    // A record whose chain hash checks out but that this build cannot read
    // (a newer Waybill wrote it) is not passed over: it stops readers.
    use prost::Message as _;
    let head = log.project_head(&p).await.expect("head");
    let record = waybill_proto::v1::EventRecord {
        format_version: waybill_ledger::event::CURRENT_FORMAT_VERSION + 1,
        project: "shop".into(),
        project_seq: head.seq + 1,
        prev_hash: head.hash.0.to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Waybill-Hash", head.hash.next(&record).to_hex().as_str());
    js.publish_with_headers("waybill.shop.PromotionApproved", headers, record.into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let newer = log.read_all(Position(7)).await.expect("read").next().await;
    match newer {
        Some(Err(LedgerError::Corrupt { position, reason })) => {
            assert_eq!(position, Position(7));
            assert!(reason.contains("newer"), "{reason}");
        }
        other => panic!("expected the newer record to stop the reader, got {other:?}"),
    }
}

/// A record copied, with its chain hash, onto another project's subject is
/// no record of that project: its chain would otherwise continue from the
/// other project's (the subject names a project's last message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_a_record_on_another_subject_is_foreign() {
    let server = NatsServer::start();
    let log = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect("connect");
    append_n(&log, "shop", 2, "a").await;
    let js = log.context();
    let stream = js.get_stream("WAYBILL").await.expect("stream");
    let original = stream.get_raw_message(2).await.expect("get");
    let mut headers = async_nats::HeaderMap::new();
    let hash = original.headers.get("Waybill-Hash").expect("hash header");
    headers.insert("Waybill-Hash", hash.as_str());
    js.publish_with_headers(
        "waybill.other.promotion-approved",
        headers,
        original.payload.clone(),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
    match log.read_all(Position(3)).await.expect("read").next().await {
        Some(Err(LedgerError::Foreign(f))) => {
            assert_eq!(f.position, Position(3));
            assert!(f.reason.contains("another subject"), "{}", f.reason);
        }
        other => panic!("expected a foreign message, got {other:?}"),
    }
    // The other project starts its own chain after it.
    let other = project("other");
    assert_eq!(log.last_position(&other).await.expect("last"), Position(3));
    let first = log
        .append(&other, Position(3), approval("o-0"))
        .await
        .expect("append");
    assert_eq!(first.project_seq, 1);
    let report = verify_log(&log, None, |_| {}).await.expect("verify");
    assert!(report.first_break.is_none(), "{:?}", report.first_break);
    assert_eq!((report.events, report.foreign_count), (3, 1));
}

/// A stream whose configuration is changed under a running Waybill so that
/// the server would discard events (NATS allows adding limits to a stream
/// that denies deletes) takes no appends until it is changed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_a_stream_changed_to_discard_events_takes_no_appends() {
    let server = NatsServer::start();
    let log = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect("connect");
    let p = project("limits");
    let last = append_n(&log, "limits", 3, "a").await;
    assert_eq!(log.unsafe_config(), None);
    let js = log.context();
    let mut config = js
        .get_stream("WAYBILL")
        .await
        .expect("stream")
        .info()
        .await
        .expect("info")
        .config
        .clone();
    config.max_age = Duration::from_secs(3600);
    js.update_stream(config.clone()).await.expect("add a limit");

    // Seen at the next look at the log's head (the server's health check).
    assert_eq!(log.head().await.expect("head"), last);
    let problem = log.unsafe_config().expect("unsafe");
    assert!(problem.contains("age, size or count limit"), "{problem}");
    let refused = log
        .append(&p, last, approval("b-0"))
        .await
        .expect_err("no append while the stream would discard events");
    assert!(
        matches!(refused, LedgerError::Misconfigured(_)),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("nothing was written"),
        "{refused}"
    );
    assert_eq!(log.head().await.expect("head"), last, "nothing was written");

    config.max_age = Duration::ZERO;
    js.update_stream(config).await.expect("limit removed");
    log.head().await.expect("head");
    assert_eq!(log.unsafe_config(), None);
    log.append(&p, last, approval("b-0"))
        .await
        .expect("appends again");
}

/// A server whose JetStream storage is full refuses appends; Waybill says
/// so, and that nothing was written (not "it may have been written").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_storage_full_is_said_and_nothing_is_written() {
    use waybill_ledger::testing::ServerOptions;
    let server = NatsServer::start_with(ServerOptions {
        max_file_store: Some("256KB".into()),
        ..ServerOptions::default()
    });
    let log = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect("connect");
    let p = project("full");
    let mut last = Position::ZERO;
    let refused = loop {
        match log
            .append(&p, last, approval(&format!("f-{}", last.0)))
            .await
        {
            Ok(a) => last = a.position,
            Err(e) => break e,
        }
        assert!(last.0 < 100_000, "the storage limit never took effect");
    };
    let text = refused.to_string();
    assert!(matches!(refused, LedgerError::Unavailable(_)), "{text}");
    assert!(
        text.contains("refused")
            && text.contains("storage is full")
            && text.contains("nothing was written"),
        "{text}"
    );
    assert_eq!(log.head().await.expect("head"), last, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_tampering_is_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path()).expect("open");
    append_n(&log, "audit", 6, "x").await;
    let tree = log.raw_tree();
    // Flip a byte inside event 3's record (after its 32-byte stored hash).
    let key = [b'e', 0, 0, 0, 0, 0, 0, 0, 3];
    let mut value = tree.get(key).expect("get").expect("event 3").to_vec();
    let last = value.len() - 1;
    value[last] ^= 0x01;
    tree.insert(key, value).expect("tamper");
    let report = verify_log(&log, None, |_| {}).await.expect("verify");
    let broken = report.first_break.expect("alteration must be detected");
    assert_eq!(broken.position, Position(3), "{broken}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_missing_record_in_a_run_is_reported_where_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SledLog::open(dir.path()).expect("open");
    append_n(&log, "gap", 8, "g").await;
    // Remove event 5's record but keep the project's index entry for it.
    let removed = log
        .raw_tree()
        .remove([b'e', 0, 0, 0, 0, 0, 0, 0, 5])
        .expect("remove");
    assert!(removed.is_some());
    let mut stream = log
        .read_project(&project("gap"), Position(1))
        .await
        .expect("read_project");
    let mut read = Vec::new();
    while let Some(ev) = stream.next().await {
        read.push(ev);
    }
    let positions: Vec<u64> = read
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|e| e.position.0))
        .collect();
    assert_eq!(positions, [1, 2, 3, 4], "records before the gap");
    match read.last() {
        Some(Err(LedgerError::Corrupt { position, reason })) => {
            assert_eq!(*position, Position(5));
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("expected the gap to be reported, got {other:?}"),
    }
    assert_eq!(read.len(), 5, "nothing after the error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_survives_reopen_and_refuses_a_second_opener() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = SledLog::open(dir.path()).expect("open");
        append_n(&log, "keep", 25, "k").await;
        let err = SledLog::open(dir.path()).expect_err("locked");
        assert!(err.to_string().contains("in use"), "{err}");
        // A reader (verify, dump) is told how to check a live ledger instead.
        let err = SledLog::open_existing(dir.path(), 1 << 20).expect_err("locked");
        assert!(err.to_string().contains("verify-export"), "{err}");
    }
    let log = SledLog::open(dir.path()).expect("reopen");
    assert_eq!(log.head().await.expect("head"), Position(25));
    let head = log.project_head(&project("keep")).await.expect("head");
    assert_eq!(head.seq, 25);
    // The chain continues where it stopped.
    append_n(&log, "keep", 5, "k2").await;
    let report = verify_log(&log, None, |_| {}).await.expect("verify");
    assert!(report.first_break.is_none());
    assert_eq!(report.events, 30);
    // Dedup survives the restart too.
    assert!(matches!(
        log.append(&project("keep"), Position(30), approval("k-0"))
            .await,
        Err(LedgerError::Duplicate {
            original: Position(1)
        })
    ));
}

/// A sled log damaged on disk reads as one that ends where the damage
/// starts, without an error from sled; the log records how far it had
/// reached, so it is refused instead, by a server and by the commands that
/// read it (`verify` said "ok: 0 events" of such a log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_sled_log_is_refused_not_read_as_shorter() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = SledLog::open(dir.path()).expect("open");
        append_n(&log, "keep", 5, "k").await;
        // Recorded while the log is open (at most a second late), for a
        // process killed rather than stopped.
        let reached = dir.path().join("reached");
        let mut recorded = String::new();
        for _ in 0..100 {
            recorded = std::fs::read_to_string(&reached).unwrap_or_default();
            if recorded.trim() == "5" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(recorded.trim(), "5", "recorded while open");
    }
    let db = dir.path().join("db");
    let mut bytes = std::fs::read(&db).expect("read");
    let damaged = bytes.len().min(4096);
    bytes[..damaged].fill(0xff);
    std::fs::write(&db, &bytes).expect("damage");
    for err in [
        SledLog::open(dir.path()).expect_err("damaged"),
        SledLog::open_existing(dir.path(), 1 << 20).expect_err("damaged"),
    ] {
        let said = err.to_string();
        assert!(said.contains("but it had reached position 5"), "{said}");
        assert!(said.contains("waybill copy --data-dir BACKUP"), "{said}");
    }
}

/// A real nats-server 2.10 (installed by scripts/test as NATS_SERVER_OLD_BIN)
/// is refused before anything is created on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_refuses_a_real_old_server() {
    let old = std::env::var("NATS_SERVER_OLD_BIN").unwrap_or_else(|_| {
        format!(
            "{}/../.tools/bin/nats-server-2.10.26",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    assert!(
        std::path::Path::new(&old).exists(),
        "{old} is missing: run scripts/install-nats-server 2.10.26 (scripts/test does)"
    );
    let server = NatsServer::start_with(waybill_ledger::testing::ServerOptions {
        binary: Some(old.into()),
        ..Default::default()
    });
    let err = JetStreamLog::connect(JetStreamOptions::new(server.url()))
        .await
        .expect_err("2.10 must be refused");
    assert!(matches!(err, LedgerError::Misconfigured(_)), "{err}");
    assert!(err.to_string().contains("2.10.26"), "{err}");
    let client = async_nats::connect(server.url()).await.expect("connect");
    let streams: Vec<_> = jetstream::new(client).stream_names().collect().await;
    assert!(streams.is_empty(), "nothing was created: {streams:?}");
}

/// An append that no stream answers (as for a moment while a replicated
/// stream is placed, or elects a new leader) is retried with the same
/// message id, and lands once the stream answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_append_waits_out_a_moment_without_a_stream() {
    let h = jetstream().await;
    let (log, url) = (h.log.clone(), h.server.as_ref().expect("server").url());
    let p = project("gap");
    // Reads (and caches) the project's empty chain head while the stream is there.
    let head = log.project_head(&p).await.expect("head");
    assert_eq!(head.position, Position::ZERO);
    let client = async_nats::connect(url.as_str()).await.expect("connect");
    jetstream::new(client)
        .delete_stream("WAYBILL")
        .await
        .expect("delete the stream");
    let recreate = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        JetStreamLog::connect(JetStreamOptions::new(url))
            .await
            .expect("recreate the stream")
    });
    let appended = log
        .append(&p, Position::ZERO, approval("after-the-gap"))
        .await
        .expect("the append waits for the stream to answer again");
    let again = recreate.await.expect("recreate task");
    assert_eq!(appended.position, Position(1));
    let report = verify_log(&again, None, |_| {}).await.expect("verify");
    assert_eq!(report.events, 1);
    assert!(report.first_break.is_none(), "{:?}", report.first_break);
}

/// Each read of the log starts a consumer on the server; a finished or
/// abandoned read deletes it. Left to expire (30 s), 1,000 of them would
/// make nats-server 2.15 refuse every further read ("maximum consumers
/// limit reached", its default per stream): a burst of first commands on
/// many projects, or of conflicts, within half a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_reads_leave_no_consumers_behind() {
    let h = jetstream().await;
    let log = h.log.clone();
    append_n(&*log, "reads", 3, "r").await;
    let p = project("reads");
    for i in 0..1_100 {
        let mut events = log
            .read_project(&p, Position(1))
            .await
            .unwrap_or_else(|e| panic!("read {i}: {e}"));
        if i % 2 == 0 {
            // Abandoned after the first event.
            events.next().await.expect("an event").expect("read");
        } else {
            let all: Vec<_> = events.collect().await;
            assert_eq!(all.len(), 3, "read {i}");
        }
    }
    let server = h.server.as_ref().expect("server");
    let client = async_nats::connect(server.url()).await.expect("connect");
    let mut stream = jetstream::new(client)
        .get_stream("WAYBILL")
        .await
        .expect("stream");
    let mut consumers = usize::MAX;
    for _ in 0..100 {
        consumers = stream.info().await.expect("info").state.consumer_count;
        if consumers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(consumers, 0, "consumers left on the stream");
}

/// A stream allows only so many consumers at once (nats-server 2.15: 1,000
/// unless configured otherwise), and every bounded read holds one while it
/// runs: a burst of reads (each project's first command after a crash, a
/// rebuild beside many conflicts) must wait for a slot, not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_reads_beyond_the_consumer_limit_wait_for_a_slot() {
    let h = jetstream().await;
    let log = h.log.clone();
    append_n(&*log, "busy", 3, "b").await;
    let server = h.server.as_ref().expect("server");
    let js = jetstream::new(async_nats::connect(server.url()).await.expect("connect"));
    let mut stream = js.get_stream("WAYBILL").await.expect("stream");
    let mut config = stream.info().await.expect("info").config.clone();
    config.max_consumers = 2;
    js.update_stream(config)
        .await
        .expect("lower the consumer limit");

    let p = project("busy");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut events = log.read_project(&p, Position(1)).await.expect("read");
        events.next().await.expect("an event").expect("read");
        held.push(events);
    }
    let waiting = {
        let (log, p) = (log.clone(), p.clone());
        tokio::spawn(async move {
            let events = log.read_project(&p, Position(1)).await?;
            events
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a third read ended while both consumers were held: {:?}",
        waiting.await
    );
    drop(held.pop());
    let events = waiting
        .await
        .expect("task")
        .expect("the read, once a slot freed");
    assert_eq!(events.len(), 3);
}

/// "The first event of this project at or after this position" never
/// changes, so a JetStream log answers it again from memory: the reads a
/// conflict makes (the append's search for its own command id, then the
/// command's catch-up over the same events) reach the server once. Shown by
/// asking again with the server down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_single_event_reads_are_answered_once() {
    let mut h = jetstream().await;
    let log = h.log.clone();
    let last = append_n(&*log, "once", 3, "o").await;
    let p = project("once");
    let first = log
        .next_event(&p, Position(1))
        .await
        .expect("read")
        .expect("an event");
    h.server.as_mut().expect("server").kill();
    let again = log
        .next_event(&p, Position(1))
        .await
        .expect("answered from memory")
        .expect("an event");
    assert_eq!(again, first);
    let err = log
        .next_event(&p, last)
        .await
        .expect_err("never asked: needs the server");
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err}");
}

/// A retry the server's duplicate window no longer covers, with an expected
/// position many events old, is still recognised: the append looks through
/// the events after that position for its command id (the first few one by
/// one, the rest as a stream) and answers `Duplicate` with the original
/// position; a command never appended gets `Conflict` with the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_finds_an_old_retry_among_many_missed_events() {
    let server = NatsServer::start();
    let mut opts = JetStreamOptions::new(server.url());
    opts.duplicate_window = Duration::from_millis(200);
    let log = JetStreamLog::connect(opts).await.expect("connect");
    let p = project("old-retry");
    let mut positions = Vec::new();
    let mut last = Position::ZERO;
    for i in 0..30 {
        last = log
            .append(&p, last, approval(&format!("e{i}")))
            .await
            .expect("append")
            .position;
        positions.push(last);
    }
    // Past the server's own duplicate window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in [1, 8, 9, 15, 29] {
        match log
            .append(&p, positions[0], approval(&format!("e{i}")))
            .await
        {
            Err(LedgerError::Duplicate { original }) => assert_eq!(original, positions[i], "e{i}"),
            other => panic!("e{i}: expected a duplicate, got {other:?}"),
        }
    }
    match log.append(&p, positions[0], approval("never")).await {
        Err(LedgerError::Conflict { actual }) => assert_eq!(actual, last),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        log.last_position(&p).await.expect("head"),
        last,
        "nothing written"
    );
}

/// Reads whose requests the server does not answer in time (a stalled or
/// busy server: here one paused with SIGSTOP for longer than the request
/// timeout, shorter than three) ask again, and read everything once the
/// server answers: the whole log (stream info, then a consumer), one
/// project (its head first), a project's head and its next event (message
/// gets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_read_asks_again_when_the_server_answers_late() {
    let mut server = NatsServer::start();
    let mut opts = JetStreamOptions::new(server.url());
    opts.request_timeout = Duration::from_millis(500);
    let log = JetStreamLog::connect(opts).await.expect("connect");
    let last = append_n(&log, "stalled", 5, "s").await;
    let project = project("stalled");
    // A fresh connection, so that no head or event is known before the pause.
    let mut opts = JetStreamOptions::new(server.url());
    opts.request_timeout = Duration::from_millis(500);
    let log = JetStreamLog::connect(opts).await.expect("connect");
    server.pause();
    let whole = {
        let log = log.clone();
        tokio::spawn(async move { positions(log.read_all(Position(1)).await?).await })
    };
    let one_project = {
        let (log, project) = (log.clone(), project.clone());
        tokio::spawn(async move { positions(log.read_project(&project, Position(1)).await?).await })
    };
    let head = {
        let (log, project) = (log.clone(), project.clone());
        tokio::spawn(async move { log.project_head(&project).await })
    };
    let next = {
        let (log, project) = (log.clone(), project.clone());
        tokio::spawn(async move { log.next_event(&project, Position(2)).await })
    };
    // More than one timeout's worth, less than three.
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.resume();
    let within = Duration::from_secs(30);
    for (what, reading) in [("the whole log", whole), ("one project", one_project)] {
        let positions = tokio::time::timeout(within, reading)
            .await
            .expect("the read ends")
            .expect("the task")
            .unwrap_or_else(|e| panic!("{what}: the read fails after the server answered: {e}"));
        assert_eq!(positions.last(), Some(&last), "{what}: {positions:?}");
        assert_eq!(positions.len(), 5, "{what}: {positions:?}");
    }
    let head = tokio::time::timeout(within, head)
        .await
        .expect("the head read ends")
        .expect("the task")
        .expect("the project head is read once the server answers");
    assert_eq!((head.position, head.seq), (last, 5));
    let next = tokio::time::timeout(within, next)
        .await
        .expect("the event read ends")
        .expect("the task")
        .expect("the next event is read once the server answers")
        .expect("an event at or after position 2");
    assert_eq!(next.position, Position(2));
}

async fn positions(mut events: EventStream) -> Result<Vec<Position>, LedgerError> {
    let mut positions = Vec::new();
    while let Some(e) = events.next().await {
        positions.push(e?.position);
    }
    Ok(positions)
}
