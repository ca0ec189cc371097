//! Two `waybill serve` replicas on one NATS stream, each with its own read
//! models. Under a stream of commands to the first, the second is killed
//! with SIGKILL and started again mid-stream: it catches up, and once both
//! reflect the head their read models and Merkle trees are equal key by key.
//! A third replica signing with a key of its own warns of the other key.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{caught_up, read_models, waybill, Served};
use waybill_ledger::testing::NatsServer;
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;
use waybill_proto::v1::query_service_client::QueryServiceClient;

/// Commands in the stream; the replica is killed after `KILL_AT`.
const COMMANDS: usize = 300;
const KILL_AT: usize = 100;

fn serve(nats: &str, data: &Path, role: &[&str]) -> Served {
    Served::start(
        waybill()
            .args(["serve", "--nats", nats, "--insecure-dev", "--data-dir"])
            .arg(data)
            .args(role),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_stream_catches_up_to_the_same_read_models() {
    let nats = NatsServer::start();
    let url = nats.url();
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    // A takes the commands and signs checkpoints; B only reads.
    let a = serve(&url, a_dir.path(), &["--checkpoint-interval-secs", "1"]);
    let read_only = ["--no-reactors", "--no-checkpoints"];
    let mut b = serve(&url, b_dir.path(), &read_only);

    let mut c = CommandServiceClient::connect(a.endpoint())
        .await
        .expect("connect");
    let yaml = std::fs::read_to_string(common::EXAMPLE_PIPELINE).expect("pipeline");
    c.apply_pipeline(pb::ApplyPipelineRequest {
        yaml,
        ..Default::default()
    })
    .await
    .expect("apply");
    for i in 0..COMMANDS {
        let reply = c
            .record_discovery(common::discovery(&format!("1.{i}"), ""))
            .await
            .expect("discover");
        if i == KILL_AT {
            // Mid-stream: SIGKILL, then the same data dir again.
            let _ = b.child.kill();
            let _ = b.child.wait();
            drop(b);
            b = serve(&url, b_dir.path(), &read_only);
            assert!(reply.into_inner().position > 0);
        }
    }
    // Let the reactor and the checkpointer settle: the head stays put while
    // both replicas reflect it.
    let head = |endpoint: String| async move {
        QueryServiceClient::connect(endpoint)
            .await
            .expect("connect")
            .projection_status(pb::ProjectionStatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .head
    };
    let mut settled = false;
    for _ in 0..20 {
        let before = head(a.endpoint()).await;
        caught_up(a.endpoint(), Some(before)).await;
        caught_up(b.endpoint(), Some(before)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if head(a.endpoint()).await == before {
            settled = true;
            break;
        }
    }
    assert!(settled, "the log kept growing");
    assert!(a.terminate().success());
    let (status, b_log) = b.terminate_and_log();
    assert!(status.success());

    let (left, right) = (
        read_models(&a_dir.path().join("projections")),
        read_models(&b_dir.path().join("projections")),
    );
    assert!(left.len() > 1000, "{} keys", left.len());
    assert_eq!(left.len(), right.len(), "same number of keys");
    for (k, v) in &left {
        assert_eq!(
            right.get(k),
            Some(v),
            "key {:?} differs",
            String::from_utf8_lossy(k)
        );
    }

    // A replica that would sign with a key of its own (made in its data
    // dir) warns that the log's checkpoints are signed by A's key; B, which
    // signs nothing, did not.
    assert!(!b_log.contains("signed by another key"), "{b_log}");
    let c_dir = tempfile::tempdir().expect("c");
    let c = serve(&url, c_dir.path(), &["--no-reactors"]);
    c.wait_for_log("a checkpoint in the log is signed by another key than this server's");
    assert!(c.terminate().success());
}
