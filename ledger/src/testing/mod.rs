//! Test harness: real `nats-server` processes for integration tests.
//!
//! Compiled only with the `test-harness` feature, so other crates' tests can use it
//! through a dev-dependency. Everything here is blocking (`std::process`); from an
//! async test call it inside `tokio::task::block_in_place` or `spawn_blocking`.
//!
//! - [`NatsServer`]: one JetStream node on free loopback ports with a temp store,
//!   killed on `Drop`; can be killed, stopped and restarted on the same store.
//! - [`NatsCluster`]: n clustered JetStream nodes, each a [`NatsServer`].
//! - [`nats_server_bin`]: which `nats-server` binary is used
//!   (`scripts/install-nats-server` installs the pinned one).
//! - [`mutable_jetstream`]: a log on a stream that allows deletes, for tests
//!   that tamper with it.

mod nats_cluster;
mod nats_server;
mod probe;

pub use nats_cluster::NatsCluster;
pub use nats_server::{nats_server_bin, NatsServer, ServerOptions};

use crate::{JetStreamLog, JetStreamOptions};

/// Creates the `WAYBILL` stream on the server at `url` without the deny
/// flags, so that a test can delete or re-publish messages behind Waybill's
/// back (through [`JetStreamLog::context`]), and opens a log that accepts it.
pub async fn mutable_jetstream(url: &str) -> JetStreamLog {
    use async_nats::jetstream::{self, stream};
    let client = async_nats::connect(url).await.expect("connect");
    jetstream::new(client)
        .create_stream(stream::Config {
            name: "WAYBILL".into(),
            subjects: vec!["waybill.>".into()],
            allow_direct: true,
            ..Default::default()
        })
        .await
        .expect("create test stream without deny flags");
    let mut opts = JetStreamOptions::new(url);
    opts.allow_mutable_stream = true;
    JetStreamLog::connect(opts).await.expect("connect")
}
