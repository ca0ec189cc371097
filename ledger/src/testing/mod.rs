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

mod nats_cluster;
mod nats_server;
mod probe;

pub use nats_cluster::NatsCluster;
pub use nats_server::{nats_server_bin, NatsServer, ServerOptions};
