//! `waybill promote --wait`: the CLI follows the promotion it requested until
//! the executor reports its end, and says how it ended in its exit code; and
//! `waybill report`, with which a deployment job reports that end (in
//! `report`). The helpers both use are here.

#[path = "../common/mod.rs"]
mod common;
mod report;

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
pub(crate) async fn executed_example(
    c: &mut CommandServiceClient<tonic::transport::Channel>,
) -> String {
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
pub(crate) async fn promotion_of(
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
