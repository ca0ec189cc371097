//! The per-connection rate limit: a connection that sends faster than
//! `--rate-limit` is refused with RESOURCE_EXHAUSTED once its burst is
//! spent; another connection is not affected; the server keeps serving.

mod common;

use common::{waybill, Served};
use tonic::Code;
use waybill_proto::v1 as pb;
use waybill_proto::v1::query_service_client::QueryServiceClient;

async fn burst(endpoint: String, calls: usize) -> (usize, usize) {
    let mut q = QueryServiceClient::connect(endpoint)
        .await
        .expect("connect");
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..calls {
        match q.projection_status(pb::ProjectionStatusRequest {}).await {
            Ok(_) => ok += 1,
            Err(s) if s.code() == Code::ResourceExhausted => limited += 1,
            Err(s) => panic!("{s:?}"),
        }
    }
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_connection_is_slowed_and_others_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .args([
                "serve",
                "--insecure-dev",
                "--no-checkpoints",
                "--rate-limit",
                "5",
            ])
            .arg("--data-dir")
            .arg(dir.path()),
    );
    // A burst of 10, then about 5 per second: most of 100 quick calls are refused.
    let (ok, limited) = burst(served.endpoint(), 100).await;
    assert!(ok >= 10, "{ok} admitted");
    assert!(limited >= 50, "{limited} refused of 100");
    // A second connection has its own allowance.
    let (ok, _) = burst(served.endpoint(), 5).await;
    assert_eq!(ok, 5);
    assert!(served.terminate().success());
}
