//! The audit gRPC service: checkpoints, proofs, chain checks and exports.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use waybill_ledger::audit::{consistency_proof, inclusion_proof, root, Nodes};
use waybill_ledger::{verify_log, EventLog, ProjectName};
use waybill_proto::v1 as pb;
use waybill_proto::v1::audit_service_server::AuditService;

use super::export::{export, ExportError, ExportItem, ExportSpec};
use super::runner::Transparency;
use super::store::StoredCheckpoint;
use crate::runner::Projections;
use crate::service::{parse_time, Access};

/// Serves `waybill.v1.AuditService`.
#[derive(Clone)]
pub struct AuditGrpc {
    transparency: Transparency,
    projections: Projections,
    log: Arc<dyn EventLog>,
    access: Arc<dyn Access>,
}

impl std::fmt::Debug for AuditGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditGrpc").finish()
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ExportChunk, Status>> + Send>>;

impl AuditGrpc {
    pub fn new(
        transparency: Transparency,
        projections: Projections,
        log: Arc<dyn EventLog>,
        access: Arc<dyn Access>,
    ) -> AuditGrpc {
        AuditGrpc {
            transparency,
            projections,
            log,
            access,
        }
    }

    pub fn into_server(self) -> pb::audit_service_server::AuditServiceServer<AuditGrpc> {
        pb::audit_service_server::AuditServiceServer::new(self)
    }

    /// Checkpoints and proofs are about the whole log: they need the viewer
    /// role on every project (an auditor's role). They reveal sizes and
    /// hashes only; exports carry their own checkpoint and proof.
    fn log_viewer<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.access.check(request.metadata(), "")
    }

    fn checkpoint_at(&self, size: u64) -> Result<StoredCheckpoint, Status> {
        let store = self.transparency.store();
        let found = if size == 0 {
            store.latest_checkpoint()
        } else {
            store.checkpoint(size)
        };
        let latest = || {
            self.transparency
                .latest()
                .map(|c| format!("the latest is at tree size {}", c.size))
                .unwrap_or_else(|| "none is signed yet".to_string())
        };
        match found.map_err(internal)? {
            Some(c) => Ok(c),
            None if size == 0 => Err(Status::not_found(format!("no checkpoint: {}", latest()))),
            None => Err(Status::not_found(format!(
                "no checkpoint at tree size {size}: {}",
                latest()
            ))),
        }
    }

    /// `size`, or the latest checkpoint's when 0; checked against the tree.
    fn tree_size(&self, size: u64) -> Result<u64, Status> {
        let size = if size == 0 {
            self.checkpoint_at(0)?.size
        } else {
            size
        };
        let have = self.transparency.size();
        if size > have {
            return Err(Status::out_of_range(format!(
                "tree size {size} is beyond this server's tree of {have} leaves"
            )));
        }
        Ok(size)
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::ProjectionError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(internal)?
        .map_err(internal)
}

impl From<ExportError> for Status {
    fn from(e: ExportError) -> Status {
        match e {
            ExportError::NotFound(m) => Status::not_found(m),
            ExportError::Precondition(m) => Status::failed_precondition(m),
            ExportError::Unavailable(m) => Status::unavailable(m),
            ExportError::Internal(m) => Status::internal(m),
            ExportError::Cancelled => Status::cancelled("the export was cancelled"),
        }
    }
}

fn chunk(item: ExportItem) -> pb::ExportChunk {
    use pb::export_chunk::Part;
    let part = match item {
        ExportItem::Data { file, bytes } => Part::Data(pb::ExportData {
            file: file.to_string(),
            bytes,
        }),
        ExportItem::Done {
            file,
            sha256,
            bytes,
        } => Part::Done(pb::ExportFileDone {
            file: file.to_string(),
            sha256,
            bytes,
        }),
        ExportItem::Progress { done, total } => Part::Progress(pb::ExportProgress { done, total }),
    };
    pb::ExportChunk { part: Some(part) }
}

