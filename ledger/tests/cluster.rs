//! The JetStream backend on a 3-node cluster with an R3 stream: racing writers
//! stay linearizable per project, and killing the stream leader loses no
//! acknowledged append; brought back, the node catches up. A tail goes on
//! when the node of its consumer is killed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use waybill_ledger::event::PromotionApproved;
use waybill_ledger::testing::NatsCluster;
use waybill_ledger::{
    verify_log, Actor, EventLog, EventPayload, JetStreamLog, JetStreamOptions, LedgerError,
    NewEvent, Position, ProjectName,
};

fn approval(command_id: &str) -> NewEvent {
    NewEvent::new(
        EventPayload::PromotionApproved(PromotionApproved {
            promotion_id: "p".into(),
            comment: command_id.into(),
        }),
        Actor::service("cluster-test"),
        command_id,
    )
}

/// Appends until acknowledged: conflicts re-read, outages wait (bounded).
async fn append_until_acked(log: &dyn EventLog, p: &ProjectName, cmd: &str) -> Position {
    for _ in 0..600 {
        let expected = match log.last_position(p).await {
            Ok(pos) => pos,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match log.append(p, expected, approval(cmd)).await {
            Ok(a) => return a.position,
            Err(LedgerError::Duplicate { original }) => return original,
            Err(LedgerError::Conflict { .. }) => {}
            Err(LedgerError::Unavailable(_)) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{cmd}: {e}"),
        }
    }
    panic!("{cmd}: never acknowledged");
}

/// What the node whose monitoring port is `http` says of its streams and
/// consumers (`/jsz`): `account_details[].stream_detail[]`.
fn stream_details(http: u16) -> Option<Vec<serde_json::Value>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).ok()?;
    s.write_all(b"GET /jsz?streams=true&consumers=true HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = &text[text.find("\r\n\r\n")? + 4..];
    let jsz: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(
        jsz["account_details"]
            .as_array()?
            .iter()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .collect(),
    )
}

/// The last sequence of `stream` in the replica on the node whose
/// monitoring port is `http`.
fn replica_last_seq(http: u16, stream: &str) -> Option<u64> {
    stream_details(http)?
        .into_iter()
        .find(|d| d["name"] == stream)
        .and_then(|d| d["state"]["last_seq"].as_u64())
}

