//! Health and reflection: `serve` on the embedded backend answers health
//! and lists its services by reflection; on JetStream health follows the
//! NATS server (and the stream was made immutable); a process whose read
//! models are behind the log is alive but not ready until they catch up.

use std::time::Duration;

use futures::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use waybill_ledger::testing::NatsServer;

use crate::common::{waybill, Served};
use crate::{discover, insecure_dev_on, service_health, wait_for_health};

async fn reflection_services(endpoint: &str) -> Vec<String> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect reflection");
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = replies.next().await.expect("a reply").expect("ok");
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_and_reflection_on_embedded_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let served = Served::start(waybill().args(["serve", "--data-dir"]).arg(&data));
    let endpoint = served.endpoint();
    wait_for_health(&endpoint, ServingStatus::Serving).await;
    let services = reflection_services(&endpoint).await;
    assert!(
        services.iter().any(|s| s == "grpc.health.v1.Health"),
        "{services:?}"
    );
    let status = served.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(
        data.join("db").exists(),
        "embedded store created in --data-dir"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_health_follows_the_server() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .args(["serve", "--nats", &nats.url(), "--data-dir"])
            .arg(dir.path()),
    );
    let endpoint = served.endpoint();
    wait_for_health(&endpoint, ServingStatus::Serving).await;

    // The stream was created immutable.
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let mut stream = async_nats::jetstream::new(client)
        .get_stream("WAYBILL")
        .await
        .expect("stream created by waybill");
    let info = stream.info().await.expect("info");
    assert!(info.config.deny_delete && info.config.deny_purge);
    assert_eq!(info.config.subjects, vec!["waybill.>".to_string()]);

    nats.kill();
    wait_for_health(&endpoint, ServingStatus::NotServing).await;
    nats.restart();
    wait_for_health(&endpoint, ServingStatus::Serving).await;
    assert!(served.terminate().success());
}

/// The stream changed under a running server so that NATS would discard
/// events (an age limit: NATS allows it on a stream that denies deletes):
/// health goes NOT_SERVING, every append is refused UNAVAILABLE with what
/// is wrong, and both come back once the limit is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_changed_to_discard_events_stops_appends_until_changed_back() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let served = insecure_dev_on(&nats, dir.path());
    let endpoint = served.endpoint();
    served.apply_example();
    wait_for_health(&endpoint, ServingStatus::Serving).await;

    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("WAYBILL").await.expect("stream");
    let mut config = stream.info().await.expect("info").config.clone();
    config.max_messages = 1_000;
    js.update_stream(config.clone()).await.expect("add a limit");
    wait_for_health(&endpoint, ServingStatus::NotServing).await;
    assert_eq!(
        service_health(&endpoint, "waybill.v1.CommandService").await,
        Some(ServingStatus::NotServing)
    );
    let head = stream.info().await.expect("info").state.last_sequence;
    let out = served.discover_cli("1.0");
    let said = crate::common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("Unavailable")
            && said.contains("age, size or count limit")
            && said.contains("nothing was written"),
        "{said}"
    );
    // Known not written: no advice on trying again safely.
    assert!(!said.contains("--idempotency-key"), "{said}");
    assert_eq!(stream.info().await.expect("info").state.last_sequence, head);
    assert!(
        served
            .log_so_far()
            .contains("no longer safe for an immutable ledger"),
        "{}",
        served.log_so_far()
    );

    config.max_messages = -1;
    js.update_stream(config).await.expect("limit removed");
    wait_for_health(&endpoint, ServingStatus::Serving).await;
    let out = served.discover_cli("1.0");
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    assert!(served.terminate().success());
}

/// An existing stream with fewer replicas than `--replicas` asks for is
/// used as it is (Waybill does not change it), with a warning that says how
/// to raise them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_replicas_than_asked_for_are_warned_of() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let served = insecure_dev_on(&nats, dir.path());
    assert!(served.terminate().success());
    let served = Served::start(
        waybill()
            .args([
                "serve",
                "--nats",
                &nats.url(),
                "--replicas",
                "3",
                "--data-dir",
            ])
            .arg(dir.path()),
    );
    served.wait_for_log("the stream has fewer replicas than --replicas asks for");
    assert!(served
        .log_so_far()
        .contains("nats stream edit WAYBILL --replicas 3"));
    wait_for_health(&served.endpoint(), ServingStatus::Serving).await;
    assert!(served.terminate().success());
}

/// The stream deleted under a running server: health NOT_SERVING, and the
/// log says what happened and what to do, not only "unreachable".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_is_reported_as_such() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let served = insecure_dev_on(&nats, dir.path());
    let endpoint = served.endpoint();
    wait_for_health(&endpoint, ServingStatus::Serving).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    async_nats::jetstream::new(client)
        .delete_stream("WAYBILL")
        .await
        .expect("delete the stream");
    wait_for_health(&endpoint, ServingStatus::NotServing).await;
    served.wait_for_log("is not on the NATS server (deleted?)");
    assert!(served.terminate().success());
}

/// A process whose read models are behind the log (a new replica, a pod on
/// a fresh volume) is alive but not ready: overall health and the query and
/// audit services stay NOT_SERVING until the read models reach the log's
/// head as it was at the start, so a load balancer does not send it queries
/// it would answer from an empty store. Liveness is SERVING throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_behind_the_log_keep_health_not_serving_until_they_catch_up() {
    use waybill_proto::v1 as pb;
    let dir = tempfile::tempdir().expect("tempdir");
    let start = || {
        Served::start(
            waybill()
                .args([
                    "serve",
                    "--insecure-dev",
                    "--no-reactors",
                    "--no-checkpoints",
                ])
                .arg("--data-dir")
                .arg(dir.path()),
        )
    };
    let served = start();
    served.apply_example();
    let mut last = 0;
    for i in 0..2_000 {
        last = discover(&served, &format!("1.{i}"), "").await.position;
    }
    assert!(served.terminate().success());
    std::fs::remove_dir_all(dir.path().join("projections")).expect("drop the read models");

    let served = start();
    let endpoint = served.endpoint();
    let mut queries = pb::query_service_client::QueryServiceClient::connect(endpoint.clone())
        .await
        .expect("connect");
    let mut polls = 0;
    loop {
        assert_eq!(
            service_health(&endpoint, "liveness").await,
            Some(ServingStatus::Serving)
        );
        let ready = service_health(&endpoint, "").await == Some(ServingStatus::Serving);
        let query_service = service_health(&endpoint, "waybill.v1.QueryService").await;
        let status = queries
            .projection_status(pb::ProjectionStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        if ready {
            assert_eq!(query_service, Some(ServingStatus::Serving));
            assert!(
                status.applied >= last,
                "ready with read models at {} of {last}",
                status.applied
            );
            break;
        }
        polls += 1;
        assert!(polls < 3_000, "never ready: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served.terminate().success());
}
