//! deploy/nats/cluster.conf, used as shipped: three nats-server nodes started
//! from it on loopback ports (mutual TLS for clients and routes, fsync on
//! every write), and Waybill on them with a replicated (R3) stream over TLS.
//! Without the CA, or without a client certificate, Waybill is refused. And
//! under load, the stream leader killed: no acknowledged command is lost, the
//! service continues, and the node, brought back, catches up.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{command_ids, discovery, run, stderr, stdout, waybill, Served, EXAMPLE_PIPELINE};
use waybill_ledger::testing::nats_server_bin;

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nats/cluster.conf");

fn tls(file: &str) -> String {
    format!("{}/tests/fixtures/tls/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// Three nodes started from the shipped config; killed on drop.
struct Cluster {
    nodes: Vec<Child>,
    client_ports: Vec<u16>,
    route_ports: Vec<u16>,
    http_ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The JSON body of a monitoring endpoint.
fn monitor(port: u16, path: &str) -> Option<serde_json::Value> {
    let text = http_get(port, path)?;
    serde_json::from_str(&text[text.find("\r\n\r\n")? + 4..]).ok()
}

/// The stream's details on the node with monitoring port `http`.
fn stream_detail(http: u16, stream: &str) -> Option<serde_json::Value> {
    monitor(http, "/jsz?streams=true")?["account_details"]
        .as_array()?
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .find(|d| d["name"] == stream)
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(9);
        let mut cluster = Cluster {
            nodes: Vec::new(),
            client_ports: ports[0..3].to_vec(),
            route_ports: ports[3..6].to_vec(),
            http_ports: ports[6..9].to_vec(),
            _dir: dir,
        };
        for i in 0..3 {
            let node = cluster.spawn(i);
            cluster.nodes.push(node);
        }
        cluster.wait_healthy();
        cluster
    }

    /// Node `i` (named n1..n3) from deploy/nats/cluster.conf.
    fn spawn(&self, i: usize) -> Child {
        let dir = self._dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("n{i}.log")))
            .expect("log");
        let mut cmd = Command::new(nats_server_bin());
        cmd.args(["-c", CONFIG])
            .env("NATS_NAME", format!("n{}", i + 1))
            .env("NATS_HOST", "127.0.0.1")
            .env("NATS_PORT", self.client_ports[i].to_string())
            .env("NATS_HTTP_PORT", self.http_ports[i].to_string())
            .env("NATS_CLUSTER_PORT", self.route_ports[i].to_string())
            .env("NATS_STORE_DIR", dir.join(format!("n{i}")))
            .env("NATS_TLS_CERT", tls("server.pem"))
            .env("NATS_TLS_KEY", tls("server-key.pem"))
            .env("NATS_TLS_CA", tls("ca.pem"))
            .stdout(Stdio::null())
            .stderr(log);
        for (r, port) in self.route_ports.iter().enumerate() {
            cmd.env(
                format!("NATS_ROUTE_{}", r + 1),
                format!("nats-route://127.0.0.1:{port}"),
            );
        }
        cmd.spawn().expect("spawn nats-server")
    }

    fn kill(&mut self, i: usize) {
        let _ = self.nodes[i].kill();
        let _ = self.nodes[i].wait();
    }

    fn restart(&mut self, i: usize) {
        self.nodes[i] = self.spawn(i);
    }

    /// Ready when every node's JetStream is healthy (meta leader elected).
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for &port in &self.http_ports {
            loop {
                let ok = http_get(port, "/healthz")
                    .is_some_and(|r| r.contains("200 OK") && r.contains("\"ok\""));
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node on {port} not healthy:\n{:?}",
                    {
                        let logs: Vec<String> = (0..3)
                            .map(|i| {
                                std::fs::read_to_string(self._dir.path().join(format!("n{i}.log")))
                                    .unwrap_or_default()
                            })
                            .collect();
                        logs
                    }
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn urls(&self) -> String {
        self.client_ports
            .iter()
            .map(|p| format!("tls://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn tls_args(ca: bool, client_cert: bool) -> Vec<String> {
    let mut args = Vec::new();
    if ca {
        args.extend(["--nats-ca".to_string(), tls("ca.pem")]);
    }
    if client_cert {
        args.extend([
            "--nats-cert".to_string(),
            tls("client.pem"),
            "--nats-key".to_string(),
            tls("client-key.pem"),
        ]);
    }
    args
}

fn data_dir(dir: &Path) -> [String; 2] {
    ["--data-dir".into(), dir.to_str().expect("utf8").into()]
}

#[test]
fn waybill_runs_on_the_shipped_tls_cluster_config_with_r3() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let urls = cluster.urls();

    // Without the CA, or without a client certificate: refused, and the
    // message says it was NATS.
    for (ca, cert) in [(false, true), (true, false)] {
        let out = run(&[
            vec!["verify".to_string(), "--nats".into(), urls.clone()],
            tls_args(ca, cert),
        ]
        .concat()
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
        assert!(!out.status.success(), "ca {ca} cert {cert}: accepted");
        assert!(
            stderr(&out).contains("NATS"),
            "ca {ca} cert {cert}: {}",
            stderr(&out)
        );
    }

    let served = Served::start(
        waybill()
            .args([
                "serve",
                "--nats",
                &urls,
                "--replicas",
                "3",
                "--insecure-dev",
            ])
            .args(tls_args(true, true))
            .args(data_dir(dir.path())),
    );
    let server = served.endpoint();
    let cli = |args: &[&str]| {
        let out = run(&[args, &["--server", &server]].concat());
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    cli(&["apply", "-f", EXAMPLE_PIPELINE]);
    cli(&[
        "discover",
        "-p",
        "shop",
        "-w",
        "images",
        "--image",
        "ghcr.io/acme/shop:1.0",
    ]);
    drop(served);

    // The stream is replicated on all three nodes.
    let jsz = http_get(cluster.http_ports[0], "/jsz?streams=true&config=true").expect("jsz");
    assert!(
        jsz.contains("\"name\": \"WAYBILL\"") || jsz.contains("\"name\":\"WAYBILL\""),
        "{jsz}"
    );
    assert!(
        jsz.contains("\"num_replicas\": 3") || jsz.contains("\"num_replicas\":3"),
        "{jsz}"
    );
    // And the chain verifies over TLS.
    let out = run(&[
        vec!["verify".to_string(), "--nats".into(), urls],
        tls_args(true, true),
    ]
    .concat()
    .iter()
    .map(String::as_str)
    .collect::<Vec<_>>());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("ok:"), "{}", stdout(&out));
}

/// Discovers image `tag` through `waybill serve`, retrying while the log is
/// unavailable (a new stream leader is being elected); the position once acknowledged.
async fn discover_until_acked(
    c: &mut waybill_proto::v1::command_service_client::CommandServiceClient<
        tonic::transport::Channel,
    >,
    tag: &str,
) -> u64 {
    for _ in 0..300 {
        let request = discovery(tag, &format!("key-{tag}"));
        match c.record_discovery(request).await {
            Ok(reply) => return reply.into_inner().position,
            Err(s) if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Aborted) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("{tag}: {s:?}"),
        }
    }
    panic!("{tag} was never acknowledged");
}

#[test]
fn the_service_survives_the_stream_leader_being_killed_under_load() {
    let mut cluster = Cluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let urls = cluster.urls();
    let served = Served::start(
        waybill()
            .args([
                "serve",
                "--nats",
                &urls,
                "--replicas",
                "3",
                "--insecure-dev",
            ])
            .args(["--no-reactors", "--no-checkpoints"])
            .args(tls_args(true, true))
            .args(data_dir(dir.path())),
    );
    served.apply_example();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut client = rt.block_on(async {
        waybill_proto::v1::command_service_client::CommandServiceClient::connect(served.endpoint())
            .await
            .expect("connect")
    });
    let mut acked = Vec::new();
    for i in 0..30 {
        let tag = format!("1.{i}");
        rt.block_on(discover_until_acked(&mut client, &tag));
        acked.push(format!("key-{tag}"));
    }
    // Kill whichever node leads the stream; the service continues.
    let detail = stream_detail(cluster.http_ports[0], "WAYBILL").expect("stream on n1");
    let leader = detail["cluster"]["leader"]
        .as_str()
        .expect("a leader")
        .to_string();
    let index = (0..3)
        .find(|i| leader == format!("n{}", i + 1))
        .expect("the leader is ours");
    cluster.kill(index);
    for i in 30..60 {
        let tag = format!("1.{i}");
        rt.block_on(discover_until_acked(&mut client, &tag));
        acked.push(format!("key-{tag}"));
    }
    // Brought back, the node catches up.
    cluster.restart(index);
    let head = rt.block_on(async {
        waybill_proto::v1::query_service_client::QueryServiceClient::connect(served.endpoint())
            .await
            .expect("connect")
            .projection_status(waybill_proto::v1::ProjectionStatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .head
    });
    let caught_up = (0..300).any(|_| {
        let last = stream_detail(cluster.http_ports[index], "WAYBILL")
            .and_then(|d| d["state"]["last_seq"].as_u64());
        if last == Some(head) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
        false
    });
    assert!(caught_up, "node n{} did not catch up to {head}", index + 1);
    drop(client);
    drop(rt);
    assert!(served.terminate().success());

    // No acknowledged command lost, none twice; the chain verifies.
    let mut dump = vec!["dump".to_string(), "--nats".into(), urls.clone()];
    dump.extend(tls_args(true, true));
    dump.extend(["--project".to_string(), "shop".into()]);
    let out = run(&dump.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = command_ids(&stdout(&out));
    for key in &acked {
        assert_eq!(ids.get(key), Some(&1), "acknowledged {key} lost or doubled");
    }
    let mut verify = vec!["verify".to_string(), "--nats".into(), urls];
    verify.extend(tls_args(true, true));
    let out = run(&verify.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