/// The nodes that lead a consumer of `stream`, as the node whose
/// monitoring port is `http` knows them.
fn consumer_leaders(http: u16, stream: &str) -> Vec<String> {
    let details = stream_details(http).unwrap_or_default();
    details
        .iter()
        .filter(|d| d["name"] == stream)
        .flat_map(|d| d["consumer_detail"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["cluster"]["leader"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r3_stream_survives_the_leader_being_killed() {
    let mut cluster = NatsCluster::start(3);
    let mut opts = JetStreamOptions::new(cluster.url_list());
    opts.replicas = 3;
    let log: Arc<dyn EventLog> = Arc::new(JetStreamLog::connect(opts).await.expect("connect"));

    // Four writers race on two projects.
    let projects = [
        ProjectName::project("one").expect("name"),
        ProjectName::project("two").expect("name"),
    ];
    let mut acked = BTreeMap::new();
    let round = |from: usize, to: usize| {
        let mut tasks = Vec::new();
        for w in 0..4 {
            let log = log.clone();
            let p = projects[w % 2].clone();
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for i in from..to {
                    let cmd = format!("w{w}-{i}");
                    out.push((append_until_acked(&*log, &p, &cmd).await, cmd));
                }
                out
            }));
        }
        tasks
    };
    for t in round(0, 25) {
        acked.extend(t.await.expect("writer"));
    }

    // Kill whichever node leads the stream, keep writing, bring it back.
    let client = async_nats::connect(cluster.urls()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    // A request can time out on a loaded machine while the cluster settles
    // (seen once in CI): ask again, for up to a minute.
    let mut info = None;
    for attempt in 1..=6 {
        let asked = match js.get_stream("WAYBILL").await {
            Ok(mut stream) => stream.info().await.cloned().map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match asked {
            Ok(i) => {
                info = Some(i);
                break;
            }
            Err(e) if attempt < 6 => {
                eprintln!("stream info, attempt {attempt}: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("stream info: {e}"),
        }
    }
    let info = info.expect("stream info");
    let leader = info.cluster.and_then(|c| c.leader).expect("a leader");
    let index = (0..cluster.len())
        .find(|i| cluster.node(*i).name() == leader)
        .expect("leader is one of ours");
    cluster.kill(index);
    for t in round(25, 50) {
        acked.extend(t.await.expect("writer"));
    }
    cluster.restart(index);
    // The node that was killed catches up: its replica reaches the head.
    let http = cluster.node(index).http_port();
    let mut caught_up = false;
    for _ in 0..300 {
        if replica_last_seq(http, "WAYBILL") == Some(200) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the restarted node did not catch up");

    let mut stored = BTreeMap::new();
    let mut events = log.read_all(Position(1)).await.expect("read");
    while let Some(ev) = events.next().await {
        let ev = ev.expect("event");
        stored.insert(ev.position, ev.event.command_id.clone());
    }
    assert_eq!(acked.len(), 200);
    for (pos, cmd) in &acked {
        assert_eq!(
            stored.get(pos),
            Some(cmd),
            "acknowledged {cmd} at {pos} lost"
        );
    }
    assert_eq!(stored.len(), 200, "every command exactly once");
    let report = verify_log(&*log, None, |_| {}).await.expect("verify");
    assert!(report.first_break.is_none(), "{:?}", report.first_break);
    assert_eq!(report.heads.values().map(|h| h.seq).sum::<u64>(), 200);
}

/// A copy into an R3 stream created a moment before (`waybill copy
/// --to-replicas 3`) lands every record at its position. (A batch that finds
/// no leader yet is published again, as an append is; this test has not
/// been seen to provoke that window: three runs passed without the retry.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_into_a_new_r3_stream_lands_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = waybill_ledger::SledLog::open(dir.path()).expect("open sled");
    let p = ProjectName::project("copied").expect("name");
    let mut head = Position::ZERO;
    for i in 0..300 {
        head = source
            .append(&p, head, approval(&format!("c{i}")))
            .await
            .expect("append")
            .position;
    }
    let mut records = Vec::new();
    let mut all = source.read_all(Position(1)).await.expect("read");
    while let Some(ev) = all.next().await {
        records.push(ev.expect("event"));
    }

    let cluster = NatsCluster::start(3);
    let mut opts = JetStreamOptions::new(cluster.url_list());
    opts.replicas = 3;
    let target = JetStreamLog::connect(opts).await.expect("connect");
    for chunk in records.chunks(128) {
        let last = target.append_copies(chunk).await.expect("copy");
        assert_eq!(last, chunk[chunk.len() - 1].position);
    }
    let report = verify_log(&target, None, |_| {}).await.expect("verify");
    assert!(report.first_break.is_none(), "{:?}", report.first_break);
    assert_eq!(report.events, 300);
    assert_eq!(
        target.project_head(&p).await.expect("head"),
        source.project_head(&p).await.expect("head")
    );
}

/// A tail whose consumer's node is killed, with the connection it reads
/// through, goes on from where it was once a new consumer is made.
/// (async-nats 0.51's ordered consumer, waited on alone, noticed only one of
/// the two missed heartbeats it needs while its client reconnected, and
/// stayed put for about 45 s: long past the bound below, which is there to
/// fail rather than hang.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_goes_on_when_the_node_of_its_consumer_is_killed() {
    let mut cluster = NatsCluster::start(3);
    // Connected to node 0 (the client learns the others from it).
    let mut opts = JetStreamOptions::new(cluster.node(0).url());
    opts.replicas = 3;
    let log = JetStreamLog::connect(opts).await.expect("connect");
    let p = ProjectName::project("tailed").expect("name");
    append_until_acked(&log, &p, "before").await;
    let consumers = |cluster: &NatsCluster| -> Vec<String> {
        (0..cluster.len())
            .flat_map(|i| consumer_leaders(cluster.node(i).http_port(), "WAYBILL"))
            .collect()
    };

    // A tail whose consumer (R1, placed on one of the three nodes) is on
    // node 0 too: tails are opened until one is.
    let mut found = None;
    for _ in 0..30 {
        let mut tail = log.tail(Position(1)).await.expect("tail");
        let first = tail.next().await.expect("an event").expect("a record");
        assert_eq!(first.event.command_id, "before");
        let mut leaders = consumers(&cluster);
        for _ in 0..50 {
            if !leaders.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            leaders = consumers(&cluster);
        }
        assert_eq!(leaders.len(), 1, "the tail's consumer alone: {leaders:?}");
        if leaders[0] == cluster.node(0).name() {
            found = Some((tail, first));
            break;
        }
        // Closed, the tail deletes its consumer.
        drop(tail);
        for _ in 0..50 {
            if consumers(&cluster).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (mut tail, first) = found.expect("a tail's consumer on node 0 in 30 tries");
    cluster.kill(0);

    append_until_acked(&log, &p, "after").await;
    let next = tokio::time::timeout(Duration::from_secs(30), tail.next())
        .await
        .expect("the tail is stuck on the consumer of the killed node")
        .expect("an event")
        .expect("a record");
    assert_eq!(next.event.command_id, "after");
    assert_eq!(next.position, first.position.next());
    cluster.restart(0);
}
