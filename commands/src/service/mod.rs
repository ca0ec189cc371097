//! The command gRPC service: authenticate, convert, execute, reply.

pub(crate) mod convert;
mod status;

pub use status::{status, status_with_key, ERROR_DOMAIN, REASON_KEY};

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Instrument;
use waybill_ledger::domain::freight_id;
use waybill_ledger::{EventPayload, ProjectName};
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_server::CommandService;

use crate::auth::Authenticator;
use crate::command::Command;
use crate::decide::promotion_id;
use crate::handler::{CommandError, CommandHandler, Outcome};
use crate::pipeline_file::{parse_pipeline, source_digest, MAX_PIPELINE_FILE_BYTES};
use crate::rejection::Rejection;

/// Serves `waybill.v1.CommandService`.
#[derive(Debug, Clone)]
pub struct CommandGrpc {
    handler: CommandHandler,
    auth: Arc<Authenticator>,
}

impl CommandGrpc {
    pub fn new(handler: CommandHandler, auth: Arc<Authenticator>) -> CommandGrpc {
        CommandGrpc { handler, auth }
    }

    /// Wraps this service for tonic.
    pub fn into_server(self) -> pb::command_service_server::CommandServiceServer<CommandGrpc> {
        pb::command_service_server::CommandServiceServer::new(self)
    }

    async fn run<T>(
        &self,
        request: &Request<T>,
        project: Result<ProjectName, Rejection>,
        command: Result<Command, Rejection>,
        key: &str,
    ) -> Result<Response<pb::CommandReply>, Status> {
        self.run_or_check(request, project, command, key, false)
            .await
    }

    /// [`CommandGrpc::run`], or with `validate_only` the decision alone
    /// (nothing appended).
    async fn run_or_check<T>(
        &self,
        request: &Request<T>,
        project: Result<ProjectName, Rejection>,
        command: Result<Command, Rejection>,
        key: &str,
        validate_only: bool,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let principal = self
            .auth
            .authenticate(request.metadata())
            .map_err(Status::from)?;
        let correlation = convert::correlation_id(request.metadata())
            .map_err(|e| status(&CommandError::Rejected(e)))?;
        let span = tracing::info_span!(
            "command",
            principal = %principal.name,
            correlation_id = %correlation,
        );
        let command_id = convert::command_id(key);
        let run = async {
            let project = project?;
            let command = command?;
            let command_id = command_id.clone()?;
            if validate_only {
                let outcome = self
                    .handler
                    .check(
                        &project,
                        &principal,
                        command.clone(),
                        Some(command_id.clone()),
                    )
                    .await?;
                let effects = outcome.effects.clone();
                let mut reply = reply(&project, &command, &command_id, outcome);
                reply.effects = effects;
                if !reply.already_done {
                    reply.validated_only = true;
                    reply.event_id.clear();
                    reply.promotion_id.clear();
                }
                return Ok(reply);
            }
            let outcome = self
                .handler
                .execute_correlated(
                    &project,
                    &principal,
                    command.clone(),
                    Some(command_id.clone()),
                    &correlation,
                )
                .await?;
            tracing::debug!(
                project = %project,
                command = command.name(),
                position = outcome.position.0,
                "command accepted"
            );
            Ok::<_, CommandError>(reply(&project, &command, &command_id, outcome))
        };
        let result = match run.instrument(span.clone()).await {
            Ok(reply) => Ok(Response::new(reply)),
            Err(e) => {
                span.in_scope(|| tracing::debug!(error = %e, "command refused"));
                Err(match &command_id {
                    Ok(id) => status_with_key(&e, id),
                    Err(_) => status(&e),
                })
            }
        };
        result.map(|mut response| {
            if let Ok(v) = correlation.parse() {
                response.metadata_mut().insert(convert::CORRELATION_KEY, v);
            }
            response
        })
    }
}

impl CommandGrpc {
    /// Approve, reject and abort: a promotion id and a comment or reason.
    async fn decision(
        &self,
        request: Request<pb::PromotionDecisionRequest>,
        make: impl FnOnce(String, String) -> Command,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let r = request.get_ref();
        let command = convert::id("promotion_id", &r.promotion_id)
            .map(|promotion| make(promotion, r.comment.clone()));
        self.run(
            &request,
            convert::project(&r.project),
            command,
            &r.idempotency_key,
        )
        .await
    }
}

