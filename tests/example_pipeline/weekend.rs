//! The weekend half of the walk, on the same ledger: prod frozen on a
//! Saturday (by the server's clock, in the queries too), an emergency
//! bypass that needs a reason and the bypass role, and the read side
//! showing it all, reading its own writes.

use std::path::Path;

use crate::cli::Cli;
use crate::common::waybill;
use crate::{serve, SATURDAY};

/// The Saturday after, on the ledger `log_args` names, with the auth
/// config at `auth`.
pub(crate) fn the_saturday_after(log_args: &[String], auth: &Path) {
    let served = serve(log_args, auth, SATURDAY);
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
}
