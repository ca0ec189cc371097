//! A cluster of `nats-server` JetStream nodes on loopback.

use super::nats_server::{ClusterSpec, NatsServer, NodeSpec, ServerOptions};
use super::probe::free_ports;

/// `n` clustered JetStream nodes named `n1..nN`, each with its own client, cluster and
/// monitoring port and its own store. Dropping it kills every node.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` nodes with default options and waits until all are ready.
    pub fn start(n: usize) -> NatsCluster {
        NatsCluster::start_with(n, ServerOptions::default())
    }

    /// Starts `n` nodes and waits until each answers `/healthz` with 200 and knows the
    /// JetStream meta leader.
    ///
    /// # Panics
    ///
    /// When `n` is 0, or a node exits or is not ready within 30 s (the message has its
    /// log tail).
    pub fn start_with(n: usize, options: ServerOptions) -> NatsCluster {
        assert!(n > 0, "a cluster needs at least one node");
        // Per node: client, monitoring and cluster port.
        let ports = free_ports(3 * n);
        let routes: Vec<u16> = ports.chunks(3).map(|p| p[2]).collect();
        let nodes: Vec<NatsServer> = ports
            .chunks(3)
            .enumerate()
            .map(|(i, p)| {
                NatsServer::launch(&NodeSpec {
                    name: format!("n{}", i + 1),
                    port: p[0],
                    http_port: p[1],
                    cluster: Some(ClusterSpec {
                        port: p[2],
                        routes: routes.clone(),
                    }),
                    options: &options,
                })
            })
            .collect();
        let mut cluster = NatsCluster { nodes };
        // All nodes run before any wait: a meta leader needs a quorum.
        for node in &mut cluster.nodes {
            node.wait_ready();
        }
        cluster
    }

    /// Client URLs of all nodes, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// Client URLs of all nodes, comma separated (the form a config value or CLI flag
    /// takes). `async_nats::connect` takes [`urls`](Self::urls) instead.
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    /// Node `i` (0-based; its `server_name` is `n{i+1}`).
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Node `i`, mutably (to stop or restart it).
    pub fn node_mut(&mut self, i: usize) -> &mut NatsServer {
        &mut self.nodes[i]
    }

    /// Kills node `i` with SIGKILL; its store is kept.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Restarts node `i` on its ports and store, and waits until it is ready again
    /// (full `/healthz`, so its streams have caught up).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never true: `start` needs at least one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}
