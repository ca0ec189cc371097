//! Requests → domain commands. Malformed input becomes `INVALID_ARGUMENT`
//! here, before anything is decided or appended.

use waybill_ledger::event::{Artifact, ArtifactKind};
use waybill_ledger::name::name_problem;
use waybill_ledger::ProjectName;
use waybill_proto::v1 as pb;

use crate::command::{Command, FreightSelector, PromotionResult};
use crate::rejection::Rejection;

/// Longest id, alias or idempotency key accepted.
const MAX_ID: usize = 128;

pub fn project(value: &str) -> Result<ProjectName, Rejection> {
    ProjectName::project(value).map_err(|e| Rejection::invalid("project", e.to_string()))
}

pub fn name(field: &str, value: &str) -> Result<String, Rejection> {
    match name_problem(value) {
        None => Ok(value.to_string()),
        Some(p) => Err(Rejection::invalid(
            field,
            format!("{value:?} is not a valid name: {p}"),
        )),
    }
}

pub fn id(field: &str, value: &str) -> Result<String, Rejection> {
    if value.is_empty() {
        return Err(Rejection::invalid(field, "is required"));
    }
    if value.len() > MAX_ID || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Rejection::invalid(
            field,
            format!("must be at most {MAX_ID} printable ASCII characters without spaces"),
        ));
    }
    Ok(value.to_string())
}

/// Request metadata carrying the correlation id (echoed in the reply).
pub const CORRELATION_KEY: &str = "x-correlation-id";

/// The caller's correlation id, or a fresh one.
pub fn correlation_id(metadata: &tonic::metadata::MetadataMap) -> Result<String, Rejection> {
    match metadata.get(CORRELATION_KEY) {
        None => Ok(uuid::Uuid::now_v7().to_string()),
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| Rejection::invalid(CORRELATION_KEY, "must be printable ASCII"))?;
            id(CORRELATION_KEY, text)
        }
    }
}

/// The idempotency key, or a fresh one.
pub fn command_id(key: &str) -> Result<String, Rejection> {
    if key.is_empty() {
        return Ok(uuid::Uuid::now_v7().to_string());
    }
    id("idempotency_key", key)
}

pub fn artifacts(items: &[pb::Artifact]) -> Result<Vec<Artifact>, Rejection> {
    if items.is_empty() {
        return Err(Rejection::invalid(
            "artifacts",
            "a freight needs at least one artifact",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let kind = match pb::artifact::Kind::try_from(a.kind) {
                Ok(pb::artifact::Kind::Image) => ArtifactKind::Image,
                Ok(pb::artifact::Kind::Git) => ArtifactKind::Git,
                Ok(pb::artifact::Kind::Chart) => ArtifactKind::Chart,
                _ => {
                    return Err(Rejection::invalid(
                        &format!("artifacts[{i}].kind"),
                        format!("{} is not IMAGE, GIT or CHART", a.kind),
                    ))
                }
            };
            if a.name.is_empty() {
                return Err(Rejection::invalid(
                    &format!("artifacts[{i}].name"),
                    "is required",
                ));
            }
            Ok(Artifact {
                kind,
                name: a.name.clone(),
                version: a.version.clone(),
                digest: a.digest.clone(),
            })
        })
        .collect()
}

pub fn discovery(r: &pb::RecordDiscoveryRequest) -> Result<Command, Rejection> {
    if !r.alias.is_empty() {
        id("alias", &r.alias)?;
    }
    Ok(Command::RecordDiscovery {
        warehouse: name("warehouse", &r.warehouse)?,
        artifacts: artifacts(&r.artifacts)?,
        alias: r.alias.clone(),
    })
}

pub fn verification(r: &pb::RecordVerificationRequest) -> Result<Command, Rejection> {
    if let Some((k, _)) = r.metrics.iter().find(|(_, v)| !v.is_finite()) {
        return Err(Rejection::invalid(
            "metrics",
            format!("{k} is not a finite number"),
        ));
    }
    Ok(Command::RecordVerification {
        freight: id("freight", &r.freight)?,
        stage: name("stage", &r.stage)?,
        check: name("check", &r.check)?,
        passed: r.passed,
        metrics: r.metrics.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        evidence_url: r.evidence_url.clone(),
        details: r.details.clone(),
    })
}

pub fn promotion(r: &pb::RequestPromotionRequest) -> Result<Command, Rejection> {
    use pb::request_promotion_request::FreightSelector as S;
    let freight = match &r.freight_selector {
        Some(S::Freight(f)) => FreightSelector::Named(id("freight", f)?),
        Some(S::NewestAvailable(true)) => FreightSelector::NewestAvailable,
        _ => {
            return Err(Rejection::invalid(
                "freight",
                "name a freight (id or alias) or ask for the newest available",
            ))
        }
    };
    Ok(Command::RequestPromotion {
        stage: name("stage", &r.stage)?,
        freight,
        ticket: r.ticket.clone(),
        reason: r.reason.clone(),
    })
}

pub fn result(r: &pb::ReportPromotionResultRequest) -> Result<Command, Rejection> {
    use pb::report_promotion_result_request::Result as R;
    let result = match R::try_from(r.result) {
        Ok(R::Started) => PromotionResult::Started,
        Ok(R::Succeeded) => PromotionResult::Succeeded,
        Ok(R::Failed) => PromotionResult::Failed,
        _ => {
            return Err(Rejection::invalid(
                "result",
                format!("{} is not STARTED, SUCCEEDED or FAILED", r.result),
            ))
        }
    };
    Ok(Command::ReportPromotionResult {
        promotion: id("promotion_id", &r.promotion_id)?,
        result,
        details: r.details.clone(),
    })
}
