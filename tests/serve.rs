//! `waybill serve`: the gRPC endpoint comes up on either backend, reports
//! health (following the log's reachability), offers reflection, and stops
//! cleanly on SIGTERM.

mod common;

use std::time::Duration;

use common::{run, stderr, waybill, Served};
use futures::StreamExt;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use waybill_ledger::testing::NatsServer;

/// The server's overall health status (`None`: no answer).
async fn health(endpoint: &str) -> Option<ServingStatus> {
    service_health(endpoint, "").await
}

async fn wait_for_health(endpoint: &str, want: ServingStatus) {
    for _ in 0..300 {
        if health(endpoint).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("health never became {want:?}");
}

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
async fn data_dir_comes_from_the_environment_or_a_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from_env = dir.path().join("from-env");
    let served = Served::start(waybill().env("WAYBILL_DATA_DIR", &from_env).arg("serve"));
    wait_for_health(&served.endpoint(), ServingStatus::Serving).await;
    assert!(served.terminate().success());
    assert!(from_env.join("db").exists());

    let from_file = dir.path().join("from-file");
    let config = dir.path().join("waybill.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n", from_file)).expect("write config");
    let served = Served::start(waybill().arg("--config").arg(&config).arg("serve"));
    wait_for_health(&served.endpoint(), ServingStatus::Serving).await;
    assert!(served.terminate().success());
    assert!(from_file.join("db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_come_from_the_environment_and_the_log_is_plain_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .env("WAYBILL_INSECURE_DEV", "1")
            .env("WAYBILL_NO_REACTORS", "yes")
            .env("WAYBILL_NO_CHECKPOINTS", "true")
            .env("WAYBILL_LOG", "info")
            .args(["serve", "--data-dir"])
            .arg(dir.path()),
    );
    wait_for_health(&served.endpoint(), ServingStatus::Serving).await;
    let log = served.kill_and_log();
    assert!(log.contains("INSECURE DEV MODE"), "{log}");
    // Not also told that every request will be refused, nor, on loopback,
    // that other machines may reach it.
    assert!(!log.contains("will be refused"), "{log}");
    assert!(!log.contains("other machines"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("serving gRPC") && l.ends_with("roles=commands,queries")),
        "{log}"
    );
    assert!(!log.contains("signing checkpoints"), "{log}");
    assert!(!dir.path().join("signing.key").exists());
    // stderr is a pipe here, as under systemd or in a container.
    assert!(!log.contains('\u{1b}'), "terminal escape codes in {log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_can_be_json_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .env("WAYBILL_LOG", "info")
            .args([
                "serve",
                "--insecure-dev",
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(dir.path()),
    );
    wait_for_health(&served.endpoint(), ServingStatus::Serving).await;
    let served_addr = served.addr.to_string();
    let log = served.kill_and_log();
    let mut serving = None;
    let mut listening = None;
    // Every line, the address line included, is one JSON object.
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["fields"]["message"] == "serving gRPC" {
            serving = Some(v);
        } else if v["fields"]["addr"].is_string() {
            listening = Some(v);
        }
    }
    let serving = serving.unwrap_or_else(|| panic!("no 'serving gRPC' in {log}"));
    assert_eq!(serving["fields"]["backend"], "embedded", "{serving}");
    let listening = listening.unwrap_or_else(|| panic!("no address line in {log}"));
    assert_eq!(listening["fields"]["addr"], served_addr, "{listening}");

    // A server that cannot start says why as JSON too.
    let out = waybill()
        .args([
            "serve",
            "--log-format",
            "json",
            "--listen",
            "192.0.2.1:1",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run waybill serve");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(v["level"], "ERROR", "{v}");
    assert!(
        v["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("192.0.2.1")),
        "{v}"
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

/// A client that cannot reach its server says where it tried and why (the
/// operating system's reason, not only tonic's "transport error"), exits 2,
/// and takes `HOST:PORT` as well as a URL.
#[test]
fn an_unreachable_server_is_named_with_the_reason() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    for server in [
        format!("127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}"),
    ] {
        let out = run(&["status", "-p", "shop", "--server", &server]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "cannot reach the Waybill server at http://127.0.0.1:{port}"
            )) && err.to_lowercase().contains("connection refused"),
            "{err}"
        );
    }
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "colour = \"blue\"\n").expect("write");
    let out = run(&["--config", config.to_str().expect("utf8"), "serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.toml") && err.contains("colour"), "{err}");

    let out = run(&[
        "serve",
        "--nats",
        "nats://127.0.0.1:1",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot connect to NATS"),
        "{}",
        stderr(&out)
    );

    // A bad setting is named even when the port is in use too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let out = run(&[
        "serve",
        "--listen",
        &listen,
        "--nats",
        "nats://x:4222",
        "--replicas",
        "7",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("replicas"), "{}", stderr(&out));

    // A budget of no events, from the config file (the flag's parser
    // refuses it too), is refused before anything is opened.
    let config = dir.path().join("zero.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "command_cache_records = 0\ndata_dir = {:?}\n",
            data.to_str().expect("utf8")
        ),
    )
    .expect("write");
    let out = run(&["--config", config.to_str().expect("utf8"), "serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("command_cache_records must be at least 1"),
        "{}",
        stderr(&out)
    );
    assert!(
        !data.exists(),
        "nothing is created for a refused configuration"
    );

    // A port in use: refused before the data dir or a signing key is made.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let data_arg = data.to_str().expect("utf8");
    let out = run(&["serve", "--listen", &addr, "--data-dir", data_arg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("cannot listen on {addr}")),
        "{}",
        stderr(&out)
    );
    assert!(!data.exists(), "nothing is created when the port is taken");
}

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

/// The health status of one service (`None`: no answer).
async fn service_health(endpoint: &str, service: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .ok()?
        .connect()
        .await
        .ok()?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(reply.into_inner().status).ok()
}

/// A commands-only and a queries-only process on one JetStream stream: each
/// serves its own services only (the others are UNIMPLEMENTED and unknown to
/// health), and together they do what one `waybill serve` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_split_commands_and_queries_across_processes() {
    use waybill_proto::v1 as pb;
    let nats = NatsServer::start();
    let (cdir, qdir) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let commands = Served::start(
        waybill()
            .args(["serve", "--insecure-dev", "--roles", "commands"])
            .args(["--nats", &nats.url(), "--data-dir"])
            .arg(cdir.path()),
    );
    let queries = Served::start(
        waybill()
            .args([
                "serve",
                "--insecure-dev",
                "--nats",
                &nats.url(),
                "--data-dir",
            ])
            .arg(qdir.path())
            .env("WAYBILL_ROLES", "queries"),
    );
    let (c, q) = (commands.endpoint(), queries.endpoint());
    // `None`: health does not know the service (NOT_FOUND).
    let serving = Some(ServingStatus::Serving);
    for (endpoint, service, want) in [
        (&c, "waybill.v1.CommandService", serving),
        (&c, "waybill.v1.QueryService", None),
        (&c, "waybill.v1.AuditService", None),
        (&q, "waybill.v1.CommandService", None),
        (&q, "waybill.v1.QueryService", serving),
        (&q, "waybill.v1.AuditService", serving),
    ] {
        // The query side reports SERVING once its (empty) read models have
        // caught up with the log, a moment after the start.
        let mut got = service_health(endpoint, service).await;
        for _ in 0..500 {
            if got == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            got = service_health(endpoint, service).await;
        }
        assert_eq!(got, want, "{service} at {endpoint}");
    }
    // The commands process keeps no read models, and signs nothing: it
    // makes no signing key and says nothing about one.
    assert!(!cdir.path().join("projections").exists());
    assert!(!cdir.path().join("signing.key").exists());
    assert!(qdir.path().join("signing.key").exists());
    assert!(!commands.log_so_far().contains("signing key"));
    // A read sent to it says why it is refused, and what to do.
    let out = run(&["status", "-p", "shop", "--server", &c]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not serve that call"),
        "{}",
        stderr(&out)
    );

    commands.apply_example();
    let mut cmd = pb::command_service_client::CommandServiceClient::connect(c.clone())
        .await
        .expect("connect");
    let reply = cmd
        .record_discovery(common::discovery("1.0", ""))
        .await
        .expect("discovery")
        .into_inner();
    let mut query = pb::query_service_client::QueryServiceClient::connect(q.clone())
        .await
        .expect("connect");
    let freight = query
        .get_freight(pb::GetFreightRequest {
            project: "shop".into(),
            freight: reply.freight_id.clone(),
            min_position: reply.position,
        })
        .await
        .expect("the queries process reflects the commands process's append")
        .into_inner();
    assert!(freight.position >= reply.position);

    // Each refuses the other's services.
    let unimplemented = pb::query_service_client::QueryServiceClient::connect(c.clone())
        .await
        .expect("connect")
        .list_stages(pb::ListStagesRequest {
            project: "shop".into(),
            min_position: 0,
        })
        .await
        .expect_err("no queries on the commands process");
    assert_eq!(unimplemented.code(), tonic::Code::Unimplemented);
    let unimplemented = pb::command_service_client::CommandServiceClient::connect(q.clone())
        .await
        .expect("connect")
        .record_discovery(common::discovery("1.1", ""))
        .await
        .expect_err("no commands on the queries process");
    assert_eq!(unimplemented.code(), tonic::Code::Unimplemented);

    // Roles that leave nothing to run are refused before anything starts.
    let out = run(&["serve", "--roles", "reactors", "--no-reactors"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nothing to run"), "{}", stderr(&out));
    let out = run(&["serve", "--roles", "everything"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("everything"), "{}", stderr(&out));
    assert!(commands.terminate().success());
    assert!(queries.terminate().success());
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

/// Records `ghcr.io/acme/shop:<tag>` in project `shop` on `served`, with
/// idempotency key `key`.
async fn discover(served: &Served, tag: &str, key: &str) -> waybill_proto::v1::CommandReply {
    use waybill_proto::v1::command_service_client::CommandServiceClient;
    CommandServiceClient::connect(served.endpoint())
        .await
        .expect("connect")
        .record_discovery(common::discovery(tag, key))
        .await
        .expect("discover")
        .into_inner()
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
        waybill()
            .env("WAYBILL_LOG", "info")
            .args([
                "serve",
                "--insecure-dev",
                "--no-reactors",
                "--nats",
                &nats.url(),
                "--data-dir",
            ])
            .arg(dir.path()),
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
