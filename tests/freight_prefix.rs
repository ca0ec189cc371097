//! Freight named by the start of its id, as the tables print it: the CLI and
//! `GetFreight` take it when one id starts so, and refuse it, naming the ids,
//! when several do; a refused reference appends nothing.

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
