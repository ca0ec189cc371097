//! What the query service's calls share: access and read-your-writes
//! waits, project and freight lookups, time and page arguments, and the
//! blocking pool for read-model work.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tonic::{Request, Status};
use waybill_ledger::domain::{PipelineDefinition, Promotion, PromotionStatus};
use waybill_ledger::name::did_you_mean;
use waybill_ledger::{Position, ProjectName};

use super::{QueryGrpc, MIN_POSITION_WAIT, PAGE};
use crate::lookup::{FreightLookup, Lookup, PromotionLookup};
use crate::runner::{read, SharedState};
use crate::ProjectionError;

impl QueryGrpc {
    /// The projects the caller may view, of those there are now.
    pub(super) fn visible(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Arc<BTreeSet<String>>, Status> {
        let may_view = self.access.viewer(metadata)?;
        let names = self.projections.project_names();
        Ok(Arc::new(
            names.into_iter().filter(|p| may_view(p)).collect(),
        ))
    }

    /// Checks access and waits for `min_position`; returns the position reflected.
    pub(super) async fn ready<T>(
        &self,
        request: &Request<T>,
        project: &str,
        min: u64,
    ) -> Result<u64, Status> {
        self.access.check(request.metadata(), project)?;
        self.caught_up(Position(min)).await
    }

    /// Waits (bounded) until the projections reflect `min`.
    pub(super) async fn caught_up(&self, min: Position) -> Result<u64, Status> {
        match self.projections.wait_for(min, MIN_POSITION_WAIT).await {
            Ok(p) => Ok(p.0),
            Err(applied) => Err(Status::unavailable(format!(
                "the projections reflect position {applied}, not yet {min}; retry"
            ))),
        }
    }

    pub(super) fn state(&self, project: &str) -> Result<SharedState, Status> {
        let name =
            ProjectName::project(project).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.projections
            .shared(name.as_str())
            .filter(|s| read(s).definition().is_some())
            .ok_or_else(|| Status::not_found(format!("no project {project:?}")))
    }

    /// Refuses a stage `project` neither has nor had (a stage since removed
    /// from the pipeline still has its history): a filter naming it would
    /// answer nothing, and most likely it is a typo.
    pub(super) async fn known_stage(
        &self,
        shared: &SharedState,
        project: &str,
        stage: &str,
    ) -> Result<(), Status> {
        let like = {
            let state = read(shared);
            let def = state.definition();
            if def.is_some_and(|d| d.stage(stage).is_some()) {
                return Ok(());
            }
            like_a_stage(def, stage)
        };
        let store = self.projections.store().clone();
        let (p, s) = (project.to_string(), stage.to_string());
        if blocking(move || store.has_stage_history(&p, &s)).await? {
            return Ok(());
        }
        Err(Status::not_found(format!(
            "project {project} has no stage {stage:?}, and never had{like}"
        )))
    }

    /// The whole id of the freight `reference` (id, alias or start of an id)
    /// names in `project`.
    pub(super) async fn whole_freight_id(
        &self,
        project: &str,
        reference: &str,
    ) -> Result<String, Status> {
        let (projections, p, r) = (
            self.projections.clone(),
            project.to_string(),
            reference.to_string(),
        );
        let lookup = blocking(move || projections.find_freight(&p, &r)).await?;
        Ok(found(lookup, project, reference)?.id)
    }

    /// The promotion `id` of `project`: INVALID_ARGUMENT without a project,
    /// NOT_FOUND if it has no such promotion.
    pub(super) async fn named_promotion(
        &self,
        project: &str,
        id: &str,
    ) -> Result<Promotion, Status> {
        if project.is_empty() {
            return Err(Status::invalid_argument(
                "a promotion is named within its project: give the project too",
            ));
        }
        let (projections, p, i) = (
            self.projections.clone(),
            project.to_string(),
            id.to_string(),
        );
        let lookup = blocking(move || projections.find_promotion(&p, &i)).await?;
        found_promotion(lookup, project, id).map(|p| *p)
    }
}

/// An optional RFC 3339 time field (empty: none); INVALID_ARGUMENT otherwise.
pub(crate) fn parse_time(field: &str, value: &str) -> Result<Option<DateTime<Utc>>, Status> {
    if value.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| {
            Status::invalid_argument(format!("{field}: {value:?} is not an RFC 3339 time: {e}"))
        })
}

/// Items per page: what was asked for, at most [`PAGE`] (0: [`PAGE`]).
/// NOT_FOUND for a stage the pipeline in force (`def`) does not have.
pub(super) fn no_stage(project: &str, def: Option<&PipelineDefinition>, stage: &str) -> Status {
    let like = like_a_stage(def, stage);
    Status::not_found(format!("project {project} has no stage {stage:?}{like}"))
}