#[tonic::async_trait]
impl AuditService for AuditGrpc {
    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::CheckpointReply>, Status> {
        self.log_viewer(&request)?;
        let c = self.checkpoint_at(request.get_ref().size)?;
        Ok(Response::new(pb::CheckpointReply {
            root_hash: hex::decode(&c.root).map_err(internal)?,
            note: c.note,
            origin: c.origin,
            size: c.size,
            position: c.position,
            public_key: self.transparency.public_key().unwrap_or_default(),
            tree_size: self.transparency.size(),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::InclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProofReply>, Status> {
        self.log_viewer(&request)?;
        let r = request.into_inner();
        let size = self.tree_size(r.size)?;
        if r.position == 0 || r.position > size {
            let later = if r.position > size && r.position <= self.transparency.size() {
                if r.size == 0 {
                    "; it is in the log but after the latest signed checkpoint: the next \
                     checkpoint will cover it"
                } else {
                    "; it is in the log, in a larger tree"
                }
            } else {
                ""
            };
            return Err(Status::invalid_argument(format!(
                "position {} is not in a tree of {size} leaves (positions 1 to {size}){later}",
                r.position
            )));
        }
        let store = self.transparency.store().clone();
        let index = r.position - 1;
        let (leaf, proof, root_hash) = blocking(move || {
            Ok((
                store.node(0, index)?,
                inclusion_proof(&store, index, size)?,
                root(&store, size)?,
            ))
        })
        .await?;
        Ok(Response::new(pb::InclusionProofReply {
            position: r.position,
            leaf_index: index,
            size,
            leaf_hash: leaf.to_vec(),
            proof: proof.iter().map(|h| h.to_vec()).collect(),
            root_hash: root_hash.to_vec(),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::ConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProofReply>, Status> {
        self.log_viewer(&request)?;
        let r = request.into_inner();
        let new = self.tree_size(r.new_size)?;
        if r.old_size == 0 || r.old_size > new {
            return Err(Status::invalid_argument(format!(
                "old size {} must be between 1 and the new size {new}",
                r.old_size
            )));
        }
        let old = r.old_size;
        let store = self.transparency.store().clone();
        let (proof, old_root, new_root) = blocking(move || {
            Ok((
                consistency_proof(&store, old, new)?,
                root(&store, old)?,
                root(&store, new)?,
            ))
        })
        .await?;
        Ok(Response::new(pb::ConsistencyProofReply {
            old_size: old,
            new_size: new,
            old_root: old_root.to_vec(),
            new_root: new_root.to_vec(),
            proof: proof.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    async fn verify_chain(
        &self,
        request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainReply>, Status> {
        let project = ProjectName::log_project(request.get_ref().project.as_str())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.access.check(request.metadata(), project.as_str())?;
        let report = verify_log(&*self.log, Some(&project), |_| {})
            .await
            .map_err(|e| match e {
                waybill_ledger::LedgerError::Unavailable(m) => Status::unavailable(m),
                other => internal(other),
            })?;
        let head = report.heads.get(project.as_str()).cloned();
        if report.events == 0 && report.is_clean() {
            return Err(Status::not_found(format!(
                "no project {:?}",
                project.as_str()
            )));
        }
        let problem = report.first_problem();
        Ok(Response::new(pb::VerifyChainReply {
            ok: report.is_clean(),
            events: report.events,
            head_position: head.as_ref().map(|h| h.position.0).unwrap_or(0),
            head_hash: head.map(|h| h.hash.to_hex()).unwrap_or_default(),
            broken_at: problem.as_ref().map(|(p, _)| p.0).unwrap_or(0),
            problem: problem.map(|(_, text)| text).unwrap_or_default(),
        }))
    }

    type ExportStream = ChunkStream;

    async fn export(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let r = request.get_ref();
        let project = ProjectName::project(r.project.as_str())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.access.check(request.metadata(), project.as_str())?;
        let from = parse_time("from", &r.from)?;
        let to = parse_time("to", &r.to)?;
        if let (Some(f), Some(t)) = (from, to) {
            if t <= f {
                return Err(Status::invalid_argument(format!(
                    "to ({}) must be after from ({})",
                    r.to, r.from
                )));
            }
        }
        let csv = match pb::ExportFormat::try_from(r.format) {
            Ok(pb::ExportFormat::Csv) => true,
            Ok(pb::ExportFormat::Jsonl | pb::ExportFormat::Unspecified) => false,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "format: {} is not an export format",
                    r.format
                )))
            }
        };
        let spec = ExportSpec {
            project,
            from,
            to,
            csv,
        };
        let (items_tx, mut items_rx) = mpsc::channel::<ExportItem>(16);
        let (out_tx, out_rx) = mpsc::channel::<Result<pb::ExportChunk, Status>>(16);
        let producer = tokio::spawn(export(
            self.log.clone(),
            self.projections.clone(),
            self.transparency.clone(),
            spec,
            items_tx,
        ));
        // Forwards the items, then the producer's outcome; owns the producer.
        tokio::spawn(async move {
            while let Some(item) = items_rx.recv().await {
                if out_tx.send(Ok(chunk(item))).await.is_err() {
                    producer.abort();
                    return;
                }
            }
            let outcome = match producer.await {
                Ok(Ok(())) => return,
                Ok(Err(ExportError::Cancelled)) => return,
                Ok(Err(e)) => Status::from(e),
                Err(e) => internal(e),
            };
            let _ = out_tx.send(Err(outcome)).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}
