//! The query gRPC service: answers from the projections only.

pub(crate) mod convert;
mod lists;
mod stream;
mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::Stream;
use tonic::{Request, Response, Status};
use waybill_ledger::{EventLog, EventPayload, LedgerError, Position, ProjectName};
use waybill_proto::v1 as pb;
use waybill_proto::v1::query_service_server::QueryService;

use crate::runner::{read, Projections};
use crate::timeline::{self, At};
pub(crate) use support::parse_time;
use support::{blocking, event_type, found, opt};

/// How long a query waits for `min_position` before giving up.
pub const MIN_POSITION_WAIT: Duration = Duration::from_secs(5);
/// How far ahead of the server's clock a `StateAt` time may be (clocks of
/// client and server differ) and still be answered, with the current state.
const FUTURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(1);
/// Default and largest page of promotions.
const PAGE: usize = 100;

/// Authentication and the viewer role, provided by the binary (the identity
/// module lives with the command side, which this crate does not import).
/// Does the caller hold the approver role for (project, stage)?
pub type MayApprove = Box<dyn Fn(&str, &str) -> bool + Send>;

/// Does the caller hold the viewer role for a project?
pub type MayView = Box<dyn Fn(&str) -> bool + Send>;

/// Calls about every project (`History` and `Watch` without a project,
/// `PendingApprovals`, `ListProjects`) answer with the projects the caller
/// may view, instead of refusing whoever may not view them all.
pub trait Access: Send + Sync + 'static {
    /// Checks that the caller may read `project` (empty: every project, the
    /// whole log, as checkpoints and proofs need).
    fn check(&self, metadata: &tonic::metadata::MetadataMap, project: &str) -> Result<(), Status>;

    /// The caller's principal name and a test of whether it holds the
    /// approver role for a project and stage.
    fn approver(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<(String, MayApprove), Status>;

    /// Authenticates the caller, and tests whether it may read a project.
    fn viewer(&self, metadata: &tonic::metadata::MetadataMap) -> Result<MayView, Status>;
}

/// Serves `waybill.v1.QueryService`.
#[derive(Clone)]
pub struct QueryGrpc {
    projections: Projections,
    log: Arc<dyn EventLog>,
    access: Arc<dyn Access>,
    /// Becomes true when the server shuts down: open watches end.
    stopping: tokio::sync::watch::Receiver<bool>,
    /// "Now", for windows and freezes.
    clock: Arc<dyn Fn() -> chrono::DateTime<Utc> + Send + Sync>,
}

impl std::fmt::Debug for QueryGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryGrpc").finish()
    }
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::HistoryEntry, Status>> + Send>>;

impl QueryGrpc {
    /// A service whose watches end when `stopping` becomes true.
    pub fn new(
        projections: Projections,
        log: Arc<dyn EventLog>,
        access: Arc<dyn Access>,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> QueryGrpc {
        QueryGrpc {
            projections,
            log,
            access,
            stopping,
            clock: Arc::new(Utc::now),
        }
    }

    /// Reads "now" (whether windows and freezes allow a promotion) from
    /// `clock`, the command service's, so that both sides agree.
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> chrono::DateTime<Utc> + Send + Sync + 'static,
    ) -> QueryGrpc {
        self.clock = Arc::new(clock);
        self
    }

