//! Freight named by the start of its id, as the tables print it: the CLI and
//! `GetFreight` take it when one id starts so, and refuse it, naming the ids,
//! when several do; a refused reference appends nothing. Promotions the
//! same way (`prm-` and the start of the hex).

mod common;

use common::{run, stderr, stdout, Served};
use serde_json::Value;

/// Two tags of the example's image whose freight ids share their first six
/// hex digits (`8c4dea`), found by hashing tags as `freight_id` does.
const TWINS: [&str; 2] = ["1.0.196", "1.0.6332"];
const SHARED: &str = "8c4dea";

fn cli(served: &Served, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    let endpoint = served.endpoint();
    all.extend(["--server", &endpoint, "--output", "json"]);
    run(&all)
}

fn json(out: &std::process::Output) -> Value {
    let text = stdout(out);
    serde_json::from_str(text.lines().last().unwrap_or("null")).expect("json")
}

/// A query that waits until the server reflects position `at`: the
/// projections may lag behind the commands that came before.
fn query(served: &Served, at: u64, args: &[&str]) -> std::process::Output {
    let at = at.to_string();
    let mut all = args.to_vec();
    all.extend(["--min-position", &at]);
    cli(served, &all)
}

/// The log's head as the server reports it, once it reflects `at`.
fn head(served: &Served, at: u64) -> u64 {
    let out = query(served, at, &["history", "-p", "shop", "--limit", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["position"].as_u64())
        .max()
        .expect("some history")
}

#[test]
fn freight_is_found_by_the_start_of_its_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let served = Served::insecure_dev(&data);
    served.apply_example();
    let mut at = 0;
    let ids: Vec<String> = TWINS
        .iter()
        .map(|tag| {
            let image = format!("ghcr.io/acme/shop:{tag}");
            let alias = if *tag == TWINS[1] { "twin" } else { "" };
            let out = cli(
                &served,
                &[
                    "discover", "-p", "shop", "-w", "images", "--image", &image, "--alias", alias,
                ],
            );
            assert!(out.status.success(), "{}", stderr(&out));
            at = json(&out)["position"].as_u64().expect("position");
            let id = json(&out)["freight_id"]
                .as_str()
                .expect("freight id")
                .to_string();
            assert!(id.starts_with(SHARED), "{tag}: {id}");
            id
        })
        .collect();

    let check = |served: &Served| {
        // The table's twelve characters name one freight.
        let short = &ids[0][..12];
        let out = query(served, at, &["freight", "-p", "shop", short]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(json(&out)["freight"]["id"], ids[0].as_str());

        // The shared start names two: refused, naming both.
        let out = query(served, at, &["freight", "-p", "shop", SHARED]);
        assert_eq!(out.status.code(), Some(1));
        let said = stdout(&out) + &stderr(&out);
        assert!(said.contains("more than one freight id"), "{said}");
        for id in &ids {
            assert!(said.contains(id.as_str()), "{said}");
        }

        // History takes it too, and an alias; the index alone knows whole ids.
        for (reference, id) in [(short, &ids[0]), ("twin", &ids[1])] {
            let out = query(
                served,
                at,
                &["history", "-p", "shop", "--freight", reference],
            );
            assert!(out.status.success(), "{}", stderr(&out));
            let entries: Vec<Value> = stdout(&out)
                .lines()
                .map(|l| serde_json::from_str(l).expect("history json"))
                .collect();
            assert!(!entries.is_empty(), "{reference}");
            for e in entries {
                assert_eq!(e["freight"], id.as_str(), "{reference}: {e}");
            }
        }
        let out = query(
            served,
            at,
            &["history", "-p", "shop", "--freight", "abcdef123"],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert_eq!(json(&out)["error"], "NotFound", "{}", stdout(&out));

        // A command with the shared start is refused before anything is appended.
        let before = head(served, at);
        let out = cli(
            served,
            &[
                "record-verification",
                "-p",
                "shop",
                "-s",
                "dev",
                "--freight",
                SHARED,
                "--check",
                "integration-tests",
                "--pass",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert_eq!(json(&out)["error"], "InvalidArgument", "{}", stdout(&out));
        assert_eq!(head(served, at), before);
    };
    check(&served);

    // With the short id, the command names the whole one.
    let out = cli(
        &served,
        &[
            "approve-freight",
            "-p",
            "shop",
            "-s",
            "staging",
            "--freight",
            &ids[1][..12],
            "--reason",
            "test",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let approved_at = json(&out)["position"].as_u64().expect("position");
    let out = query(&served, approved_at, &["freight", "-p", "shop", &ids[1]]);
    let approved = json(&out)["freight"]["approved_for"].to_string();
    assert!(approved.contains("staging"), "{approved}");
    assert!(served.terminate().success());

    // After a restart the projections keep older freight only in their
    // store: found there the same way.
    let served = Served::insecure_dev(&data);
    check(&served);
    assert!(served.terminate().success());
}

/// Two idempotency keys whose promotions' ids share their first six hex
/// digits (`prm-63cc50`): a promotion id is the start of the SHA-256 of its
/// request's command id, which is the idempotency key when one is given.
const PROMOTION_KEYS: [&str; 2] = ["prefix-test-6600", "prefix-test-7036"];
const SHARED_PROMOTION: &str = "prm-63cc50";

#[test]
fn promotions_are_found_by_the_start_of_their_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let served = Served::insecure_dev(&data);
    served.apply_example();
    // Two freight bypassed into prod (so no soak or freeze is in the way),
    // and a promotion of each, waiting for approvals.
    let mut ids = Vec::new();
    for (tag, key) in ["1.0.1", "1.0.2"].into_iter().zip(PROMOTION_KEYS) {
        let image = format!("ghcr.io/acme/shop:{tag}");
        let out = cli(
            &served,
            &[
                "discover", "-p", "shop", "-w", "images", "--image", &image, "--alias", tag,
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let bypass = [
            "approve-freight",
            "-p",
            "shop",
            "-s",
            "prod",
            "--freight",
            tag,
            "--reason",
            "test",
            "--ticket",
            "CHG-1",
        ];
        assert!(cli(&served, &bypass).status.success());
        let promote = [
            "promote",
            "-p",
            "shop",
            "-s",
            "prod",
            "--freight",
            tag,
            "--ticket",
            "CHG-1",
            "--idempotency-key",
            key,
        ];
        let out = cli(&served, &promote);
        assert!(out.status.success(), "{}", stderr(&out));
        let id = json(&out)["promotion_id"].as_str().expect("id").to_string();
        assert!(id.starts_with(SHARED_PROMOTION), "{key}: {id}");
        ids.push((id, json(&out)["position"].as_u64().expect("position")));
    }
    let at = ids[1].1;
    let (first, second) = (ids[0].0.clone(), ids[1].0.clone());

    // The shared start names two: refused by queries and commands, naming
    // both, and nothing is appended.
    let before = head(&served, at);
    for args in [
        &["promotions", "-p", "shop", SHARED_PROMOTION][..],
        &["approve", "-p", "shop", "--promotion", SHARED_PROMOTION],
        &[
            "report",
            "-p",
            "shop",
            "--promotion",
            SHARED_PROMOTION,
            "--started",
        ],
    ] {
        let out = cli(&served, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        let said = stdout(&out) + &stderr(&out);
        assert!(
            said.contains("more than one promotion id"),
            "{args:?}: {said}"
        );
        assert!(
            said.contains(&first) && said.contains(&second),
            "{args:?}: {said}"
        );
    }
    assert_eq!(head(&served, at), before, "a refused reference appended");

    // A longer start names one, in queries and in commands, whose reply
    // gives the whole id.
    let start = &first[..12];
    let out = query(&served, at, &["promotions", "-p", "shop", start]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["promotion"]["id"], first.as_str());
    let out = cli(
        &served,
        &["reject", "-p", "shop", "--promotion", start, "-m", "no"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["promotion_id"], first.as_str());
    let rejected_at = json(&out)["position"].as_u64().expect("position");
    let out = query(&served, rejected_at, &["promotions", "-p", "shop", &first]);
    assert_eq!(json(&out)["promotion"]["status"], "Rejected");
    let out = query(&served, rejected_at, &["promotions", "-p", "shop", &second]);
    assert_eq!(
        json(&out)["promotion"]["status"],
        "Requested",
        "only the one named"
    );
    let out = query(
        &served,
        rejected_at,
        &["history", "-p", "shop", "--promotion", &second[..12]],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let promotions: Vec<String> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("history json")["promotion"].to_string())
        .collect();
    assert_eq!(promotions, [format!("{second:?}")]);

    // A start of no id, and one too short to be taken for a start.
    let out = cli(
        &served,
        &["approve", "-p", "shop", "--promotion", "prm-000000"],
    );
    assert_eq!(json(&out)["error"], "NotFound", "{}", stdout(&out));
    let out = query(&served, at, &["promotions", "-p", "shop", "prm-63cc"]);
    assert_eq!(json(&out)["error"], "NotFound", "{}", stdout(&out));
    assert!(stderr(&out).contains("6 hex digits") || stdout(&out).contains("6 hex digits"));
    assert!(served.terminate().success());
}
