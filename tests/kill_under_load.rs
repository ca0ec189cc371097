//! `waybill serve` killed with SIGKILL at seeded random moments while it
//! takes commands (and signs checkpoints), then started again, run after run.
//! At the end: every acknowledged command is in the log exactly once, no
//! command is in it twice, the chains verify, and the read models (with the
//! Merkle tree) equal a clean rebuild key by key.
//!
//! Runs: `WAYBILL_FAULT_RUNS` (default 100, about 30 s; more for a longer
//! soak: `WAYBILL_FAULT_RUNS=1000 cargo test --test kill_under_load`).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    caught_up, command_ids, discovery, read_models, run, stderr, stdout, waybill, Served,
};
use waybill_proto::v1::command_service_client::CommandServiceClient;

fn runs() -> usize {
    std::env::var("WAYBILL_FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn serve(data: &Path) -> Served {
    Served::start(
        waybill()
            .args([
                "serve",
                "--insecure-dev",
                "--checkpoint-interval-secs",
                "1",
                "--data-dir",
            ])
            .arg(data),
    )
}

/// Sends discoveries until the server goes away; records the acknowledged keys.
fn load(endpoint: String, run: usize, acked: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let Ok(mut c) = CommandServiceClient::connect(endpoint).await else {
            return;
        };
        for i in 0.. {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let key = format!("r{run}-{i}");
            let request = discovery(&key, &key);
            match c.record_discovery(request).await {
                Ok(_) => acked.lock().expect("lock").push(key),
                Err(_) => return,
            }
        }
    });
}

#[test]
fn kill_dash_nine_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut seed: u64 = 0x00c0_ffee_2026;
    let runs = runs();
    for run_no in 0..runs {
        let served = serve(data);
        if run_no == 0 {
            served.apply_example();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (endpoint, acked, stop) = (served.endpoint(), acked.clone(), stop.clone());
            std::thread::spawn(move || load(endpoint, run_no, acked, stop))
        };
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(20 + (seed >> 33) % 400));
        // SIGKILL: no shutdown, no flush.
        let mut served = served;
        let _ = served.child.kill();
        let _ = served.child.wait();
        stop.store(true, Ordering::Relaxed);
        worker.join().expect("load thread");
        drop(served);
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > runs,
        "only {} commands acknowledged",
        acked.len()
    );

    // A last start: the read models catch up; then a clean shutdown.
    let served = serve(data);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(caught_up(served.endpoint(), None));
    // Close the client's connection before asking the server to stop.
    drop(rt);
    assert!(served.terminate().success());

    // Every acknowledged command exactly once; none twice.
    let data_arg = data.to_str().expect("utf8");
    let out = run(&["dump", "--data-dir", data_arg, "--project", "shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = command_ids(&stdout(&out));
    for key in &acked {
        assert_eq!(
            ids.get(key),
            Some(&1),
            "acknowledged {key} is not in the log once"
        );
    }
    for (key, n) in &ids {
        assert_eq!(*n, 1, "{key} is in the log {n} times");
    }
    let out = run(&["verify", "--data-dir", data_arg]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // The read models that lived through the kills equal a clean rebuild.
    // (The reactor and the checkpoint signer may have appended after the
    // server last caught up: an offline catch-up applies those.)
    let out = run(&["projections", "catch-up", "--data-dir", data_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let resumed = read_models(&data.join("projections"));
    let out = run(&["projections", "rebuild", "--data-dir", data_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rebuilt = read_models(&data.join("projections"));
    assert_eq!(resumed.len(), rebuilt.len(), "same number of keys");
    for (k, v) in &rebuilt {
        assert_eq!(
            resumed.get(k),
            Some(v),
            "key {:?} differs",
            String::from_utf8_lossy(k)
        );
    }
}
