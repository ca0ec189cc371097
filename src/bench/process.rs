//! Child processes of the benchmarks: run one to completion while sampling
//! its peak resident set size (`VmHWM` in `/proc/<pid>/status`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};

/// The peak resident set size of a running process, in bytes (0 if unknown).
pub fn peak_rss(child: &Child) -> u64 {
    read_status_kb(child.id(), "VmHWM:") * 1024
}

/// The current resident set size of process `pid`, in bytes (0 if unknown).
pub fn rss(pid: u32) -> u64 {
    read_status_kb(pid, "VmRSS:") * 1024
}

fn read_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// CPU time process `pid` has used so far, in clock ticks (user + system).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Waits until process `pid` has been quiet (under 5% of a core, i.e. 5
/// ticks at the usual 100 Hz, for a second), at most `max`, then has the
/// kernel write dirty pages out (`sync`), so that a measurement that follows
/// does not share the machine with the server's catch-up or its writeback.
/// Returns how long it waited.
pub fn settle(pid: u32, max: Duration) -> Duration {
    let started = Instant::now();
    let mut last = cpu_ticks(pid);
    while started.elapsed() < max {
        std::thread::sleep(Duration::from_secs(1));
        let now = cpu_ticks(pid);
        match (last, now) {
            (Some(a), Some(b)) if b.saturating_sub(a) < 5 => break,
            (_, None) => break,
            _ => last = now,
        }
    }
    let _ = Command::new("sync").status();
    started.elapsed()
}

/// Runs `command` to success; returns its wall time and peak RSS (bytes).
/// `watch` is called every 20 ms while it runs (to sample other processes).
pub fn run_measured(
    command: &mut Command,
    what: &str,
    mut watch: impl FnMut(),
) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut child = command.spawn()?;
    let mut peak = 0u64;
    let status = loop {
        peak = peak.max(peak_rss(&child));
        watch();
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ensure!(status.success(), "{what} failed: {status}");
    Ok((started.elapsed(), peak))
}

/// Starts `waybill serve` on the rebuilt data dir; returns it and its address.
/// `url`: the NATS server, or `None` for the embedded log in `data`.
pub(super) fn serve(
    url: Option<&str>,
    data: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<(Child, String)> {
    let exe = std::env::current_exe()?;
    let nats: Vec<&str> = url.map(|u| vec!["--nats", u]).unwrap_or_default();
    let mut child = Command::new(exe)
        .arg("serve")
        .args(nats)
        .args([
            "--insecure-dev",
            // Measure the server, not its per-connection rate limit.
            "--rate-limit",
            "1000000000",
            "--no-reactors",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .args(extra)
        .env("WAYBILL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().context("serve exited")??;
        if let Some(addr) = line.strip_prefix("waybill listening on ") {
            break addr.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, format!("http://{addr}")))
}
