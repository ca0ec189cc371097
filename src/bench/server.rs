//! The NATS server under test: one spawned for the run, or an existing one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, Context};
use async_nats::Event;
use tokio::sync::Notify;
use waybill_ledger::testing::{NatsCluster, NatsServer, ServerOptions};
use waybill_ledger::{JetStreamLog, JetStreamOptions};

/// Timeout of JetStream requests, generous so that a slow fsync is measured,
/// not reported as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `close` waits for the drained connection to close before it
/// stops the spawned server anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the run spawned, held until the run ends (dropping it kills it).
#[derive(Debug)]
enum Spawned {
    Node { _server: NatsServer },
    Cluster { _nodes: NatsCluster },
}

/// Where the benchmark's streams live.
#[derive(Debug)]
pub struct Target {
    /// The spawned server or cluster (killed on `close`), or `None` for `--nats`.
    spawned: Option<Spawned>,
    /// Replicas of every stream the run creates.
    replicas: usize,
    url: String,
    client: async_nats::Client,
    js: Context,
    /// Notified when the connection has closed after a drain.
    closed: Arc<Notify>,
    /// Streams to delete on an existing server when the run ends.
    created: Vec<String>,
}

impl Target {
    /// Connects to `url`, or spawns a server on a free port with a temp
    /// store; with `cluster`, spawns a 3-node cluster and creates every
    /// stream with 3 replicas.
    pub async fn open_with(
        url: Option<String>,
        sync_always: bool,
        cluster: bool,
    ) -> anyhow::Result<Target> {
        let replicas = if cluster { 3 } else { 1 };
        let (spawned, url) = match url {
            Some(url) => (None, url),
            None if cluster => {
                let options = ServerOptions {
                    sync_always,
                    ..ServerOptions::default()
                };
                let nodes =
                    tokio::task::spawn_blocking(move || NatsCluster::start_with(3, options))
                        .await
                        .context("the nats-server cluster did not start (see the message above)")?;
                let url = nodes.url_list();
                (Some(Spawned::Cluster { _nodes: nodes }), url)
            }
            None => {
                let options = ServerOptions {
                    sync_always,
                    ..ServerOptions::default()
                };
                // The harness blocks while it polls for readiness, and panics
                // (with the server's log tail) when the server does not start.
                let server = tokio::task::spawn_blocking(move || NatsServer::start_with(options))
                    .await
                    .context("nats-server did not start (see the message above)")?;
                let url = server.url();
                (Some(Spawned::Node { _server: server }), url)
            }
        };
        let closed = Arc::new(Notify::new());
        let on_close = Arc::clone(&closed);
        let client = async_nats::ConnectOptions::new()
            .name("waybill-bench-raw")
            .request_timeout(Some(REQUEST_TIMEOUT))
            .event_callback(move |event| {
                let on_close = Arc::clone(&on_close);
                async move {
                    match event {
                        Event::Closed => on_close.notify_one(),
                        other => tracing::debug!(event = %other, "bench connection"),
                    }
                }
            })
            .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        Ok(Target {
            spawned,
            replicas,
            url,
            client,
            js,
            closed,
            created: Vec::new(),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the server was spawned for this run.
    pub fn spawned(&self) -> bool {
        self.spawned.is_some()
    }

    /// Replicas of the run's streams.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// The server's version, as it announced itself.
    pub fn version(&self) -> String {
        self.client.server_info().version
    }

    /// The raw JetStream context (its own connection).
    pub fn context(&self) -> &Context {
        &self.js
    }

    /// Remembers a stream to delete at the end of the run.
    /// Leaves the streams made so far in place when closing.
    pub fn keep_streams(&mut self) {
        self.created.clear();
    }

    pub fn track(&mut self, stream: &str) {
        self.created.push(stream.to_string());
    }

    /// Opens a Waybill log on its own stream and subject prefix (its own
    /// connection, as a Waybill process would have).
    pub async fn waybill_log(
        &mut self,
        stream: String,
        subject_prefix: String,
    ) -> anyhow::Result<JetStreamLog> {
        self.track(&stream);
        let opts = JetStreamOptions {
            stream,
            subject_prefix,
            request_timeout: REQUEST_TIMEOUT,
            replicas: self.replicas,
            ..JetStreamOptions::new(self.url.clone())
        };
        Ok(JetStreamLog::connect(opts).await?)
    }

    /// Deletes the run's streams from an existing server, or kills the
    /// spawned one (its temp store goes with it).
    pub async fn close(mut self) {
        if self.spawned.is_none() {
            for stream in &self.created {
                if let Err(e) = self.js.delete_stream(stream).await {
                    tracing::warn!(stream = %stream, error = %e, "cannot delete bench stream");
                }
            }
        }
        // Wait for the connection to close, so that stopping the server does
        // not look like a failure.
        match self.client.drain().await {
            Ok(()) => {
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, self.closed.notified()).await;
            }
            Err(e) => tracing::debug!(error = %e, "draining the bench connection failed"),
        }
        if let Some(server) = self.spawned.take() {
            let _ = tokio::task::spawn_blocking(move || drop(server)).await;
        }
    }
}
