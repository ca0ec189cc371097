//! The correlation id of a command travels from gRPC metadata
//! (`x-correlation-id`) into the tracing span of its handling, into the
//! event it appends, and back in the reply's metadata; one is made up when
//! the caller sends none, and a malformed one is refused.

mod common;

use common::{run, stdout, waybill, Served};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request};
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;

const CORRELATION: &str = "corr-test-42";

fn apply(correlation: Option<&str>) -> Request<pb::ApplyPipelineRequest> {
    let yaml = std::fs::read_to_string(common::EXAMPLE_PIPELINE).expect("pipeline");
    let mut request = Request::new(pb::ApplyPipelineRequest {
        yaml,
        source_uri: "pipeline.yaml".into(),
        ..Default::default()
    });
    if let Some(c) = correlation {
        let value: MetadataValue<_> = c.parse().expect("ascii");
        request.metadata_mut().insert("x-correlation-id", value);
    }
    request
}

#[test]
fn correlation_ids_reach_the_span_the_event_and_the_reply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8").to_string();
    let served = Served::start(
        waybill()
            .env("WAYBILL_LOG", "warn,waybill_commands=debug")
            .args([
                "serve",
                "--data-dir",
                &data,
                "--insecure-dev",
                "--no-checkpoints",
            ]),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut client = CommandServiceClient::connect(served.endpoint())
            .await
            .expect("connect");
        let reply = client
            .apply_pipeline(apply(Some(CORRELATION)))
            .await
            .expect("apply");
        assert_eq!(
            reply
                .metadata()
                .get("x-correlation-id")
                .and_then(|v| v.to_str().ok()),
            Some(CORRELATION)
        );
        // None sent: one is made up (a UUID) and returned.
        let reply = client.apply_pipeline(apply(None)).await.expect("apply");
        let made_up = reply
            .metadata()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .expect("a correlation id");
        assert!(uuid::Uuid::parse_str(made_up).is_ok(), "{made_up}");
        // Malformed: refused, nothing appended.
        let refused = client
            .apply_pipeline(apply(Some("has space")))
            .await
            .expect_err("a space");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    });
    let log = served.kill_and_log();
    assert!(
        log.lines()
            .any(|l| l.contains("command accepted") && l.contains(CORRELATION)),
        "no span with the correlation id:\n{log}"
    );

    let out = run(&["dump", "--data-dir", &data]);
    assert!(out.status.success());
    let records: Vec<Vec<u8>> = stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            hex::decode(v["record"].as_str().expect("record")).expect("hex")
        })
        .collect();
    // The second apply of the same file changed nothing; the refused one appended nothing.
    assert_eq!(records.len(), 1);
    let has = |r: &[u8], s: &str| r.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(
        has(&records[0], CORRELATION),
        "the event carries the correlation id"
    );
}