fn reply(
    project: &ProjectName,
    command: &Command,
    command_id: &str,
    o: Outcome,
) -> pb::CommandReply {
    let mut reply = pb::CommandReply {
        event_id: o.event_id.to_string(),
        position: o.position.0,
        already_done: o.already_done,
        project: project.to_string(),
        ..Default::default()
    };
    match (&o.payload, command) {
        (Some(EventPayload::FreightDiscovered(d)), _) => reply.freight_id = d.freight_id.clone(),
        (
            _,
            Command::RecordDiscovery {
                warehouse,
                artifacts,
                ..
            },
        ) => {
            reply.freight_id = freight_id(warehouse, artifacts);
        }
        (Some(EventPayload::PromotionRequested(r)), _) => {
            reply.promotion_id = r.promotion_id.clone();
            reply.freight_id = r.freight_id.clone();
        }
        (_, Command::RequestPromotion { .. } | Command::Rollback { .. }) => {
            reply.promotion_id = promotion_id(command_id);
        }
        // A decision or report on a promotion, which may be named by the
        // start of its id: the whole id, as its event records it (a retry
        // answered with the first outcome has no event here: the id the
        // request gave, if whole).
        (Some(payload), _) => {
            if let Some(id) = waybill_ledger::domain::working_set::promotion_of(payload) {
                reply.promotion_id = id.to_string();
            }
        }
        (None, _) => {
            if let Some(id) = command
                .promotion()
                .filter(|id| !waybill_ledger::domain::is_promotion_id_prefix(id))
            {
                reply.promotion_id = id.to_string();
            }
        }
    }
    reply
}

#[tonic::async_trait]
impl CommandService for CommandGrpc {
    async fn apply_pipeline(
        &self,
        request: Request<pb::ApplyPipelineRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let r = request.get_ref();
        let source = if r.source_uri.is_empty() {
            "pipeline.yaml"
        } else {
            &r.source_uri
        };
        let parsed = if r.yaml.len() > MAX_PIPELINE_FILE_BYTES {
            Err(Rejection::invalid(
                "yaml",
                format!("the file is larger than {MAX_PIPELINE_FILE_BYTES} bytes"),
            ))
        } else {
            parse_pipeline(source, &r.yaml).map_err(|e| Rejection::invalid("yaml", e.to_string()))
        };
        let (project, command) = match parsed {
            Ok(definition) => (
                convert::project(&definition.project),
                Ok(Command::ApplyPipeline {
                    definition,
                    source_uri: r.source_uri.clone(),
                    source_revision: r.source_revision.clone(),
                    source_digest: source_digest(&r.yaml),
                }),
            ),
            Err(e) => (Err(e.clone()), Err(e)),
        };
        let validate_only = r.validate_only;
        self.run_or_check(
            &request,
            project,
            command,
            &r.idempotency_key,
            validate_only,
        )
        .await
    }

    async fn record_discovery(
        &self,
        request: Request<pb::RecordDiscoveryRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let r = request.get_ref();
        self.run(
            &request,
            convert::project(&r.project),
            convert::discovery(r),
            &r.idempotency_key,
        )
        .await
    }

    async fn record_verification(
        &self,
        request: Request<pb::RecordVerificationRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let r = request.get_ref();
        self.run(
            &request,
            convert::project(&r.project),
            convert::verification(r),
            &r.idempotency_key,
        )
        .await
    }

    async fn request_promotion(
        &self,
        request: Request<pb::RequestPromotionRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let r = request.get_ref();
        self.run_or_check(
            &request,
            convert::project(&r.project),
            convert::promotion(r),
            &r.idempotency_key,
            r.validate_only,
        )
        .await
    }

    async fn approve_promotion(
        &self,
        request: Request<pb::PromotionDecisionRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        self.decision(request, |promotion, comment| Command::ApprovePromotion {
            promotion,
            comment,
        })
        .await
    }

    async fn reject_promotion(
        &self,
        request: Request<pb::PromotionDecisionRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        self.decision(request, |promotion, reason| Command::RejectPromotion {
            promotion,
            reason,
        })
        .await
    }

    async fn abort_promotion(
        &self,
        request: Request<pb::PromotionDecisionRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        self.decision(request, |promotion, reason| Command::AbortPromotion {
            promotion,
            reason,
        })
        .await
    }

    async fn approve_freight(
        &self,
        request: Request<pb::ApproveFreightRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let r = request.get_ref();
        let command = (|| {
            Ok(Command::ApproveFreight {
                freight: convert::id("freight", &r.freight)?,
                stage: convert::name("stage", &r.stage)?,
                reason: r.reason.clone(),
                ticket: r.ticket.clone(),
            })
        })();
        self.run(
            &request,
            convert::project(&r.project),
            command,
            &r.idempotency_key,
        )
        .await
    }

    async fn report_promotion_result(
        &self,
        request: Request<pb::ReportPromotionResultRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let r = request.get_ref();
        self.run(
            &request,
            convert::project(&r.project),
            convert::result(r),
            &convert::report_key(r),
        )
        .await
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::CommandReply>, Status> {
        let r = request.get_ref();
        let command = convert::name("stage", &r.stage).and_then(|stage| {
            let warehouse = match r.warehouse.as_str() {
                "" => String::new(),
                w => convert::name("warehouse", w)?,
            };
            Ok(Command::Rollback {
                stage,
                warehouse,
                ticket: r.ticket.clone(),
                reason: r.reason.clone(),
            })
        });
        self.run_or_check(
            &request,
            convert::project(&r.project),
            command,
            &r.idempotency_key,
            r.validate_only,
        )
        .await
    }
}
