//! Shared helpers for the end-to-end tests of the `waybill` binary.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A gRPC request carrying `authorization: Bearer <token>` (none without a token).
pub fn with_token<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        let bearer = format!("Bearer {token}").parse().expect("header");
        request.metadata_mut().insert("authorization", bearer);
    }
    request
}

/// The text of the Prometheus endpoint on `port` (`serve --metrics-listen`).
pub fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text
}

/// `waybill debug append-burst`: `count` events from each of `writers`
/// writers, each on its own project `burst-<n>`, command ids prefixed with
/// `tag`, on the log `log_args` selects.
pub fn append_burst(log_args: &[&str], count: &str, writers: &str, tag: &str) {
    let mut args = vec![
        "debug",
        "append-burst",
        "--count",
        count,
        "--writers",
        writers,
        "--tag",
        tag,
    ];
    args.extend_from_slice(log_args);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The binary under test.
pub fn waybill() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waybill"));
    // The metrics endpoint's address is logged at info (Served::metrics_port).
    cmd.env("WAYBILL_LOG", "warn,waybill::metrics=info");
    for var in [
        "WAYBILL_DATA_DIR",
        "WAYBILL_NATS_URL",
        "WAYBILL_LISTEN",
        "WAYBILL_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `waybill ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    waybill().args(args).output().expect("run waybill")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running `waybill serve`, killed on drop.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every line the server wrote to stderr.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// The address in the server's "listening" line, as text or (under
/// `--log-format json`) a JSON object with an `addr` field.
fn listening_on(line: &str) -> Option<String> {
    if let Some(addr) = line.strip_prefix("waybill listening on ") {
        return Some(addr.trim().to_string());
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let message = v["fields"]["message"].as_str()?;
    message
        .starts_with("waybill listening on ")
        .then(|| v["fields"]["addr"].as_str().map(str::to_string))?
}

impl Served {
    /// Starts `waybill serve ARGS --listen 127.0.0.1:0` and waits for its address.
    pub fn start(cmd: &mut Command) -> Served {
        Served::start_watching(cmd, |_| {})
    }

    /// As [`Served::start`], with `each_line` called with every line the
    /// server writes to stderr as it comes (while the start waits too).
    pub fn start_watching(cmd: &mut Command, each_line: impl Fn(&str) + Send + 'static) -> Served {
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn waybill serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                each_line(&line);
                if let Ok(mut kept) = kept.lock() {
                    kept.push(line.clone());
                }
                if let Some(addr) = listening_on(&line) {
                    let _ = tx.send(Ok(addr));
                } else {
                    eprintln!("[waybill] {line}");
                    if line.starts_with("error:") {
                        let _ = tx.send(Err(line));
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => addr.parse().expect("address"),
            Ok(Err(line)) => panic!("waybill serve failed: {line}"),
            Err(_) => {
                let _ = child.kill();
                panic!("waybill serve did not report its address");
            }
        };
        Served {
            child,
            addr,
            log,
            reader: Some(reader),
        }
    }

    /// `waybill serve --insecure-dev --no-reactors` on the embedded log in
    /// `data`: a server that admits anyone and promotes nothing by itself.
    pub fn insecure_dev(data: &std::path::Path) -> Served {
        Served::start(
            waybill()
                .args(["serve", "--insecure-dev", "--no-reactors", "--data-dir"])
                .arg(data),
        )
    }

    /// A gRPC channel to the server.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }

    /// The port of the metrics endpoint (`--metrics-listen 127.0.0.1:0`), as
    /// the server's log names it (logged before the server listens).
    pub fn metrics_port(&self) -> u16 {
        self.log_so_far()
            .lines()
            .filter(|l| l.contains("serving Prometheus metrics"))
            .find_map(|l| {
                let v: Option<serde_json::Value> = serde_json::from_str(l).ok();
                let addr = match v {
                    Some(v) => v["fields"]["addr"].as_str()?.to_string(),
                    None => l
                        .split("addr=")
                        .nth(1)?
                        .split_whitespace()
                        .next()?
                        .to_string(),
                };
                addr.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
            })
            .unwrap_or_else(|| panic!("no metrics address in {}", self.log_so_far()))
    }

    /// What the server has written to stderr so far.
    pub fn log_so_far(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `-HUP`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal}");
    }

    /// Waits (up to 30 s) until the server's stderr has a line containing `text`.
    pub fn wait_for_log(&self, text: &str) {
        for _ in 0..3_000 {
            if self.log_so_far().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no {text:?} in {}", self.log_so_far());
    }

    /// Kills the server and returns everything it wrote to stderr.
    pub fn kill_and_log(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let lines = self.log.lock().map(|l| l.join("\n")).unwrap_or_default();
        lines
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM, waits for the exit status, and returns it with
    /// everything the server wrote to stderr.
    pub fn terminate_and_log(mut self) -> (std::process::ExitStatus, String) {
        let log = self.log.clone();
        let reader = self.reader.take();
        let status = self.terminate();
        if let Some(reader) = reader {
            let _ = reader.join();
        }
        let lines = log.lock().map(|l| l.join("\n")).unwrap_or_default();
        (status, lines)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("waybill did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped example pipeline.
pub const EXAMPLE_PIPELINE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/pipeline.yaml");

/// A discovery of image `ghcr.io/acme/shop:<tag>` in project `shop`, with
/// idempotency key `key` (empty: none).
pub fn discovery(tag: &str, key: &str) -> waybill_proto::v1::RecordDiscoveryRequest {
    waybill_proto::v1::RecordDiscoveryRequest {
        project: "shop".into(),
        warehouse: "images".into(),
        artifacts: vec![waybill_proto::v1::Artifact {
            kind: 1,
            name: "ghcr.io/acme/shop".into(),
            version: tag.into(),
            digest: String::new(),
        }],
        idempotency_key: key.into(),
        ..Default::default()
    }
}

/// Command id → how many records of a `waybill dump` output carry it.
pub fn command_ids(dump: &str) -> std::collections::BTreeMap<String, usize> {
    let mut ids = std::collections::BTreeMap::new();
    for line in dump.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let bytes = hex::decode(v["record"].as_str().expect("record")).expect("hex");
        let event = waybill_ledger::event::decode_record(&bytes).expect("decodes");
        *ids.entry(event.command_id).or_insert(0) += 1;
    }
    ids
}

/// Every key of the read models (`views`) and the Merkle tree (`merkle`) of
/// the projection store in `dir`, prefixed with the tree's name.
pub fn read_models(dir: &std::path::Path) -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
    let db = sled::open(dir).expect("open projections");
    let mut all = std::collections::BTreeMap::new();
    for name in ["views", "merkle"] {
        for kv in db.open_tree(name).expect("tree").iter() {
            let (k, v) = kv.expect("entry");
            let mut key = name.as_bytes().to_vec();
            key.extend_from_slice(&k);
            all.insert(key, v.to_vec());
        }
    }
    all
}

impl Served {
    /// Applies the shipped example pipeline through the CLI (anonymous: the
    /// server runs with `--insecure-dev`); panics with the CLI's message if refused.
    pub fn apply_example(&self) {
        let out = run(&[
            "apply",
            "-f",
            EXAMPLE_PIPELINE,
            "--server",
            &self.endpoint(),
        ]);
        assert!(out.status.success(), "apply: {}", stderr(&out));
    }

    /// `waybill discover` of `ghcr.io/acme/shop:<tag>` in the example's
    /// warehouse, through the CLI (anonymous).
    pub fn discover_cli(&self, tag: &str) -> Output {
        run(&[
            "discover",
            "-p",
            "shop",
            "-w",
            "images",
            "--image",
            &format!("ghcr.io/acme/shop:{tag}"),
            "--server",
            &self.endpoint(),
        ])
    }
}

/// Waits until the server at `endpoint` reflects position `head`, or, when
/// `None`, the log's head as the server reports it.
pub async fn caught_up(endpoint: String, head: Option<u64>) {
    let mut q = waybill_proto::v1::query_service_client::QueryServiceClient::connect(endpoint)
        .await
        .expect("connect");
    for _ in 0..600 {
        let s = q
            .projection_status(waybill_proto::v1::ProjectionStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        if s.applied >= head.unwrap_or(s.head) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the read models did not catch up to {head:?}");
}
