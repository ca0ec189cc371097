//! The shipped example pipeline walked end to end with the CLI over real gRPC,
//! on both backends: auto-promotion into dev, gated staging, manual prod with
//! two approvers (a self-approval refused), a rollback, then — with the clock
//! on a Saturday — a freeze refusal and an emergency bypass.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{waybill, Served};
use serde_json::Value;
use sha2::{Digest, Sha256};
use waybill_ledger::testing::NatsServer;

const WEDNESDAY: &str = "2026-12-02T09:00:00Z";
const SATURDAY: &str = "2026-12-05T10:00:00Z";

/// Writes the auth config: one token per person, roles bound by name.
fn auth_config(dir: &Path) -> std::path::PathBuf {
    let mut tokens = String::new();
    for name in ["alice", "bob", "carol", "ci", "sre"] {
        let hash = hex::encode(Sha256::digest(format!("token-of-{name}").as_bytes()));
        tokens.push_str(&format!(
            "[[token]]\nname = \"{name}\"\nsha256 = \"{hash}\"\n\n"
        ));
    }
    std::fs::write(dir.join("tokens.toml"), tokens).expect("tokens");
    let auth = r#"tokens_file = "tokens.toml"

[[binding]]
subjects = ["user:alice"]
roles = ["admin", "promoter", "approver"]

[[binding]]
subjects = ["user:bob", "user:carol"]
roles = ["approver"]

[[binding]]
subjects = ["user:ci"]
roles = ["promoter"]

[[binding]]
subjects = ["user:sre"]
roles = ["bypass", "promoter"]
"#;
    let path = dir.join("auth.toml");
    std::fs::write(&path, auth).expect("auth");
    path
}

/// The example pipeline with a 2-second soak instead of 30 minutes.
fn pipeline(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/pipeline.yaml"
    ))
    .expect("example");
    assert!(text.contains("required_soak: 30m"));
    let path = dir.join("pipeline.yaml");
    std::fs::write(
        &path,
        text.replace("required_soak: 30m", "required_soak: 2s"),
    )
    .expect("write");
    path
}

struct Cli {
    server: String,
}

