//! Exports of a time range: exactly the records stamped within it and the
//! promotions they requested, verified; a range after the last record
//! gives an empty export that says so, and verifies.

use crate::common::{stderr, stdout, waybill};
use crate::setup::Setup;
use crate::{lines, verify};

/// An export of a time range holds exactly the records stamped within it
/// (`from` inclusive, `to` exclusive) and the promotions requested by them,
/// and verifies. `all_events`, `all_promotions`: the lines of a whole export.
pub(crate) fn ranged(s: &Setup, all_events: &[String], all_promotions: &[String]) {
    let parse = |l: &String| serde_json::from_str::<serde_json::Value>(l).expect("json line");
    let events: Vec<serde_json::Value> = all_events.iter().map(parse).collect();
    let from = events[3]["time"].as_str().expect("time").to_string();
    let to = events[events.len() - 3]["time"]
        .as_str()
        .expect("time")
        .to_string();
    let dir = s.export_with("ranged", &["--from", &from, "--to", &to]);
    let (code, report) = verify(&dir, &s.pubkey);
    assert_eq!(code, 0, "{report}");
    let seq = |v: &serde_json::Value| v["project_seq"].as_u64().expect("project_seq");
    let got: Vec<serde_json::Value> = lines(&dir.join("events.jsonl")).iter().map(parse).collect();
    let stamp = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v["time"].as_str().expect("time")).expect("rfc 3339")
    };
    let (from_t, to_t) = (
        chrono::DateTime::parse_from_rfc3339(&from).expect("from"),
        chrono::DateTime::parse_from_rfc3339(&to).expect("to"),
    );
    let expected: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| stamp(e) >= from_t && stamp(e) < to_t)
        .collect();
    assert!(
        !expected.is_empty() && expected.len() < events.len(),
        "the range should hold some records, not all"
    );
    assert_eq!(got.iter().collect::<Vec<_>>(), expected);
    let held = format!(
        "the project had {} records when exported; this export holds sequence {}..{}",
        all_events.len(),
        seq(expected[0]),
        seq(expected[expected.len() - 1])
    );
    assert!(report.contains(&held), "{held}: {report}");
    let positions = |v: &[&serde_json::Value]| {
        v.iter()
            .map(|e| e["position"].as_u64().expect("position"))
            .collect::<Vec<_>>()
    };
    let span = positions(&expected);
    let (lo, hi) = (span[0], span[span.len() - 1]);
    let want: Vec<serde_json::Value> = all_promotions
        .iter()
        .map(parse)
        .filter(|p| (lo..=hi).contains(&p["requested_position"].as_u64().expect("position")))
        .collect();
    let have: Vec<serde_json::Value> = lines(&dir.join("promotions.jsonl"))
        .iter()
        .map(parse)
        .collect();
    assert!(!want.is_empty() && want.len() < all_promotions.len());
    assert_eq!(
        have.iter().map(|p| &p["promotion_id"]).collect::<Vec<_>>(),
        want.iter().map(|p| &p["promotion_id"]).collect::<Vec<_>>()
    );

    // A range after the last record: an empty export that says so, and verifies.
    let out_dir = s.dir.path().join("empty-range");
    let out = waybill()
        .args([
            "export",
            "--project",
            "shop",
            "--from",
            "2999-01-01",
            "--out",
        ])
        .arg(&out_dir)
        .args(["--server", &s.served.endpoint()])
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(
            "exported no events (none in the range asked), 0 promotions and 0 policies"
        ),
        "{}",
        stdout(&out)
    );
    let (code, report) = verify(&out_dir, &s.pubkey);
    assert_eq!(code, 0, "{report}");
    assert!(lines(&out_dir.join("events.jsonl")).is_empty());
    for said in [
        "no records of shop in the range exported",
        "none is in the range",
        "promotions  none: the range holds no PromotionRequested record",
    ] {
        assert!(report.contains(said), "{said}: {report}");
    }

    // From the last record's time on: one record, said in the singular.
    let last = &events[events.len() - 1];
    assert!(
        stamp(&events[events.len() - 2]) < stamp(last),
        "records carry distinct times"
    );
    let out_dir = s.dir.path().join("last-record");
    let out = waybill()
        .args(["export", "--project", "shop", "--out"])
        .arg(&out_dir)
        .args(["--from", last["time"].as_str().expect("time")])
        .args(["--server", &s.served.endpoint()])
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", stderr(&out));
    let position = last["position"].as_u64().expect("position");
    assert!(
        stdout(&out).starts_with(&format!("exported 1 event (position {position}), ")),
        "{}",
        stdout(&out)
    );
    let (code, report) = verify(&out_dir, &s.pubkey);
    assert_eq!(code, 0, "{report}");
    // Nothing after the range, but everything before it is left out: that
    // is said too.
    let held = format!("this export holds sequence {0}..{0}", seq(last));
    assert!(report.contains(&held), "{held}: {report}");
}
