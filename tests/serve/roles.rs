//! `--roles`: a commands-only and a queries-only process on one stream,
//! each serving (and reporting health for) its own services only, and
//! together doing what one `waybill serve` does; roles that leave nothing
//! to run are refused.

use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use waybill_ledger::testing::NatsServer;

use crate::common::{self, run, stderr, waybill, Served};
use crate::{insecure_dev_cmd, service_health};

/// A commands-only and a queries-only process on one JetStream stream: each
/// serves its own services only (the others are UNIMPLEMENTED and unknown to
/// health), and together they do what one `waybill serve` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_split_commands_and_queries_across_processes() {
    use waybill_proto::v1 as pb;
    let nats = NatsServer::start();
    let (cdir, qdir) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let commands = Served::start(
        waybill()
            .args(["serve", "--insecure-dev", "--roles", "commands"])
            .args(["--nats", &nats.url(), "--data-dir"])
            .arg(cdir.path()),
    );
    let queries =
        Served::start(insecure_dev_cmd(&nats, qdir.path()).env("WAYBILL_ROLES", "queries"));
    let (c, q) = (commands.endpoint(), queries.endpoint());
    // `None`: health does not know the service (NOT_FOUND).
    let serving = Some(ServingStatus::Serving);
    for (endpoint, service, want) in [
        (&c, "waybill.v1.CommandService", serving),
        (&c, "waybill.v1.QueryService", None),
        (&c, "waybill.v1.AuditService", None),
        (&q, "waybill.v1.CommandService", None),
        (&q, "waybill.v1.QueryService", serving),
        (&q, "waybill.v1.AuditService", serving),
    ] {
        // The query side reports SERVING once its (empty) read models have
        // caught up with the log, a moment after the start.
        let mut got = service_health(endpoint, service).await;
        for _ in 0..500 {
            if got == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            got = service_health(endpoint, service).await;
        }
        assert_eq!(got, want, "{service} at {endpoint}");
    }
    // The commands process keeps no read models, and signs nothing: it
    // makes no signing key and says nothing about one.
    assert!(!cdir.path().join("projections").exists());
    assert!(!cdir.path().join("signing.key").exists());
    assert!(qdir.path().join("signing.key").exists());
    assert!(!commands.log_so_far().contains("signing key"));
    // A read sent to it says why it is refused, and what to do.
    let out = run(&["status", "-p", "shop", "--server", &c]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not serve that call"),
        "{}",
        stderr(&out)
    );

    commands.apply_example();
    let mut cmd = pb::command_service_client::CommandServiceClient::connect(c.clone())
        .await
        .expect("connect");
    let reply = cmd
        .record_discovery(common::discovery("1.0", ""))
        .await
        .expect("discovery")
        .into_inner();
    let mut query = pb::query_service_client::QueryServiceClient::connect(q.clone())
        .await
        .expect("connect");
    let freight = query
        .get_freight(pb::GetFreightRequest {
            project: "shop".into(),
            freight: reply.freight_id.clone(),
            min_position: reply.position,
        })
        .await
        .expect("the queries process reflects the commands process's append")
        .into_inner();
    assert!(freight.position >= reply.position);

    // The command verbs say where a promotion stands by asking the queries
    // process when told where it is (--query-server); without it they say
    // what they appended, and nothing more.
    let promote = |freight: &str, extra: &[&str]| {
        let mut args = vec!["promote", "-p", "shop", "-s", "dev", "--freight", freight];
        args.extend(["--server", &c]);
        args.extend(extra);
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = promote(&reply.freight_id, &[]);
    assert!(said.starts_with("promotion requested"), "{said}");
    assert!(!said.contains("into dev is"), "{said}");
    let second = cmd
        .record_discovery(common::discovery("1.2", ""))
        .await
        .expect("discovery")
        .into_inner();
    let said = promote(&second.freight_id, &["--query-server", &q]);
    assert!(said.contains("into dev is Succeeded"), "{said}");
    // A queries process that cannot be reached does not stop the command:
    // only what it would add is missing.
    let third = cmd
        .record_discovery(common::discovery("1.3", ""))
        .await
        .expect("discovery")
        .into_inner();
    let out = run(&[
        "promote",
        "-p",
        "shop",
        "-s",
        "dev",
        "--freight",
        &third.freight_id,
        "--server",
        &c,
        "--query-server",
        "127.0.0.1:1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("promotion requested"), "{said}");
    assert!(!said.contains("into dev is"), "{said}");
    assert!(
        stderr(&out).contains("the queries process at 127.0.0.1:1 cannot be reached"),
        "{}",
        stderr(&out)
    );

    // Each refuses the other's services.
    let unimplemented = pb::query_service_client::QueryServiceClient::connect(c.clone())
        .await
        .expect("connect")
        .list_stages(pb::ListStagesRequest {
            project: "shop".into(),
            min_position: 0,
        })
        .await
        .expect_err("no queries on the commands process");
    assert_eq!(unimplemented.code(), tonic::Code::Unimplemented);
    let unimplemented = pb::command_service_client::CommandServiceClient::connect(q.clone())
        .await
        .expect("connect")
        .record_discovery(common::discovery("1.1", ""))
        .await
        .expect_err("no commands on the queries process");
    assert_eq!(unimplemented.code(), tonic::Code::Unimplemented);

    // Roles that leave nothing to run are refused before anything starts.
    let out = run(&["serve", "--roles", "reactors", "--no-reactors"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nothing to run"), "{}", stderr(&out));
    let out = run(&["serve", "--roles", "everything"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("everything"), "{}", stderr(&out));
    assert!(commands.terminate().success());
    assert!(queries.terminate().success());
}

/// A command returns once the read models show what it wrote, so that the
/// next query sees its effect without `--min-position`: with the queries
/// process stopped (SIGSTOP) a discovery is appended and the CLI waits;
/// continued, it returns and a plain query shows the freight. A queries
/// process that stays stopped holds a command up for a bounded time only,
/// and a freight named by the start of its id is resolved by the command
/// service without it.
#[test]
fn a_command_returns_once_the_queries_show_it() {
    let nats = NatsServer::start();
    let (cdir, qdir) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let serve = |role: &str, dir: &std::path::Path| {
        Served::start(
            waybill()
                .args(["serve", "--insecure-dev", "--roles", role])
                .args(["--nats", &nats.url(), "--data-dir"])
                .arg(dir),
        )
    };
    let (commands, queries) = (
        serve("commands", cdir.path()),
        serve("queries", qdir.path()),
    );
    let (c, q) = (commands.endpoint(), queries.endpoint());
    commands.apply_example();
    let signal = |name: &str| {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &queries.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
    };
    let discover = |tag: &str| {
        waybill()
            .args(["discover", "-p", "shop", "-w", "images", "--image"])
            .arg(format!("ghcr.io/acme/shop:{tag}"))
            .args(["--server", &c, "--query-server", &q, "--output", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn discover")
    };
    // What it wrote and how it ended, within a minute.
    let ended = |mut child: std::process::Child| {
        for _ in 0..600 {
            if child.try_wait().expect("try_wait").is_some() {
                return child.wait_with_output().expect("output");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        panic!("the command did not return");
    };
    // Its reply, once it has succeeded.
    let finish = |child: std::process::Child| {
        let out = ended(child);
        assert!(out.status.success(), "{}", stderr(&out));
        let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json reply");
        reply
    };

    signal("STOP");
    let mut child = discover("1.0");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "returned before the queries process could show it"
    );
    signal("CONT");
    let reply = finish(child);
    let first = reply["freight_id"]
        .as_str()
        .expect("freight id")
        .to_string();
    let out = run(&["freight", "-p", "shop", &first, "--server", &q]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Stopped for good: the command returns all the same, appended.
    signal("STOP");
    let reply = finish(discover("1.1"));
    // A freight named by the start of its id: the command service resolves
    // it (the queries process cannot), and the command returns, recorded,
    // without the line on where verification stands.
    let verify = waybill()
        .args(["record-verification", "-p", "shop", "-s", "dev"])
        .args(["--check", "smoke", "--pass", "--freight", &first[..12]])
        .args(["--server", &c, "--query-server", &q, "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn record-verification");
    let verified = finish(verify);
    signal("CONT");
    // The event names the whole id.
    let at = verified["position"].as_u64().expect("position").to_string();
    let out = run(&[
        "history",
        "-p",
        "shop",
        "--freight",
        &first,
        "--server",
        &q,
        "--min-position",
        &at,
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recorded = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|e| e["event_type"] == "VerificationRecorded" && e["freight"] == first.as_str());
    assert!(recorded, "{}", String::from_utf8_lossy(&out.stdout));
    let position = reply["position"].as_u64().expect("position").to_string();
    let freight = reply["freight_id"].as_str().expect("freight id");
    let out = run(&[
        "freight",
        "-p",
        "shop",
        freight,
        "--server",
        &q,
        "--min-position",
        &position,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(commands.terminate().success());
    assert!(queries.terminate().success());
}