/// ` (did you mean "prod"?)` when a stage of `def` is like `stage`.
fn like_a_stage(def: Option<&PipelineDefinition>, stage: &str) -> String {
    let names = def
        .into_iter()
        .flat_map(|d| d.stages.iter().map(|s| s.name.as_str()));
    did_you_mean(stage, names)
}

pub(super) fn page_size(asked: u32) -> usize {
    match asked as usize {
        0 => PAGE,
        n => n.min(PAGE),
    }
}

/// Runs read-model work on the blocking pool; storage errors are INTERNAL.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ProjectionError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))
}

/// The freight a lookup found, or why there is none.
pub(super) fn found(
    lookup: FreightLookup,
    project: &str,
    reference: &str,
) -> Result<Box<waybill_ledger::domain::Freight>, Status> {
    let note = waybill_ledger::domain::short_start_note(reference);
    settled(lookup, "freight", &note, project, reference)
}

/// The promotion a [`PromotionLookup`] of `reference` found, or why none.
pub(super) fn found_promotion(
    lookup: PromotionLookup,
    project: &str,
    reference: &str,
) -> Result<Box<Promotion>, Status> {
    let note = waybill_ledger::domain::short_promotion_start_note(reference);
    settled(lookup, "promotion", &note, project, reference)
}

/// What `lookup` found of `kind` for `reference`: NOT_FOUND (with `note`
/// on a start too short), or INVALID_ARGUMENT naming the ids a start
/// shares.
fn settled<T>(
    lookup: Lookup<T>,
    kind: &str,
    note: &str,
    project: &str,
    reference: &str,
) -> Result<Box<T>, Status> {
    match lookup {
        Lookup::Found(x) => Ok(x),
        Lookup::Missing => Err(Status::not_found(format!(
            "no {kind} {reference:?} in {project}{note}"
        ))),
        Lookup::Ambiguous(ids) => Err(Status::invalid_argument(
            waybill_ledger::domain::ambiguous_start(kind, reference, project, &ids),
        )),
    }
}

/// `Some` of a non-empty request field.
pub(super) fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// The event type a history filter names (as [`waybill_ledger::EventType::parse`]
/// takes it), as the index stores it; `None` for an empty field.
pub(super) fn event_type(s: &str) -> Result<Option<String>, Status> {
    if s.is_empty() {
        return Ok(None);
    }
    match waybill_ledger::EventType::parse(s) {
        Some(t) => Ok(Some(t.name().to_string())),
        None => {
            let names: Vec<&str> = waybill_ledger::EventType::ALL
                .iter()
                .map(|t| t.name())
                .collect();
            Err(Status::invalid_argument(format!(
                "unknown event type {s:?}: one of {}",
                names.join(", ")
            )))
        }
    }
}

/// A promotion status filter: `None` for empty, `INVALID_ARGUMENT` naming
/// the statuses for an unknown one.
pub(super) fn promotion_status(s: &str) -> Result<Option<PromotionStatus>, Status> {
    match s {
        "" => Ok(None),
        name => PromotionStatus::parse(name).map(Some).ok_or_else(|| {
            let names: Vec<&str> = PromotionStatus::ALL.iter().map(|s| s.name()).collect();
            Status::invalid_argument(format!(
                "unknown promotion status {name:?}: one of {}",
                names.join(", ")
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_too_short_for_an_id_says_so() {
        let said = |r: &str| found(FreightLookup::Missing, "shop", r).expect_err("missing");
        let short = said("19a3");
        assert_eq!(short.code(), tonic::Code::NotFound);
        assert_eq!(
            short.message(),
            "no freight \"19a3\" in shop (the start of an id needs 6 hex digits or more)"
        );
        // An alias, or a start long enough that was looked up: no hint.
        assert_eq!(said("v1.4").message(), "no freight \"v1.4\" in shop");
        assert_eq!(said("19a310").message(), "no freight \"19a310\" in shop");
        let promotion = found_promotion(Lookup::Missing, "shop", "prm-2c0c").expect_err("missing");
        assert_eq!(
            promotion.message(),
            "no promotion \"prm-2c0c\" in shop (the start of a promotion id needs 6 hex digits \
             or more after prm-)"
        );
        let several = found_promotion(
            Lookup::Ambiguous(vec!["prm-2c0cc31".into(), "prm-2c0cc32".into()]),
            "shop",
            "prm-2c0cc3",
        )
        .expect_err("ambiguous");
        assert_eq!(several.code(), tonic::Code::InvalidArgument);
        assert!(
            several.message().contains("(prm-2c0cc31, prm-2c0cc32)"),
            "{several:?}"
        );
    }
}
