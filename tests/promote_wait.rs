//! `waybill promote --wait`: the CLI follows the promotion it requested until
//! the executor reports its end, and says how it ended in its exit code; and
//! `waybill report`, with which a deployment job reports that end.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Served, EXAMPLE_PIPELINE};
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;
use waybill_proto::v1::report_promotion_result_request::Result as Outcome;

/// `waybill promote --wait` of `tag`'s freight into `stage`, as a child.
fn promote_waiting(served: &Served, project: &str, freight: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["promote", "-p", project, "-s", "dev", "--freight", freight])
        .args(["--wait", "--server", &served.endpoint()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promote --wait")
}

/// Waits (bounded) for `child` to exit; its code and standard output.
fn finish(mut child: Child) -> (Option<i32>, String) {
    for _ in 0..600 {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            let said = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            return (out.status.code(), said);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("promote --wait did not end");
}

/// Applies the example with `dev` deployed by an executor (not record-only)
/// and discovers image 1.0; its freight id.
async fn executed_example(c: &mut CommandServiceClient<tonic::transport::Channel>) -> String {
    let example = std::fs::read_to_string(EXAMPLE_PIPELINE).expect("example");
    c.apply_pipeline(pb::ApplyPipelineRequest {
        yaml: example.replacen("record_only: true", "record_only: false", 1),
        ..Default::default()
    })
    .await
    .expect("apply");
    c.record_discovery(common::discovery("1.0", ""))
        .await
        .expect("discover")
        .into_inner()
        .freight_id
}

/// The promotion of `freight` in `shop`, once it is requested.
async fn promotion_of(
    q: &mut pb::query_service_client::QueryServiceClient<tonic::transport::Channel>,
    freight: &str,
) -> String {
    for _ in 0..600 {
        let list = match q
            .list_promotions(pb::ListPromotionsRequest {
                project: "shop".into(),
                freight: freight.into(),
                ..Default::default()
            })
            .await
        {
            Ok(reply) => reply.into_inner().promotions,
            // The read models have not seen the freight yet.
            Err(status) if status.code() == tonic::Code::NotFound => Vec::new(),
            Err(status) => panic!("promotions: {status:?}"),
        };
        if let Some(p) = list.first() {
            return p.id.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no promotion of {freight}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_wait_follows_the_promotion_to_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::insecure_dev(dir.path());
    let channel = served.channel().await;
    let mut c = CommandServiceClient::new(channel.clone());
    let mut q = pb::query_service_client::QueryServiceClient::new(channel);
    let example = std::fs::read_to_string(EXAMPLE_PIPELINE).expect("example");
    // `shop`: dev deployed by an executor; `tiny`: every stage record-only.
    let executed = example.replacen("record_only: true", "record_only: false", 1);
    let tiny = example.replace("project: shop", "project: tiny");
    for yaml in [executed, tiny] {
        c.apply_pipeline(pb::ApplyPipelineRequest {
            yaml,
            ..Default::default()
        })
        .await
        .expect("apply");
    }
    let mut discover = async |project: &str, tag: &str| {
        let mut d = common::discovery(tag, "");
        d.project = project.into();
        c.record_discovery(d)
            .await
            .expect("discover")
            .into_inner()
            .freight_id
    };
    let (f1, f2, f3) = (
        discover("shop", "1.0").await,
        discover("shop", "2.0").await,
        discover("shop", "3.0").await,
    );
    let tiny_freight = discover("tiny", "1.0").await;

    // A record-only stage: the promotion ends as it is authorized.
    let (code, said) = finish(promote_waiting(&served, "tiny", &tiny_freight, &[]));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("into dev: Succeeded"), "{said}");

    // The executor reports started, then succeeded: exit 0.
    let mut report = async |id: &str, outcome: Outcome, details: &str| {
        c.report_promotion_result(pb::ReportPromotionResultRequest {
            project: "shop".into(),
            promotion_id: id.into(),
            result: outcome as i32,
            details: details.into(),
            ..Default::default()
        })
        .await
        .expect("report");
    };
    let child = promote_waiting(&served, "shop", &f1, &[]);
    let id = promotion_of(&mut q, &f1).await;
    report(&id, Outcome::Started, "rolling out").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    report(&id, Outcome::Succeeded, "rolled out").await;
    let (code, said) = finish(child);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!("promotion {id} into dev: Succeeded")),
        "{said}"
    );

    // It fails: exit 1, with the executor's words.
    let child = promote_waiting(&served, "shop", &f2, &["--output", "json"]);
    let id = promotion_of(&mut q, &f2).await;
    report(&id, Outcome::Failed, "helm upgrade timed out").await;
    let (code, said) = finish(child);
    assert_eq!(code, Some(1), "{said}");
    let last: serde_json::Value =
        serde_json::from_str(said.lines().last().expect("a line")).expect("json");
    assert_eq!(last["status"], "Failed", "{said}");
    assert!(last["details"]
        .as_str()
        .expect("details")
        .contains("helm upgrade timed out"));

    // Nobody reports: exit 3 once the timeout passes; the promotion goes on.
    let (code, said) = finish(promote_waiting(&served, "shop", &f3, &["--timeout", "1s"]));
    assert_eq!(code, Some(3), "{said}");
    assert!(said.contains("had not ended after 1s"), "{said}");
    assert!(served.terminate().success());
}

/// `waybill serve` on `port` (0: any free one; a fixed one to restart it
/// there), with the port it listens on, once it says so itself: a probe of
/// the port could reach another test's server that took it meanwhile.
fn serve_on(port: u16, data: &std::path::Path) -> (Child, u16) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["serve", "--insecure-dev", "--no-reactors", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("waybill listening on ") {
                    let port = addr.trim().rsplit(':').next().and_then(|p| p.parse().ok());
                    return (child, port.expect("a port"));
                }
                if line.starts_with("error:") {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("waybill serve on port {port}: {line}");
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("waybill serve on port {port} did not say it listens: {e}");
            }
        }
    }
}