    pub fn into_server(self) -> pb::query_service_server::QueryServiceServer<QueryGrpc> {
        pb::query_service_server::QueryServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl QueryService for QueryGrpc {
    async fn get_stage(
        &self,
        request: Request<pb::GetStageRequest>,
    ) -> Result<Response<pb::StageReply>, Status> {
        let r = request.get_ref();
        let position = self.ready(&request, &r.project, r.min_position).await?;
        let shared = self.state(&r.project)?;
        let now = (self.clock)();
        let (stage, mut policy) = {
            let state = read(&shared);
            let def = state
                .definition()
                .and_then(|d| d.stage(&r.stage))
                .ok_or_else(|| support::no_stage(&r.project, state.definition(), &r.stage))?;
            (
                convert::stage(&state, def),
                convert::policy(def, state.policy_version().0, now),
            )
        };
        // Off the runtime: it may read freight from the read models.
        let (projections, project, name) =
            (self.projections.clone(), r.project.clone(), r.stage.clone());
        policy.auto_promotion =
            blocking(move || projections.auto_promotion(&project, &name, now)).await?;
        Ok(Response::new(pb::StageReply {
            stage: Some(stage),
            policy: Some(policy),
            position,
        }))
    }

    async fn get_pipeline(
        &self,
        request: Request<pb::GetPipelineRequest>,
    ) -> Result<Response<pb::PipelineReply>, Status> {
        let r = request.get_ref();
        let position = self.ready(&request, &r.project, r.min_position).await?;
        let shared = self.state(&r.project)?;
        let in_force = read(&shared).pipeline.as_ref().map(|p| p.version.0);
        let version = match (r.policy_version, in_force) {
            (0, Some(v)) => v,
            (0, None) => {
                return Err(Status::not_found(format!(
                    "project {} has no pipeline",
                    r.project
                )))
            }
            (v, _) => v,
        };
        // The event itself, as the log holds it: the definition, and where
        // it came from.
        let not_a_version = || {
            Status::not_found(format!(
                "position {version} is not a policy version of project {} (they are listed by \
                 `waybill history -p {} --type PipelineConfigured`)",
                r.project, r.project
            ))
        };
        let project = ProjectName::project(r.project.as_str())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let event = self
            .log
            .next_event(&project, Position(version))
            .await
            .or_else(|e| match e {
                // Not an event at all.
                LedgerError::Foreign(_) => Ok(None),
                e => Err(Status::unavailable(e.to_string())),
            })?
            .filter(|e| e.position.0 == version)
            .ok_or_else(not_a_version)?;
        let EventPayload::PipelineConfigured(p) = &event.event.payload else {
            return Err(not_a_version());
        };
        Ok(Response::new(pb::PipelineReply {
            definition_json: p.definition_json.clone(),
            policy_version: version,
            applied_at: convert::time(event.event.time),
            source_uri: p.source_uri.clone(),
            source_revision: p.source_revision.clone(),
            source_digest: p.source_digest.clone(),
            in_force: in_force == Some(version),
            position,
        }))
    }

    async fn list_stages(
        &self,
        request: Request<pb::ListStagesRequest>,
    ) -> Result<Response<pb::ListStagesReply>, Status> {
        let r = request.get_ref();
        let position = self.ready(&request, &r.project, r.min_position).await?;
        let shared = self.state(&r.project)?;
        let state = read(&shared);
        let mut reply = convert::stages(&state, position);
        reply.closed_now = convert::closed_now(&state, (self.clock)());
        Ok(Response::new(reply))
    }

    async fn get_freight(
        &self,
        request: Request<pb::GetFreightRequest>,
    ) -> Result<Response<pb::FreightReply>, Status> {
        let r = request.get_ref();
        let position = self.ready(&request, &r.project, r.min_position).await?;
        let configured = convert::configured_stages(&read(&self.state(&r.project)?));
        let (projections, project, id) = (
            self.projections.clone(),
            r.project.clone(),
            r.freight.clone(),
        );
        let f = found(
            blocking(move || projections.find_freight(&project, &id)).await?,
            &r.project,
            &r.freight,
        )?;
        Ok(Response::new(pb::FreightReply {
            freight: Some(convert::freight(&f, (self.clock)(), &configured, None)),
            position,
        }))
    }

    async fn list_freight(
        &self,
        request: Request<pb::ListFreightRequest>,
    ) -> Result<Response<pb::ListFreightReply>, Status> {
        let r = request.get_ref();
        let position = self.ready(&request, &r.project, r.min_position).await?;
        Ok(Response::new(self.freight_page(r, position).await?))
    }

    async fn get_promotion(
        &self,
        request: Request<pb::GetPromotionRequest>,
    ) -> Result<Response<pb::PromotionReply>, Status> {
        let r = request.get_ref();
        let position = self.ready(&request, &r.project, r.min_position).await?;
        self.state(&r.project)?;
        // By its id or the start of it.
        let p = self.named_promotion(&r.project, &r.promotion_id).await?;
        let (projections, project) = (self.projections.clone(), r.project.clone());
        let promotion = blocking(move || {
            let f = projections.freight(&project, &p.freight)?;
            let need = projections.approvals_required(&project, &p);
            Ok(convert::promotion(&p, f.as_ref(), need))
        })
        .await?;
        Ok(Response::new(pb::PromotionReply {
            promotion: Some(promotion),
            position,
        }))
    }

    async fn list_promotions(
        &self,
        request: Request<pb::ListPromotionsRequest>,
    ) -> Result<Response<pb::ListPromotionsReply>, Status> {
        let r = request.get_ref();
        let position = self.ready(&request, &r.project, r.min_position).await?;
        Ok(Response::new(self.promotions_page(r, position).await?))
    }

    type HistoryStream = EntryStream;

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<EntryStream>, Status> {
        let r = request.get_ref();
        let visible = match r.project.as_str() {
            // A viewer of every project sees all of it, the log's own
            // records included; anyone else the projects they may view.
            "" if self.access.check(request.metadata(), "").is_ok() => None,
            "" => Some(self.visible(request.metadata())?),
            project => {
                self.access.check(request.metadata(), project)?;
                None
            }
        };
        self.caught_up(Position(r.min_position)).await?;
        Ok(Response::new(self.history_entries(r, visible).await?))
    }

    async fn state_at(
        &self,
        request: Request<pb::StateAtRequest>,
    ) -> Result<Response<pb::ListStagesReply>, Status> {
        let r = request.get_ref();
        self.access.check(request.metadata(), &r.project)?;
        let name = ProjectName::project(r.project.as_str())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let at = match &r.at {
            Some(pb::state_at_request::At::Position(p)) => At::Position(Position(*p)),
            Some(pb::state_at_request::At::Time(t)) => match parse_time("time", t)? {
                Some(t) => At::Time(t),
                None => return Err(Status::invalid_argument("give a position or a time")),
            },
            None => return Err(Status::invalid_argument("give a position or a time")),
        };
        // The answer must not depend on how far the projections got: wait
        // until they reflect the position asked for, or the log's head.
        let head = self
            .log
            .head()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        // A position the log has not reached yet would be answered with
        // today's state, and differently once it is reached: refuse it.
        let needed = match at {
            At::Position(p) if p > head => {
                return Err(Status::out_of_range(format!(
                    "position {} is beyond the end of the log (position {}): ask for a \
                     position up to {}, or a time",
                    p.0, head.0, head.0
                )))
            }
            At::Position(p) => p,
            // Likewise a time still to come, beyond what clocks may differ by.
            At::Time(t) if t > (self.clock)() + FUTURE_TOLERANCE => {
                return Err(Status::out_of_range(format!(
                    "{} is in the future (the server's time is {}): ask for a time up to \
                     now, or use status for the current state",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    (self.clock)().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )))
            }
            At::Time(_) => head,
        };
        self.caught_up(needed).await?;
        let store = self.projections.store().clone();
        let project = name.as_str().to_string();
        let (reply, first) = tokio::task::spawn_blocking(move || {
            let reply = timeline::state_at(&store, &project, at)?;
            let first = match reply {
                Some(_) => None,
                None => timeline::first_pipeline(&store, &project)?,
            };
            Ok::<_, crate::error::ProjectionError>((reply, first))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))?;
        match (reply, first) {
            (Some(reply), _) => Ok(Response::new(reply)),
            (None, None) => Err(Status::not_found(format!("no project {:?}", r.project))),
            (None, Some((position, time))) => {
                let asked = match at {
                    At::Position(p) => format!("position {}", p.0),
                    At::Time(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                };
                // Whole seconds, rounded up: the time shown finds it.
                use chrono::Timelike as _;
                let from = time
                    .with_nanosecond(0)
                    .filter(|whole| *whole < time)
                    .map_or(time, |whole| whole + chrono::Duration::seconds(1));
                Err(Status::not_found(format!(
                    "project {} had no pipeline at {asked}: its first (position {}) is \
                     there from {} on",
                    r.project,
                    position.0,
                    from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )))
            }
        }
    }

    type WatchStream = EntryStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<EntryStream>, Status> {
        let r = request.get_ref();
        let may_view: MayView = match r.project.as_str() {
            "" if self.access.check(request.metadata(), "").is_ok() => Box::new(|_: &str| true),
            "" => self.access.viewer(request.metadata())?,
            project => {
                self.access.check(request.metadata(), project)?;
                Box::new(|_: &str| true)
            }
        };
        // After the access check: names are not told to those who may not
        // see the project.
        if !r.stage.is_empty() {
            if r.project.is_empty() {
                return Err(Status::invalid_argument(
                    "a watch of a stage needs its project",
                ));
            }
            let shared = self.state(&r.project)?;
            self.known_stage(&shared, &r.project, &r.stage).await?;
        }
        Ok(Response::new(self.watch_entries(r, may_view)?))
    }

    async fn projection_status(
        &self,
        request: Request<pb::ProjectionStatusRequest>,
    ) -> Result<Response<pb::ProjectionStatusReply>, Status> {
        self.access.check(request.metadata(), "")?;
        let applied = self.projections.applied();
        let head = self
            .log
            .head()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(pb::ProjectionStatusReply {
            applied: applied.0,
            head: head.0,
            lag: head.0.saturating_sub(applied.0),
        }))
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsReply>, Status> {
        let may_view = self.access.viewer(request.metadata())?;
        let position = self
            .caught_up(Position(request.get_ref().min_position))
            .await?;
        let mut names = self.projections.project_names();
        names.sort();
        let projects = names
            .into_iter()
            .filter(|name| may_view(name))
            .filter_map(|name| {
                let shared = self.projections.shared(&name)?;
                let state = read(&shared);
                let definition = state.definition()?;
                Some(pb::ProjectSummary {
                    stages: definition.stages.iter().map(|s| s.name.clone()).collect(),
                    policy_version: state.policy_version().0,
                    events: state.seq,
                    last_position: state.position.0,
                    latest_event_time: state.latest_time.map(convert::time).unwrap_or_default(),
                    project: name,
                })
            })
            .collect();
        Ok(Response::new(pb::ListProjectsReply { projects, position }))
    }

    async fn pending_approvals(
        &self,
        request: Request<pb::PendingApprovalsRequest>,
    ) -> Result<Response<pb::ListPromotionsReply>, Status> {
        let r = request.get_ref();
        // Without a project: every project, where the caller may approve.
        if !r.project.is_empty() {
            self.access.check(request.metadata(), &r.project)?;
        }
        let (me, may_approve) = self.access.approver(request.metadata())?;
        let position = self.caught_up(Position(r.min_position)).await?;
        let projects = match r.project.as_str() {
            "" => self.projections.projects(),
            p => vec![read(&self.state(p)?).project.clone()],
        };
        let mut pending = Vec::new();
        for name in projects {
            let Some(shared) = self.projections.shared(&name) else {
                continue;
            };
            // Requested promotions are active: all in memory.
            let state = read(&shared);
            let mut mine: Vec<_> = state
                .promotions
                .values()
                .filter(|p| p.status == waybill_ledger::domain::PromotionStatus::Requested)
                .filter(|p| !p.approvals.iter().any(|a| a.by == me))
                .filter(|p| {
                    let sod = state
                        .definition()
                        .and_then(|d| d.stage(&p.stage))
                        .is_none_or(|s| s.policy.separation_of_duties);
                    !(sod && p.requested_by.principal == me)
                })
                .filter(|p| may_approve(&name, &p.stage))
                .cloned()
                .collect();
            mine.sort_by_key(|p| p.requested);
            pending.extend(mine.into_iter().map(|p| (name.clone(), p)));
        }
        let projections = self.projections.clone();
        let promotions = blocking(move || {
            pending
                .into_iter()
                .map(|(project, p)| {
                    let f = projections.freight(&project, &p.freight)?;
                    let need = projections.approvals_required(&project, &p);
                    Ok(convert::promotion(&p, f.as_ref(), need))
                })
                .collect()
        })
        .await?;
        Ok(Response::new(pb::ListPromotionsReply {
            promotions,
            next_page_token: String::new(),
            position,
        }))
    }
}
