//! deploy/nats/cluster.conf, used as shipped: three nats-server nodes started
//! from it on loopback ports (mutual TLS for clients and routes, fsync on
//! every write), and Waybill on them with a replicated (R3) stream over TLS.
//! Without the CA, or without a client certificate, Waybill is refused.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, stderr, stdout, waybill, Served};
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

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(9);
        let (client, route, http) = (&ports[0..3], &ports[3..6], &ports[6..9]);
        let nodes = (0..3)
            .map(|i| {
                let store: PathBuf = dir.path().join(format!("n{i}"));
                let log = std::fs::File::create(dir.path().join(format!("n{i}.log"))).expect("log");
                let mut cmd = Command::new(nats_server_bin());
                cmd.args(["-c", CONFIG])
                    .env("NATS_NAME", format!("n{}", i + 1))
                    .env("NATS_HOST", "127.0.0.1")
                    .env("NATS_PORT", client[i].to_string())
                    .env("NATS_HTTP_PORT", http[i].to_string())
                    .env("NATS_CLUSTER_PORT", route[i].to_string())
                    .env("NATS_STORE_DIR", &store)
                    .env("NATS_TLS_CERT", tls("server.pem"))
                    .env("NATS_TLS_KEY", tls("server-key.pem"))
                    .env("NATS_TLS_CA", tls("ca.pem"))
                    .stdout(Stdio::null())
                    .stderr(log);
                for (r, port) in route.iter().enumerate() {
                    cmd.env(
                        format!("NATS_ROUTE_{}", r + 1),
                        format!("nats-route://127.0.0.1:{port}"),
                    );
                }
                cmd.spawn().expect("spawn nats-server")
            })
            .collect();
        let cluster = Cluster {
            nodes,
            client_ports: client.to_vec(),
            http_ports: http.to_vec(),
            _dir: dir,
        };
        // Ready when every node's JetStream is healthy (meta leader elected).
        let deadline = Instant::now() + Duration::from_secs(30);
        for &port in &cluster.http_ports {
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
                                std::fs::read_to_string(
                                    cluster._dir.path().join(format!("n{i}.log")),
                                )
                                .unwrap_or_default()
                            })
                            .collect();
                        logs
                    }
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        cluster
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
    cli(&[
        "apply",
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/pipeline.yaml"),
    ]);
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