/// SIGTERM, and the server's exit.
fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(child.wait().expect("wait").success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_wait_outlives_a_server_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, port) = serve_on(0, dir.path());
    let endpoint = format!("http://127.0.0.1:{port}");
    let connect = async || {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        (
            CommandServiceClient::new(channel.clone()),
            pb::query_service_client::QueryServiceClient::new(channel),
        )
    };
    let (mut c, mut q) = connect().await;
    let freight = executed_example(&mut c).await;
    let child = Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["promote", "-p", "shop", "-s", "dev", "--freight", &freight])
        .args(["--wait", "--timeout", "2m", "--server", &endpoint])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promote --wait");
    let id = promotion_of(&mut q, &freight).await;

    // The server goes away and comes back while the CLI waits.
    stop(server);
    let (server, _) = serve_on(port, dir.path());
    let (mut c, _) = connect().await;
    c.report_promotion_result(pb::ReportPromotionResultRequest {
        project: "shop".into(),
        promotion_id: id.clone(),
        result: Outcome::Succeeded as i32,
        ..Default::default()
    })
    .await
    .expect("report");
    let (code, said) = finish(child);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!("promotion {id} into dev: Succeeded")),
        "{said}"
    );
    stop(server);
}

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
        said.contains(&format!("promotion {id} into dev is Running")),
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
        .record_discovery(common::discovery("2.0", ""))
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
    let (code, said) = cli(&["promote", "-p", "shop", "-s", "dev", "--freight", &other]);
    assert_eq!(code, Some(0), "{said}");
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
    // Nothing of the first freight waits any more; a half-named promotion
    // or both ways of naming it are usage errors.
    let (code, said) = cli(&[
        "report",
        "-p",
        "shop",
        "-s",
        "dev",
        "--freight",
        &freight,
        "--started",
    ]);
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
    assert!(served.terminate().success());
}