impl Cli {
    /// Runs `waybill ARGS --output json` as `who`; returns exit code and JSON.
    fn run(&self, who: &str, args: &[&str]) -> (i32, Value) {
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
    fn text(&self, who: &str, args: &[&str]) -> String {
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

    fn ok(&self, who: &str, args: &[&str]) -> Value {
        let (code, json) = self.run(who, args);
        assert_eq!(code, 0, "{who} {args:?}: {json}");
        json
    }

    fn refused(&self, who: &str, args: &[&str], reason: &str) -> Value {
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

    fn discover(&self, tag: &str) -> String {
        let image = format!("ghcr.io/acme/shop:{tag}");
        let json = self.ok(
            "ci",
            &["discover", "-p", "shop", "-w", "images", "--image", &image],
        );
        json["freight_id"].as_str().expect("freight id").to_string()
    }

    /// Walks freight through dev and staging (auto) and requests prod.
    fn ready_for_prod(&self, freight: &str, ticket: &str) -> (i32, Value) {
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

    fn current(&self, stage: &str, freight: &str) {
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

fn serve(log_args: &[String], auth: &Path, clock: &str) -> Served {
    Served::start(
        waybill()
            .arg("serve")
            .args(log_args)
            .arg("--auth-config")
            .arg(auth)
            .args(["--clock-start", clock]),
    )
}

fn walk(log_args: Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = auth_config(dir.path());
    let file = pipeline(dir.path());
    let file = file.to_str().expect("utf8");

    // ── A Wednesday ─────────────────────────────────────────────────────────
    let served = serve(&log_args, &auth, WEDNESDAY);
    let cli = Cli {
        server: served.endpoint(),
    };
    // A broken file is refused with its line, and nothing is appended.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(file)
            .expect("read")
            .replace("stages: [dev]", "stages: [qa]"),
    )
    .expect("write");
    let out = waybill()
        .args([
            "apply",
            "-f",
            broken.to_str().expect("utf8"),
            "--server",
            &cli.server,
            "--token",
            "token-of-alice",
        ])
        .output()
        .expect("apply");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.yaml:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only an admin may apply.
    cli.refused("ci", &["apply", "-f", file], "");
    let applied = cli.ok("alice", &["apply", "-f", file]);
    assert_eq!(applied["project"], "shop");

    let f1 = cli.discover("1.0");
    let again = cli.ok(
        "ci",
        &[
            "discover",
            "-p",
            "shop",
            "-w",
            "images",
            "--image",
            "ghcr.io/acme/shop:1.0",
        ],
    );
    assert_eq!(again["freight_id"], f1.as_str());
    assert_eq!(again["already_done"], true, "re-discovery is idempotent");

    cli.refused(
        "alice",
        &["promote", "-p", "shop", "--stage", "prod", "--freight", &f1],
        "FREIGHT_NOT_AVAILABLE",
    );
    let (code, json) = cli.ready_for_prod(&f1, "CHG-42");
    assert_eq!(code, 0, "{json}");
    let p1 = json["promotion_id"]
        .as_str()
        .expect("promotion")
        .to_string();
    // Pending approvals per principal: not the requester, not someone without the role.
    let requested_at = json["position"].to_string();
    let pending = |who: &str| -> Vec<String> {
        let json = cli.ok(
            who,
            &["pending", "-p", "shop", "--min-position", &requested_at],
        );
        json["promotions"]
            .as_array()
            .expect("promotions")
            .iter()
            .map(|p| p["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(pending("bob"), vec![p1.clone()]);
    let waiting = cli.ok(
        "carol",
        &["pending", "-p", "shop", "--min-position", &requested_at],
    );
    assert_eq!(
        waiting["promotions"][0]["approvals_required"], 2,
        "{waiting}"
    );
    assert_eq!(pending("carol"), vec![p1.clone()]);
    assert!(pending("alice").is_empty(), "the requester cannot approve");
    assert!(pending("ci").is_empty(), "ci is not an approver");
    cli.refused(
        "alice",
        &["approve", "-p", "shop", "--promotion", &p1],
        "SEPARATION_OF_DUTIES",
    );
    cli.refused("ci", &["approve", "-p", "shop", "--promotion", &p1], "");
    // The stage shows its policy; each approval says what is still needed.
    let prod = cli.text("bob", &["status", "-p", "shop", "prod"]);
    for line in [
        "approvals:      2 (approver role; the requester's own does not count)",
        "ticket:         CHG-\\d+",
        "freezes:        Sat, Sun",
        "time zone:      ",
        "promotions now: open\n",
    ] {
        assert!(prod.contains(line), "{line:?} in\n{prod}");
    }
    let said = cli.text(
        "bob",
        &[
            "approve",
            "-p",
            "shop",
            "--promotion",
            &p1,
            "-m",
            "looks good",
        ],
    );
    assert!(
        said.contains(&format!(
            "promotion {p1} into prod is Requested, 1 of 2 approvals ("
        )),
        "{said}"
    );
    cli.refused(
        "bob",
        &["approve", "-p", "shop", "--promotion", &p1],
        "ALREADY_APPROVED",
    );
    let said = cli.text("carol", &["approve", "-p", "shop", "--promotion", &p1]);
    assert!(
        said.contains(&format!(
            "promotion {p1} into prod is Succeeded, approved by "
        )),
        "{said}"
    );
    cli.current("prod", &f1);

    // A newer freight reaches prod, then is rolled back.
    let f2 = cli.discover("1.1");
    // Once available, prod still wants a ticket that matches CHG-\d+.
    let (code, json) = cli.ready_for_prod(&f2, "");
    assert_eq!(
        (code, json["reason"].as_str()),
        (1, Some("TICKET_REQUIRED")),
        "{json}"
    );
    cli.refused(
        "alice",
        &[
            "promote",
            "-p",
            "shop",
            "--stage",
            "prod",
            "--freight",
            &f2,
            "--ticket",
            "JIRA-1",
        ],
        "TICKET_INVALID",
    );
    // A dry run decides as a request would and appends nothing.
    let prod_promotions = |cli: &Cli| {
        let json = cli.ok("alice", &["promotions", "-p", "shop", "--stage", "prod"]);
        json["promotions"].as_array().expect("promotions").len()
    };
    let before = prod_promotions(&cli);
    let promote_f2 = ["promote", "-p", "shop", "--stage", "prod", "--freight", &f2];
    let dry = cli.ok(
        "alice",
        &[&promote_f2[..], &["--ticket", "CHG-43", "--dry-run"]].concat(),
    );
    assert_eq!(dry["validated_only"], true, "{dry}");
    assert_eq!(dry["freight_id"], f2.as_str(), "{dry}");
    assert_eq!(dry["promotion_id"], "", "{dry}");
    cli.refused(
        "alice",
        &[&promote_f2[..], &["--ticket", "JIRA-1", "--dry-run"]].concat(),
        "TICKET_INVALID",
    );
    let text = cli.text(
        "alice",
        &[&promote_f2[..], &["--ticket", "CHG-43", "--dry-run"]].concat(),
    );
    assert!(
        text.starts_with(&format!(
            "dry run: would be accepted: project shop, freight {f2}"
        )),
        "{text}"
    );
    assert_eq!(
        prod_promotions(&cli),
        before,
        "a dry run appended a promotion"
    );
    let p2 = cli.ok(
        "alice",
        &[
            "promote",
            "-p",
            "shop",
            "--stage",
            "prod",
            "--freight",
            &f2,
            "--ticket",
            "CHG-43",
        ],
    );
    let p2 = p2["promotion_id"].as_str().expect("promotion").to_string();
    cli.ok("bob", &["approve", "-p", "shop", "--promotion", &p2]);
    cli.ok("carol", &["approve", "-p", "shop", "--promotion", &p2]);
    cli.current("prod", &f2);
    let rb = cli.ok(
        "alice",
        &[
            "rollback",
            "-p",
            "shop",
            "--stage",
            "prod",
            "--ticket",
            "CHG-44",
            "--reason",
            "1.1 breaks checkout",
        ],
    );
    let rb = rb["promotion_id"].as_str().expect("promotion").to_string();
    cli.ok("bob", &["approve", "-p", "shop", "--promotion", &rb]);
    cli.ok("carol", &["approve", "-p", "shop", "--promotion", &rb]);
    cli.current("prod", &f1);
    assert!(served.terminate().success());

    // ── The Saturday after, on the same ledger ──────────────────────────────
    let served = serve(&log_args, &auth, SATURDAY);
    let cli = Cli {
        // HOST:PORT, as `serve --listen` takes it, works as well as a URL.
        server: served.addr.to_string(),
    };
    let f3 = cli.discover("1.2");
    let (code, json) = cli.ready_for_prod(&f3, "CHG-50");
    assert_eq!(code, 1);
    assert_eq!(json["reason"], "STAGE_FROZEN", "{json}");
    assert!(
        json["message"]
            .as_str()
            .unwrap_or("")
            .contains("weekend freeze"),
        "{json}"
    );
    // The queries judge the freeze by the server's clock too: the table
    // marks prod, until Monday 00:00 in Berlin.
    let table = cli.text("alice", &["status", "-p", "shop"]);
    assert!(table.contains("manual (record-only), frozen"), "{table}");
    let below = table
        .lines()
        .find(|l| l.starts_with("prod: frozen until "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        below.ends_with("(2026-12-06 23:00:00Z): weekend freeze"),
        "{table}"
    );
    // The bypass needs a reason, and the bypass role.
    cli.refused(
        "sre",
        &[
            "approve-freight",
            "-p",
            "shop",
            "--freight",
            &f3,
            "--stage",
            "prod",
            "--reason",
            "",
            "--ticket",
            "CHG-51",
        ],
        "INVALID_ARGUMENT",
    );
    cli.refused(
        "bob",
        &[
            "approve-freight",
            "-p",
            "shop",
            "--freight",
            &f3,
            "--stage",
            "prod",
            "--reason",
            "outage",
            "--ticket",
            "CHG-51",
        ],
        "",
    );
    cli.ok(
        "sre",
        &[
            "approve-freight",
            "-p",
            "shop",
            "--freight",
            &f3,
            "--stage",
            "prod",
            "--reason",
            "payment outage",
            "--ticket",
            "CHG-51",
        ],
    );
    let p3 = cli.ok(
        "alice",
        &[
            "promote",
            "-p",
            "shop",
            "--stage",
            "prod",
            "--freight",
            &f3,
            "--ticket",
            "CHG-51",
        ],
    );
    let p3 = p3["promotion_id"].as_str().expect("promotion").to_string();
    cli.ok("bob", &["approve", "-p", "shop", "--promotion", &p3]);
    let last = cli.ok("carol", &["approve", "-p", "shop", "--promotion", &p3]);
    cli.current("prod", &f3);

    // The read side shows it, reading its own writes.
    let min = last["position"].as_u64().expect("position").to_string();
    let read = |args: &[&str]| {
        let out = waybill()
            .args(args)
            .args([
                "--server",
                &cli.server,
                "--token",
                "token-of-alice",
                "--output",
                "json",
                "--min-position",
                &min,
            ])
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let status: serde_json::Value =
        serde_json::from_str(&read(&["status", "-p", "shop"])).expect("status json");
    assert_eq!(status["stages"][2]["name"], "prod");
    assert_eq!(status["stages"][2]["current"]["freight"], f3.as_str());
    // One stage, named as the argument or with -s as other commands take it.
    let prod = read(&["status", "-p", "shop", "prod"]);
    assert_eq!(read(&["status", "-p", "shop", "-s", "prod"]), prod);
    let prod: serde_json::Value = serde_json::from_str(&prod).expect("stage json");
    assert!(prod.to_string().contains(f3.as_str()), "{prod}");
    let bypasses: Vec<serde_json::Value> = read(&[
        "history",
        "-p",
        "shop",
        "--stage",
        "prod",
        "--type",
        "FreightApproved",
    ])
    .lines()
    .map(|l| serde_json::from_str(l).expect("history json"))
    .collect();
    // Where f3 went, by the start of its id as the tables print it.
    let of_f3: serde_json::Value =
        serde_json::from_str(&read(&["promotions", "-p", "shop", "--freight", &f3[..12]]))
            .expect("promotions json");
    let of_f3 = of_f3["promotions"].as_array().expect("promotions");
    assert!(of_f3.iter().any(|p| p["stage"] == "prod"), "{of_f3:?}");
    assert!(
        of_f3.iter().all(|p| p["freight"] == f3.as_str()),
        "{of_f3:?}"
    );
    assert_eq!(bypasses.len(), 1);
    assert_eq!(bypasses[0]["bypass"], true);
    assert_eq!(bypasses[0]["reason"], "payment outage");
    assert_eq!(bypasses[0]["actor"], "sre");
    assert!(served.terminate().success());

    // The ledger verifies.
    let out = waybill()
        .arg("verify")
        .args(&log_args)
        .output()
        .expect("verify");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn example_pipeline_end_to_end_on_embedded_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    walk(vec![
        "--data-dir".into(),
        dir.path().join("data").display().to_string(),
    ]);
}

#[test]
fn example_pipeline_end_to_end_on_jetstream() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    walk(vec![
        "--nats".into(),
        server.url(),
        "--data-dir".into(),
        dir.path().display().to_string(),
    ]);
}
