//! Tests of the nats-server test harness itself, against real servers.
#![cfg(feature = "test-harness")]

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use async_nats::connection::State;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use tokio::task::block_in_place;
use waybill_ledger::testing::{NatsCluster, NatsServer, ServerOptions};

/// Longest time one publish is retried while the cluster recovers from a killed node
/// (reconnect, then stream and meta leader elections, which take seconds).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between publish attempts, and between polls of the client's connection state.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

fn file_stream(name: &str, subject: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: vec![subject.to_owned()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    }
}

async fn stream_messages(js: &jetstream::Context, name: &str) -> anyhow::Result<u64> {
    let mut stream = js.get_stream(name).await?;
    Ok(stream.info().await?.state.messages)
}

#[tokio::test(flavor = "multi_thread")]
async fn single_node_keeps_acked_messages_across_kill_and_restart() -> anyhow::Result<()> {
    let mut server = block_in_place(NatsServer::start);
    let store_dir = server.store_dir().to_owned();

    let client = async_nats::connect(server.url()).await?;
    let js = jetstream::new(client);
    js.create_stream(file_stream("HARNESS", "harness.>", 1))
        .await?;
    let ack = js.publish("harness.one", "one".into()).await?.await?;
    assert_eq!(ack.sequence, 1);

    block_in_place(|| server.kill());
    assert!(!server.is_running());
    block_in_place(|| server.restart());
    assert!(server.is_running());

    let js = jetstream::new(async_nats::connect(server.url()).await?);
    assert_eq!(stream_messages(&js, "HARNESS").await?, 1);

    drop(js);
    drop(server);
    assert!(!store_dir.exists(), "the temp store is removed on drop");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn options_reach_the_config_and_stop_is_graceful() -> anyhow::Result<()> {
    let options = ServerOptions {
        sync_always: true,
        extra_config: "max_payload: 4096".to_owned(),
        binary: None,
        max_file_store: Some("64MB".into()),
    };
    let mut server = block_in_place(|| NatsServer::start_with(options));
    let config = std::fs::read_to_string(server.config_path())?;
    assert!(config.contains("sync_interval: always"), "{config}");
    assert!(config.contains("max_file_store: 64MB"), "{config}");

    let client = async_nats::connect(server.url()).await?;
    assert_eq!(client.server_info().max_payload, 4096);
    let js = jetstream::new(client);
    js.create_stream(file_stream("SYNCED", "synced.>", 1))
        .await?;
    js.publish("synced.one", "one".into()).await?.await?;

    block_in_place(|| server.stop());
    assert!(!server.is_running());
    let log = std::fs::read_to_string(server.log_path())?;
    assert!(
        log.contains("Server Exiting"),
        "graceful shutdown is logged:\n{log}"
    );

    block_in_place(|| server.restart());
    let js = jetstream::new(async_nats::connect(server.url()).await?);
    assert_eq!(stream_messages(&js, "SYNCED").await?, 1);
    Ok(())
}

/// Publishes with a message id (so a retried publish is not stored twice), retrying
/// for up to [`PUBLISH_TIMEOUT`] while the client reconnects and the stream elects a
/// new leader. Returns the number of attempts it took.
async fn publish_with_retry(
    client: &async_nats::Client,
    js: &jetstream::Context,
    subject: &str,
    id: &str,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + PUBLISH_TIMEOUT;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let message = PublishMessage::build()
            .payload(id.to_owned().into())
            .message_id(id);
        let ack = match js.send_publish(subject.to_owned(), message).await {
            Ok(ack) => ack.await,
            Err(err) => Err(err),
        };
        let err = match ack {
            Ok(_) => return Ok(attempts),
            Err(err) => err,
        };
        if Instant::now() >= deadline {
            bail!("publish {id} still failing after {attempts} attempts: {err}");
        }
        // A "no responders" answer is immediate while the stream has no leader: pace
        // the retries, and wait for the client to be connected before the next one.
        tokio::time::sleep(POLL_INTERVAL).await;
        while client.connection_state() != State::Connected && Instant::now() < deadline {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// The stream's current leader, as its info reports it.
async fn stream_leader(js: &jetstream::Context, name: &str) -> anyhow::Result<Option<String>> {
    let mut stream = js.get_stream(name).await?;
    let info = stream.info().await?;
    Ok(info.cluster.as_ref().and_then(|c| c.leader.clone()))
}

/// Moves the stream's leadership to `node`, asking the leader to step down (preferring
/// `node`) until `node` wins, so that killing `node` exercises a leader failover.
async fn move_stream_leader(
    client: &async_nats::Client,
    js: &jetstream::Context,
    name: &str,
    node: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + PUBLISH_TIMEOUT;
    let mut leader = stream_leader(js, name).await?;
    while leader.as_deref() != Some(node) {
        if Instant::now() >= deadline {
            bail!("stream {name} leader is {leader:?}, not {node}, after repeated step-downs");
        }
        if let Some(old) = leader.clone() {
            let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{name}");
            let request = format!(r#"{{"placement":{{"preferred":"{node}"}}}}"#);
            client.request(subject, request.into()).await?;
            // Wait for the step-down to show before deciding whether to ask again.
            while leader.as_deref() == Some(old.as_str()) && Instant::now() < deadline {
                tokio::time::sleep(POLL_INTERVAL).await;
                leader = stream_leader(js, name).await.ok().flatten();
            }
        }
        if leader.is_none() {
            tokio::time::sleep(POLL_INTERVAL).await;
            leader = stream_leader(js, name).await.ok().flatten();
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_keeps_replicated_stream_through_node_kill_and_restart() -> anyhow::Result<()> {
    let mut cluster = block_in_place(|| NatsCluster::start(3));
    assert_eq!(cluster.len(), 3);
    assert_eq!(cluster.url_list().split(',').count(), 3);

    let client = async_nats::connect(cluster.urls()).await?;
    let js = jetstream::new(client.clone());
    js.create_stream(file_stream("REPLICATED", "replicated.>", 3))
        .await?;
    for i in 0..10 {
        publish_with_retry(&client, &js, "replicated.before", &format!("before-{i}")).await?;
    }

    let killed = cluster.node(0).name().to_owned();
    move_stream_leader(&client, &js, "REPLICATED", &killed).await?;
    block_in_place(|| cluster.kill(0));
    assert!(!cluster.node_mut(0).is_running());
    let started = Instant::now();
    for i in 0..10 {
        let attempts =
            publish_with_retry(&client, &js, "replicated.during", &format!("during-{i}"))
                .await
                .with_context(|| format!("publishing with the stream leader {killed} down"))?;
        eprintln!(
            "during-{i}: {attempts} attempt(s), {:?} since kill",
            started.elapsed()
        );
    }

    block_in_place(|| cluster.restart(0));
    assert!(cluster.node_mut(0).is_running());
    assert_eq!(stream_messages(&js, "REPLICATED").await?, 20);
    Ok(())
}
