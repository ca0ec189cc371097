//! A query server for the tests, on a free local port: its watch streams
//! break on purpose, and every other call is refused.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::{stream, Stream, StreamExt};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use waybill_proto::v1 as pb;
use waybill_proto::v1::query_service_server::{QueryService, QueryServiceServer};

use super::rpc::{connect, Queries};
use crate::client::{ClientArgs, Output};

type Entries = Pin<Box<dyn Stream<Item = Result<pb::HistoryEntry, Status>> + Send>>;

/// Watch streams that break: 1, 2, error; then 2 (again), 3, end; then 4 and
/// silence. A watch of project `secret` is denied; other calls are not found.
#[derive(Debug, Default)]
pub struct Flaky {
    /// The `from_position` of each watch call, in order.
    pub froms: Arc<Mutex<Vec<u64>>>,
}

fn entry(position: u64) -> Result<pb::HistoryEntry, Status> {
    Ok(pb::HistoryEntry {
        position,
        ..Default::default()
    })
}

fn nope<T>() -> Result<Response<T>, Status> {
    Err(Status::not_found("nothing here"))
}

#[tonic::async_trait]
impl QueryService for Flaky {
    async fn get_stage(
        &self,
        _: Request<pb::GetStageRequest>,
    ) -> Result<Response<pb::StageReply>, Status> {
        nope()
    }
    async fn list_stages(
        &self,
        _: Request<pb::ListStagesRequest>,
    ) -> Result<Response<pb::ListStagesReply>, Status> {
        nope()
    }
    async fn get_pipeline(
        &self,
        _: Request<pb::GetPipelineRequest>,
    ) -> Result<Response<pb::PipelineReply>, Status> {
        nope()
    }
    async fn get_freight(
        &self,
        _: Request<pb::GetFreightRequest>,
    ) -> Result<Response<pb::FreightReply>, Status> {
        nope()
    }
    async fn list_freight(
        &self,
        _: Request<pb::ListFreightRequest>,
    ) -> Result<Response<pb::ListFreightReply>, Status> {
        nope()
    }
    async fn get_promotion(
        &self,
        _: Request<pb::GetPromotionRequest>,
    ) -> Result<Response<pb::PromotionReply>, Status> {
        nope()
    }
    async fn list_promotions(
        &self,
        _: Request<pb::ListPromotionsRequest>,
    ) -> Result<Response<pb::ListPromotionsReply>, Status> {
        nope()
    }
    type HistoryStream = Entries;
    async fn history(&self, _: Request<pb::HistoryRequest>) -> Result<Response<Entries>, Status> {
        nope()
    }
    async fn state_at(
        &self,
        _: Request<pb::StateAtRequest>,
    ) -> Result<Response<pb::ListStagesReply>, Status> {
        nope()
    }
    async fn pending_approvals(
        &self,
        _: Request<pb::PendingApprovalsRequest>,
    ) -> Result<Response<pb::ListPromotionsReply>, Status> {
        nope()
    }
    async fn projection_status(
        &self,
        _: Request<pb::ProjectionStatusRequest>,
    ) -> Result<Response<pb::ProjectionStatusReply>, Status> {
        nope()
    }
    async fn list_projects(
        &self,
        _: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsReply>, Status> {
        nope()
    }
    type WatchStream = Entries;
    async fn watch(&self, req: Request<pb::WatchRequest>) -> Result<Response<Entries>, Status> {
        let req = req.into_inner();
        if req.project == "secret" {
            return Err(Status::permission_denied("not yours"));
        }
        let call = {
            let mut froms = self.froms.lock().expect("not poisoned");
            froms.push(req.from_position);
            froms.len()
        };
        let s: Entries = match call {
            1 => Box::pin(stream::iter([
                entry(1),
                entry(2),
                Err(Status::unavailable("restarting")),
            ])),
            2 => Box::pin(stream::iter([entry(2), entry(3)])),
            _ => Box::pin(stream::iter([entry(4)]).chain(stream::pending())),
        };
        Ok(Response::new(s))
    }
}

/// A running test server; stopped on drop.
#[derive(Debug)]
pub struct Server {
    /// How a client reaches it.
    pub args: ClientArgs,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serves `flaky` on a free port of 127.0.0.1.
    pub async fn start(flaky: Flaky) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("bound");
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(QueryServiceServer::new(flaky))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        let args = ClientArgs {
            server: format!("http://{addr}"),
            query_server: None,
            token: Some("t".into()),
            token_file: None,
            output: Output::Text,
            ca: None,
            cert: None,
            key: None,
        };
        Server { args, task }
    }

    /// A connected client.
    pub async fn client(&self) -> Queries {
        connect(&self.args)
            .await
            .expect("connect to the test server")
    }
}
