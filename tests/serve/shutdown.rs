//! Stopping: SIGTERM stops the server cleanly right after its start, with
//! a client that never closes, and with its NATS gone; the command state
//! saved at a clean shutdown is taken back at the next start, and a killed
//! server leaves none.

use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use waybill_ledger::testing::NatsServer;

use crate::common::{waybill, Served};
use crate::{discover, insecure_dev_cmd};

#[test]
fn a_client_that_never_closes_does_not_hold_the_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .args(["serve", "--insecure-dev", "--no-checkpoints", "--data-dir"])
            .arg(dir.path()),
    );
    // A client makes a call, then its runtime is never polled again: its
    // connection stays open and never answers the server's GOAWAY.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let endpoint = served.endpoint();
    rt.block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(endpoint)
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut health = HealthClient::new(channel);
        health
            .check(HealthCheckRequest::default())
            .await
            .expect("check");
        std::mem::forget(health);
    });
    // SIGTERM: the server stops after its grace period anyway.
    assert!(served.terminate().success());
    drop(rt);
}

/// A clean shutdown saves the command service's project states; the next
/// start takes them back instead of folding each project's log, and goes
/// on from there. A killed server leaves nothing to take back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_clean_shutdown_takes_the_command_state_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let start = || {
        Served::start(
            waybill()
                .env("WAYBILL_LOG", "info,waybill_commands::handler=debug")
                .args(["serve", "--insecure-dev", "--no-reactors", "--data-dir"])
                .arg(&data),
        )
    };
    let served = start();
    served.apply_example();
    let first = discover(&served, "1.0", "d1").await;
    let (status, log) = served.terminate_and_log();
    assert!(status.success(), "{log}");
    assert!(log.contains("saved the command state projects=1"), "{log}");

    let served = start();
    let second = discover(&served, "2.0", "d2").await;
    assert!(second.position > first.position);
    let retry = discover(&served, "1.0", "d1").await;
    assert_eq!(
        (retry.event_id, retry.position),
        (first.event_id, first.position)
    );
    let log = served.kill_and_log();
    assert!(
        log.contains("kept the command state of the last clean shutdown projects=1"),
        "{log}"
    );
    assert!(log.contains("took back the saved command state"), "{log}");

    // Killed, so not saved: the next start folds the log again.
    let served = start();
    discover(&served, "3.0", "d3").await;
    let log = served.kill_and_log();
    assert!(!log.contains("kept the command state"), "{log}");
    assert!(!log.contains("took back"), "{log}");
}

/// A server whose NATS is gone still stops cleanly on SIGTERM: saving the
/// command state gives up at the first project it cannot check against the
/// log, instead of waiting on every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_nats_is_gone_still_stops_and_saves_what_it_can() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        insecure_dev_cmd(&nats, dir.path())
            .env("WAYBILL_LOG", "info")
            .arg("--no-reactors"),
    );
    served.apply_example();
    nats.kill();
    let (status, log) = served.terminate_and_log();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("cannot read the log to save the command state"),
        "{log}"
    );
    assert!(log.contains("saved the command state projects=0"), "{log}");
}

/// SIGTERM right after the server says where it listens (before it has
/// served anything) stops it cleanly. (The race this guards, a SIGTERM
/// between the first request and tonic's first look at its shutdown
/// future, is too narrow to provoke from a test; this checks the earliest
/// moment a test can reach.)
#[test]
fn a_sigterm_right_after_start_stops_the_server_cleanly() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let served = Served::start(
            waybill()
                .env("WAYBILL_LOG", "info")
                .args(["serve", "--insecure-dev", "--data-dir"])
                .arg(dir.path()),
        );
        let (status, log) = served.terminate_and_log();
        assert!(status.success(), "{status:?}\n{log}");
        assert!(log.contains("shutdown requested"), "{log}");
    }
}

/// A server whose read models can no longer be written (here the kernel
/// refuses to let its files grow past 4 MiB, as a full disk would) stops,
/// with a non-zero status and a message saying why and what to do, rather
/// than answer queries from read models that no longer move. Every
/// discovery it acknowledged is in the log (on NATS, which has no such
/// limit), and started again without the limit it catches up on all of
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_store_fails_stops_and_loses_nothing() {
    use waybill_proto::v1::command_service_client::CommandServiceClient;

    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // `trap '' XFSZ`: a write past the limit fails (EFBIG) instead of
    // killing the process; both carry over the exec.
    let mut limited = std::process::Command::new("sh");
    limited
        .env("WAYBILL_LOG", "warn")
        .args(["-c", "trap '' XFSZ; ulimit -f 8192; exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_waybill"))
        .args([
            "serve",
            "--insecure-dev",
            "--no-reactors",
            "--nats",
            &nats.url(),
            "--data-dir",
        ])
        .arg(dir.path());
    for var in ["WAYBILL_DATA_DIR", "WAYBILL_NATS_URL", "WAYBILL_CONFIG"] {
        limited.env_remove(var);
    }
    let mut served = Served::start(&mut limited);
    served.apply_example();
    let mut commands = CommandServiceClient::new(served.channel().await);
    let mut acknowledged = 0u64;
    let mut status = None;
    for i in 0..20_000 {
        match commands
            .record_discovery(crate::common::discovery(&format!("1.{i}"), ""))
            .await
        {
            Ok(_) => acknowledged += 1,
            Err(_) => {
                status = Some(served.child.wait().expect("wait"));
                break;
            }
        }
    }
    let status = status.expect("the server stopped once its store could not grow");
    let log = served.log_so_far();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("File too large"), "{log}");
    assert!(log.contains("stopping the server"), "{log}");
    assert!(
        log.contains("the server stopped (nothing recorded is lost"),
        "{log}"
    );
    assert!(acknowledged > 0, "{log}");
    drop(served);

    // Without the limit: every acknowledged discovery is there.
    let served = Served::start(insecure_dev_cmd(&nats, dir.path()).arg("--no-reactors"));
    crate::common::caught_up(served.endpoint(), None).await;
    let mut queries =
        waybill_proto::v1::query_service_client::QueryServiceClient::new(served.channel().await);
    let mut found = 0u64;
    let mut page_token = String::new();
    loop {
        let page = queries
            .list_freight(waybill_proto::v1::ListFreightRequest {
                project: "shop".into(),
                page_token,
                ..Default::default()
            })
            .await
            .expect("list freight")
            .into_inner();
        found += page.freight.len() as u64;
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    // The call that failed may have been recorded before the server went.
    assert!(
        found == acknowledged || found == acknowledged + 1,
        "{found} freight for {acknowledged} acknowledged discoveries"
    );
}
