//! Where `serve` takes its settings from, and how its log reads: the data
//! directory from the environment or a config file, switches from the
//! environment, a plain-text log on a pipe, or JSON lines (a failure to
//! start included).

use tonic_health::pb::health_check_response::ServingStatus;

use crate::common::{waybill, Served};
use crate::wait_for_health;

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
