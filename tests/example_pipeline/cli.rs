//! The CLI as the people of the example run it, each with their own token:
//! JSON or readable output, expected refusals by reason, retries while a
//! promotion waits on verification or soak, and the steps the walk repeats.

use std::time::Duration;

use serde_json::Value;

use crate::common::waybill;

pub(crate) struct Cli {
    pub(crate) server: String,
}

impl Cli {
    /// Runs `waybill ARGS --output json` as `who`; returns exit code and JSON.
    pub(crate) fn run(&self, who: &str, args: &[&str]) -> (i32, Value) {
        let out = waybill()
            .args(args)
            .args([
                "--server",
                &self.server,
                "--output",
                "json",
                "--token",
                &format!("token-of-{who}"),
            ])
            .output()
            .expect("run cli");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), json)
    }

    /// Runs `waybill ARGS` (readable output) as `who`; asserts success and
    /// returns stdout.
    pub(crate) fn text(&self, who: &str, args: &[&str]) -> String {
        let out = waybill()
            .args(args)
            .args([
                "--server",
                &self.server,
                "--token",
                &format!("token-of-{who}"),
            ])
            .output()
            .expect("run cli");
        assert!(
            out.status.success(),
            "{who} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    pub(crate) fn ok(&self, who: &str, args: &[&str]) -> Value {
        let (code, json) = self.run(who, args);
        assert_eq!(code, 0, "{who} {args:?}: {json}");
        json
    }

    pub(crate) fn refused(&self, who: &str, args: &[&str], reason: &str) -> Value {
        let (code, json) = self.run(who, args);
        assert_eq!(code, 1, "{who} {args:?} should be refused: {json}");
        assert_eq!(json["reason"], reason, "{who} {args:?}: {json}");
        json
    }

    /// Retries `args` while it is refused for one of `waiting` (bounded).
    fn eventually(&self, who: &str, args: &[&str], waiting: &[&str]) -> (i32, Value) {
        for _ in 0..300 {
            let (code, json) = self.run(who, args);
            let reason = json["reason"].as_str().unwrap_or("");
            let cause = json["details"]["cause"].as_str().unwrap_or("");
            if code == 1 && (waiting.contains(&reason) || waiting.contains(&cause)) {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            return (code, json);
        }
        panic!("{who} {args:?} kept being refused for {waiting:?}");
    }

    pub(crate) fn discover(&self, tag: &str) -> String {
        let image = format!("ghcr.io/acme/shop:{tag}");
        let json = self.ok(
            "ci",
            &["discover", "-p", "shop", "-w", "images", "--image", &image],
        );
        json["freight_id"].as_str().expect("freight id").to_string()
    }

    /// Walks freight through dev and staging (auto) and requests prod.
    pub(crate) fn ready_for_prod(&self, freight: &str, ticket: &str) -> (i32, Value) {
        self.ok(
            "ci",
            &[
                "record-verification",
                "-p",
                "shop",
                "--freight",
                freight,
                "--stage",
                "dev",
                "--check",
                "integration-tests",
                "--pass",
                "--evidence",
                "https://ci.example/run/1",
            ],
        );
        self.eventually(
            "alice",
            &[
                "promote",
                "-p",
                "shop",
                "--stage",
                "prod",
                "--freight",
                freight,
                "--ticket",
                ticket,
            ],
            &["NOT_VERIFIED_UPSTREAM", "SOAK_INCOMPLETE"],
        )
    }

    pub(crate) fn current(&self, stage: &str, freight: &str) {
        self.refused(
            "alice",
            &[
                "promote",
                "-p",
                "shop",
                "--stage",
                stage,
                "--freight",
                freight,
                "--ticket",
                "CHG-1",
            ],
            "ALREADY_CURRENT",
        );
    }
}
