//! NATS stopped under load: commands fail with UNAVAILABLE (they never hang)
//! and write nothing partial; NATS started again: the same `waybill serve`
//! recovers without a restart. Afterwards every acknowledged command is in
//! the log exactly once, no command is in it twice, and the chain verifies.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{command_ids, discovery, run, stderr, stdout, waybill, Served};
use tonic::Code;
use waybill_ledger::testing::NatsServer;
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;

type Client = CommandServiceClient<tonic::transport::Channel>;

/// Longest a call may take before the test calls it hung.
const HUNG: Duration = Duration::from_secs(60);

/// Discovers image `tag` with idempotency key `key`.
async fn discover(c: &mut Client, tag: &str, key: &str) -> Result<u64, Code> {
    let request = discovery(tag, key);
    match tokio::time::timeout(HUNG, c.record_discovery(request)).await {
        Err(_) => panic!("a command hung while NATS was down"),
        Ok(Ok(reply)) => Ok(reply.into_inner().position),
        Ok(Err(status)) => Err(status.code()),
    }
}

/// Command id → how many records carry it.
fn ids_in_log(url: &str) -> BTreeMap<String, usize> {
    let out = run(&["dump", "--nats", url, "--project", "shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    command_ids(&stdout(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_fail_unavailable_while_nats_is_down_and_recover_after() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .args([
                "serve",
                "--nats",
                &nats.url(),
                "--insecure-dev",
                "--no-reactors",
            ])
            .args(["--no-checkpoints", "--data-dir"])
            .arg(dir.path()),
    );
    let mut c = CommandServiceClient::connect(served.endpoint())
        .await
        .expect("connect");
    let yaml = std::fs::read_to_string(common::EXAMPLE_PIPELINE).expect("pipeline");
    c.apply_pipeline(pb::ApplyPipelineRequest {
        yaml,
        idempotency_key: "apply".into(),
        ..Default::default()
    })
    .await
    .expect("apply");

    let mut acked: Vec<String> = vec!["apply".into()];
    let mut n = 0;
    let mut next = |phase: &str| {
        n += 1;
        (format!("{phase}-{n}"), format!("key-{phase}-{n}"))
    };
    // Under load...
    for _ in 0..20 {
        let (tag, key) = next("before");
        discover(&mut c, &tag, &key).await.expect("NATS is up");
        acked.push(key);
    }
    // ...NATS stops: every command is refused as UNAVAILABLE.
    nats.kill();
    let mut refused = Vec::new();
    for _ in 0..5 {
        let (tag, key) = next("during");
        match discover(&mut c, &tag, &key).await {
            Err(code) => {
                assert_eq!(code, Code::Unavailable, "{key}");
                refused.push((tag, key));
            }
            Ok(p) => panic!("{key} acknowledged at {p} while NATS was down"),
        }
    }
    // Refused, it may have been written all the same (an acknowledgement
    // lost): the reply names the key under which a retry is recorded once,
    // the one the server made up when the client gave none...
    let status = tokio::time::timeout(HUNG, c.record_discovery(discovery("unkeyed", "")))
        .await
        .expect("a command hung while NATS was down")
        .expect_err("NATS is down");
    assert_eq!(status.code(), Code::Unavailable);
    let server_key = {
        use tonic_types::StatusExt;
        status
            .get_details_error_info()
            .and_then(|i| i.metadata.get("idempotency_key").cloned())
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| panic!("no idempotency_key in {status:?}"))
    };
    // ...and the CLI, which makes up a key when given none, says how to retry.
    let cli_discover = |tag: &str, key: Option<&str>| {
        let mut cmd = waybill();
        cmd.args(["discover", "-p", "shop", "-w", "images"])
            .args(["--image", &format!("ghcr.io/acme/shop:{tag}")])
            .args(["--server", &served.endpoint()]);
        if let Some(key) = key {
            cmd.args(["--idempotency-key", key]);
        }
        cmd.output().expect("discover")
    };
    let out = cli_discover("cli", None);
    assert!(!out.status.success());
    let said = stderr(&out);
    let cli_key = said
        .split("run the same command with --idempotency-key ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|key| key.trim_end_matches(':'))
        .unwrap_or_else(|| panic!("no key to retry with in: {said}"))
        .to_string();
    assert!(
        said.contains(&format!("idempotency_key: {cli_key}")),
        "{said}"
    );
    // NATS is back: the same server recovers (bounded retries while it reconnects).
    nats.restart();
    let (tag, key) = next("after");
    let mut recovered = false;
    for _ in 0..300 {
        match discover(&mut c, &tag, &key).await {
            Ok(_) => {
                recovered = true;
                break;
            }
            Err(Code::Unavailable) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("after the restart: {other:?}"),
        }
    }
    assert!(recovered, "waybill did not recover after NATS came back");
    acked.push(key);
    for _ in 0..20 {
        let (tag, key) = next("after");
        discover(&mut c, &tag, &key).await.expect("recovered");
        acked.push(key);
    }
    // A refused command retried with its key is written once.
    let (tag, key) = &refused[0];
    discover(&mut c, tag, key).await.expect("the retry");
    discover(&mut c, tag, key).await.expect("the retry again");
    acked.push(key.clone());
    // So are the keys the server and the CLI named.
    discover(&mut c, "unkeyed", &server_key)
        .await
        .expect("the retry under the server's key");
    acked.push(server_key);
    for _ in 0..2 {
        let out = cli_discover("cli", Some(&cli_key));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    acked.push(cli_key);
    drop(c);
    assert!(served.terminate().success());

    let ids = ids_in_log(&nats.url());
    for key in &acked {
        assert_eq!(ids.get(key), Some(&1), "{key} should be in the log once");
    }
    for (key, count) in &ids {
        assert_eq!(*count, 1, "{key} is in the log {count} times");
    }
    let out = run(&["verify", "--nats", &nats.url()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// What the server says while it waits for NATS at start.
const WAITING: &str = "cannot reach NATS yet; trying again";

/// Waits (up to 30 s) among `lines` for the one that says the server waits
/// for NATS.
fn wait_for_waiting(lines: &std::sync::mpsc::Receiver<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(WAITING) => return,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("the server never said it waits for NATS");
}

/// A server started before NATS (a reboot, a cluster coming up) with
/// `--nats-connect-wait` keeps trying, says so, and serves once NATS is up;
/// SIGTERM ends the wait at once. Without the flag it gives up at once
/// (`bad_configuration_is_refused_with_a_clear_message` in tests/serve.rs).
#[test]
fn a_server_started_before_nats_waits_for_it() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    nats.stop();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // NATS comes up once the server has tried and failed (and nothing of
    // the server's is written before it has: no signing key yet).
    let (tx, lines) = std::sync::mpsc::channel();
    let key = data.join("signing.key");
    let nats = std::thread::spawn(move || {
        wait_for_waiting(&lines);
        assert!(!key.exists(), "a signing key before the log is open");
        nats.restart();
        nats
    });
    let tx = std::sync::Mutex::new(tx);
    let served = Served::start_watching(
        waybill()
            .args(["serve", "--insecure-dev", "--nats", &url])
            .args(["--nats-connect-wait", "60", "--data-dir"])
            .arg(&data),
        move |line| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(line.to_string());
            }
        },
    );
    let _nats = nats.join().expect("nats");
    assert!(
        served
            .log_so_far()
            .contains("cannot reach NATS yet; trying again"),
        "{}",
        served.log_so_far()
    );
    served.apply_example();
    assert!(served.terminate().success());

    // NATS never comes: SIGTERM stops the wait, cleanly.
    let other = tempfile::tempdir().expect("tempdir");
    let mut child = waybill()
        .args(["serve", "--insecure-dev", "--nats", "nats://127.0.0.1:1"])
        .args(["--nats-connect-wait", "600", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(other.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    wait_for_waiting(&lines);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < HUNG,
            "SIGTERM did not end the wait for NATS"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
