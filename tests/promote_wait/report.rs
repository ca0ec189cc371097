//! `waybill report`: a deployment job reports what it did, by promotion or
//! by what it deployed where, and a retried job is answered as before.

use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;

use super::{executed_example, promotion_of};
use crate::common::{self, Served};

/// A deployment job reports through the CLI: started, then succeeded, each
/// with the promotion's standing; a report without an outcome, with two, or
/// about a promotion that does not exist or has ended, is refused. The
/// promotion's history then holds those events and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_records_what_the_deployment_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::insecure_dev(dir.path());
    let channel = served.channel().await;
    let mut c = CommandServiceClient::new(channel.clone());
    let mut q = pb::query_service_client::QueryServiceClient::new(channel);
    let freight = executed_example(&mut c).await;
    let endpoint = served.endpoint();
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &endpoint]);
        let out = common::run(&all);
        (
            out.status.code(),
            common::stdout(&out) + &common::stderr(&out),
        )
    };
    let (code, said) = cli(&["promote", "-p", "shop", "-s", "dev", "--freight", &freight]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("into dev is Authorized"), "{said}");
    let id = promotion_of(&mut q, &freight).await;
    let report = |args: &[&str]| {
        let mut all = vec!["report", "-p", "shop", "--promotion", &id];
        all.extend(args);
        cli(&all)
    };

    // Usage errors: no outcome, or two.
    for wrong in [&[][..], &["--started", "--failed"][..]] {
        let (code, said) = report(wrong);
        assert_eq!(code, Some(2), "{wrong:?}: {said}");
    }
    let (code, said) = cli(&[
        "report",
        "-p",
        "shop",
        "--promotion",
        "prm-0000000000000000",
        "--started",
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("NotFound"), "{said}");

    let (code, said) = report(&["--started", "-m", "helm upgrade running"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.starts_with("promotion started: project shop"),
        "{said}"
    );
    assert!(
        said.contains(&format!("promotion {id} of ")) && said.contains(" into dev is Running"),
        "{said}"
    );
    let (code, said) = report(&["--succeeded", "-m", "https://ci.example/deploys/7"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("is Succeeded"), "{said}");
    assert!(said.contains("https://ci.example/deploys/7"), "{said}");
    // The job is retried: the same report again is its first outcome, and
    // appends nothing.
    let (code, again) = report(&["--succeeded", "-m", "https://ci.example/deploys/7"]);
    assert_eq!(code, Some(0), "{again}");
    let first = said.lines().next().expect("a line").trim_end_matches(')');
    assert!(
        again.starts_with(&format!("{first}, already recorded: nothing new appended)")),
        "{again}"
    );
    let stages = q
        .list_stages(pb::ListStagesRequest {
            project: "shop".into(),
            min_position: 0,
        })
        .await
        .expect("stages")
        .into_inner();
    let dev = stages.stages.iter().find(|s| s.name == "dev").expect("dev");
    assert_eq!(
        dev.current.as_ref().map(|c| c.freight.as_str()),
        Some(freight.as_str())
    );

    // An ended promotion takes no more reports.
    let (code, said) = report(&["--failed"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("FailedPrecondition"), "{said}");

    // A promotion's history: its events, and no other promotion's.
    let other = c
        .record_discovery(pb::RecordDiscoveryRequest {
            alias: "v2.0".into(),
            ..common::discovery("2.0", "")
        })
        .await
        .expect("discover")
        .into_inner()
        .freight_id;
    // Another freight's promotion fails and is requested again: the same
    // stage and freight, another promotion.
    let (code, said) = cli(&["promote", "-p", "shop", "-s", "dev", "--freight", &other]);
    assert_eq!(code, Some(0), "{said}");
    let failed = promotion_of(&mut q, &other).await;
    let (code, said) = cli(&[
        "report",
        "-p",
        "shop",
        "--promotion",
        &failed,
        "--failed",
        "-m",
        "image pull backoff",
    ]);
    assert_eq!(code, Some(0), "{said}");
    // The stage's detail says its last promotion failed, and why, naming
    // the freight by its alias.
    let (code, said) = cli(&["status", "-p", "shop", "dev"]);
    assert_eq!(code, Some(0), "{said}");
    let last = format!("last promotion: {failed} of v2.0 Failed");
    assert!(said.contains(&last), "{said}");
    assert!(
        said.contains(": executor reported failure: image pull backoff"),
        "{said}"
    );
    let (code, said) = cli(&["promote", "-p", "shop", "-s", "dev", "--freight", &other]);
    assert_eq!(code, Some(0), "{said}");
    // It waits for the executor: the stage's queue says what it is.
    let again = q
        .list_promotions(pb::ListPromotionsRequest {
            project: "shop".into(),
            freight: other.clone(),
            status: "Authorized".into(),
            ..Default::default()
        })
        .await
        .expect("promotions")
        .into_inner()
        .promotions
        .first()
        .map(|p| p.id.clone())
        .expect("the promotion requested again");
    assert_ne!(again, failed);
    let (code, said) = cli(&["status", "-p", "shop", "dev"]);
    assert_eq!(code, Some(0), "{said}");
    let queued = said
        .lines()
        .find(|l| l.trim_start().starts_with(&again))
        .unwrap_or_else(|| panic!("{again} is not in the queue: {said}"));
    assert!(
        queued.contains(" v2.0 ")
            && queued.contains(" Authorized ")
            && queued.contains(" anonymous "),
        "{queued}"
    );
    let events_of = |promotion: &str| {
        let (code, said) = cli(&[
            "history",
            "-p",
            "shop",
            "--promotion",
            promotion,
            "--output",
            "json",
        ]);
        assert_eq!(code, Some(0), "{said}");
        said.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|e| e["event_type"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        events_of(&failed),
        ["PromotionRequested", "PromotionFailed"]
    );
    // What the executor said is in the failure's history item.
    let (code, said) = cli(&["history", "-p", "shop", "--promotion", &failed]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("[reason: executor reported failure: image pull backoff]"),
        "{said}"
    );
    assert_eq!(
        events_of(&id),
        [
            "PromotionRequested",
            "PromotionStarted",
            "PromotionSucceeded"
        ]
    );
    let (code, said) = cli(&["promotions", "-p", "shop", &id]);
    assert_eq!(code, Some(0), "{said}");
    let history = said
        .split("  history:\n")
        .nth(1)
        .expect("a history section");
    assert_eq!(
        history.lines().count(),
        4,
        "three events and the footer: {said}"
    );
    assert!(history.contains("[reason: helm upgrade running]"), "{said}");
    let (code, said) = cli(&[
        "history",
        "-p",
        "shop",
        "--promotion",
        "prm-0000000000000000",
    ]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("no promotion \"prm-0000000000000000\" in shop"),
        "{said}"
    );

    // A job that knows what it deployed where, not the promotion: the one
    // of that freight into that stage that waits for its executor (the
    // retry, not the failed one).
    let (code, said) = cli(&[
        "report",
        "-p",
        "shop",
        "-s",
        "dev",
        "--freight",
        &other,
        "--started",
    ]);
    assert_eq!(code, Some(0), "{said}");
    let retried = said
        .lines()
        .find_map(|l| l.strip_prefix("promotion prm-"))
        .map(|rest| format!("prm-{}", &rest[..16]))
        .expect("the promotion's standing");
    assert_ne!(retried, failed);
    assert!(said.contains("into dev is Running"), "{said}");
    assert_eq!(
        events_of(&retried),
        ["PromotionRequested", "PromotionStarted"]
    );
    // `waybill promotions` lists the newest first; --oldest-first in order
    // of request.
    let listed = |extra: &[&str]| {
        let mut args = vec!["promotions", "-p", "shop", "-s", "dev", "--output", "json"];
        args.extend(extra);
        let (code, said) = cli(&args);
        assert_eq!(code, Some(0), "{said}");
        let json: serde_json::Value = serde_json::from_str(&said).expect("json");
        json["promotions"]
            .as_array()
            .expect("promotions")
            .iter()
            .map(|p| p["id"].as_str().expect("id").to_string())
            .collect::<Vec<_>>()
    };
    // A freight's detail ends with where it went, newest first.
    let (code, said) = cli(&["freight", "-p", "shop", &other, "--output", "json"]);
    assert_eq!(code, Some(0), "{said}");
    let json: serde_json::Value = serde_json::from_str(&said).expect("json");
    let went: Vec<&str> = json["promotions"]
        .as_array()
        .expect("promotions")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(went, [retried.as_str(), failed.as_str()], "{json}");
    let oldest = [id.clone(), failed.clone(), retried.clone()];
    assert_eq!(listed(&["--oldest-first"]), oldest);
    assert_eq!(
        listed(&[]),
        oldest.iter().rev().cloned().collect::<Vec<_>>()
    );
    let by_stage = |freight: &str, result: &str| {
        cli(&[
            "report",
            "-p",
            "shop",
            "-s",
            "dev",
            "--freight",
            freight,
            result,
        ])
    };
    // The first freight's job is retried while dev still runs it: its report
    // goes to the promotion it reported on, and is answered as before.
    let (code, said) = by_stage(&freight, "--succeeded");
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("already recorded: nothing new appended"),
        "{said}"
    );
    assert!(
        said.contains(&format!("promotion {id} of ")) && said.contains(" into dev is Succeeded"),
        "{said}"
    );
    let (code, said) = by_stage(&other, "--succeeded");
    assert_eq!(code, Some(0), "{said}");
    assert!(!said.contains("already recorded"), "{said}");
    assert!(
        said.contains(&format!("promotion {retried} of "))
            && said.contains(" into dev is Succeeded"),
        "{said}"
    );
    let (code, again) = by_stage(&other, "--succeeded");
    assert_eq!(code, Some(0), "{again}");
    assert!(
        again.contains("already recorded: nothing new appended"),
        "{again}"
    );
    // Once dev runs another freight, nothing of the first one waits, and
    // its reports are refused; a half-named promotion or both ways of
    // naming it are usage errors.
    let (code, said) = by_stage(&freight, "--succeeded");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("waits for a report"), "{said}");
    for wrong in [
        &["-s", "dev", "--started"][..],
        &[
            "--promotion",
            &retried,
            "-s",
            "dev",
            "--freight",
            &other,
            "--started",
        ][..],
    ] {
        let mut args = vec!["report", "-p", "shop"];
        args.extend(wrong);
        let (code, said) = cli(&args);
        assert_eq!(code, Some(2), "{wrong:?}: {said}");
    }

    // The deployment's tests report on what now runs in dev: the CLI says
    // where its verification stands, and warns when a result counts towards
    // nothing yet (the freight does not run there, a check dev does not
    // require).
    let verify_with = |freight: &str, check: &str, extra: &[&str]| {
        let mut args = vec![
            "record-verification",
            "-p",
            "shop",
            "-s",
            "dev",
            "--freight",
            freight,
            "--check",
            check,
            "--pass",
            "--server",
            &endpoint,
        ];
        args.extend(extra);
        let out = common::run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
        (common::stdout(&out), common::stderr(&out))
    };
    let verify = |freight: &str, check: &str| verify_with(freight, check, &[]);
    let (out, err) = verify(&other[..12], "integration-tests");
    // Named by its alias, however the command named it.
    assert!(
        out.contains("freight v2.0 in dev, verified: yes (1/1)"),
        "{out}"
    );
    assert!(!err.contains("note:"), "{err}");
    let (out, err) = verify(&freight, "integration-tests");
    assert!(!out.contains("verified:"), "{out}");
    assert!(
        err.contains(&format!(
            "note: freight {freight} does not run in dev (it runs v2.0)"
        )),
        "{err}"
    );
    let (out, _) = verify_with(&other, "integration-tests", &["--output", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(json["verification"]["verified"], true, "{json}");
    assert_eq!(json["verification"]["runs_there"], true, "{json}");
    assert!(json["position"].as_u64().is_some(), "{json}");
    let (_, err) = verify(&other, "integration-test");
    assert!(
        err.contains("does not require check integration-test (it requires integration-tests)"),
        "{err}"
    );
    assert!(served.terminate().success());
}
