//! The weekday half of the walk: a broken pipeline file refused with its
//! line, apply by an admin only, idempotent discovery, prod with two
//! approvers (pending lists per person, a self-approval refused), ticket
//! rules, a dry run that appends nothing, and a rollback.

use std::path::Path;

use crate::cli::Cli;
use crate::common::waybill;
use crate::{serve, WEDNESDAY};

/// The Wednesday, on the ledger `log_args` names, with the auth config at
/// `auth` and the pipeline file `file` (in `dir`).
pub(crate) fn on_a_wednesday(
    log_args: &[String],
    auth: &Path,
    dir: &tempfile::TempDir,
    file: &str,
) {
    let served = serve(log_args, auth, WEDNESDAY);
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
        said.contains(&format!("promotion {p1} of "))
            && said.contains(" into prod is Requested, 1 of 2 approvals ("),
        "{said}"
    );
    cli.refused(
        "bob",
        &["approve", "-p", "shop", "--promotion", &p1],
        "ALREADY_APPROVED",
    );
    // An approver may name what goes where instead of the promotion.
    let said = cli.text(
        "carol",
        &["approve", "-p", "shop", "-s", "prod", "--freight", &f1],
    );
    assert!(
        said.contains(&format!("promotion {p1} of "))
            && said.contains(" into prod is Succeeded, approved by "),
        "{said}"
    );
    cli.current("prod", &f1);
    // Once it has ended, nothing open is named so.
    let (code, json) = cli.run(
        "carol",
        &["reject", "-p", "shop", "-s", "prod", "--freight", &f1],
    );
    assert_eq!(code, 1, "{json}");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains(" into prod is open (requested, authorized or running)")),
        "{json}"
    );
    at_says_who_put_it_there(&cli, &f1, &p1);
    at_says_how_a_promotion_stood_then(&cli, &p1, &requested_at);

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
}

/// `waybill at POSITION -s prod`: what prod ran then and the promotion that
/// put it there, with who approved it and why; a stage the pipeline did not
/// have is refused.
fn at_says_who_put_it_there(cli: &Cli, f1: &str, p1: &str) {
    let mut position = None;
    for _ in 0..300 {
        let status = cli.ok("alice", &["status", "-p", "shop", "prod"]);
        if status["stage"]["current"]["freight"] == f1 {
            position = status["position"].as_u64();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let position = position
        .expect("prod runs f1 in the read models")
        .to_string();
    let text = cli.text("alice", &["at", "-p", "shop", &position, "-s", "prod"]);
    for expected in [
        format!("stage prod of project shop as of position {position}"),
        format!("freight:        {f1}"),
        "the promotion that put it there:".to_string(),
        format!("promotion {p1}  Succeeded"),
        "ticket:         CHG-42".to_string(),
        "approvals (2):".to_string(),
        "looks good".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }
    let json = cli.ok("alice", &["at", "-p", "shop", &position, "-s", "prod"]);
    assert_eq!(json["stage"]["current"]["freight"], f1, "{json}");
    assert_eq!(json["promotion"]["id"], p1, "{json}");
    let by: Vec<&str> = json["promotion"]["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .filter_map(|a| a["by"].as_str())
        .collect();
    assert_eq!(by, ["bob", "carol"], "{json}");
    // Before anything reached prod: the stage, and no promotion.
    let json = cli.ok("alice", &["at", "-p", "shop", "1", "-s", "prod"]);
    assert!(json["stage"]["current"].is_null(), "{json}");
    assert!(json["promotion"].is_null(), "{json}");
    let (code, json) = cli.run("alice", &["at", "-p", "shop", "1", "-s", "nostage"]);
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["error"], "NotFound", "{json}");
}

/// `waybill at POSITION -s prod` at the request of `p1` (since succeeded):
/// its last promotion as it stood then, requested with no approvals.
fn at_says_how_a_promotion_stood_then(cli: &Cli, p1: &str, requested_at: &str) {
    let text = cli.text("alice", &["at", "-p", "shop", requested_at, "-s", "prod"]);
    assert!(
        text.contains(&format!("last promotion: {p1} of ")) && text.contains(" Requested "),
        "{text}"
    );
    let json = cli.ok("alice", &["at", "-p", "shop", requested_at, "-s", "prod"]);
    let then = &json["standing_then"][0];
    assert_eq!(then["id"], p1, "{json}");
    assert_eq!(then["status"], "Requested", "{json}");
    assert_eq!(
        then["approvals"].as_array().map(Vec::len),
        Some(0),
        "{json}"
    );
    let today = cli.ok("alice", &["promotions", "-p", "shop", p1]);
    assert_eq!(today["promotion"]["status"], "Succeeded", "{today}");
}
