//! Requests → domain commands. Malformed input becomes `INVALID_ARGUMENT`
//! here, before anything is decided or appended.

use waybill_ledger::domain::is_lower_hex;
use waybill_ledger::event::{Artifact, ArtifactKind};
use waybill_ledger::name::name_problem;
use waybill_ledger::{LedgerError, ProjectName};
use waybill_proto::v1 as pb;

use crate::command::{Command, FreightSelector, PromotionResult};
use crate::rejection::Rejection;

/// Longest id, alias or idempotency key accepted.
const MAX_ID: usize = 128;

pub fn project(value: &str) -> Result<ProjectName, Rejection> {
    ProjectName::project(value).map_err(|e| match e {
        LedgerError::Invalid { field, reason } => Rejection::invalid(&field, reason),
        other => Rejection::invalid("project", other.to_string()),
    })
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
            if let Some((field, problem)) = artifact_problem(kind, &a.version, &a.digest) {
                return Err(Rejection::invalid(
                    &format!("artifacts[{i}].{field}"),
                    problem,
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

/// What is wrong with an artifact's version and digest for its kind, if
/// anything: the field and why. A freight's id is computed from these, so a
/// malformed or abbreviated one would record something no registry or
/// repository can resolve.
fn artifact_problem(
    kind: ArtifactKind,
    version: &str,
    digest: &str,
) -> Option<(&'static str, String)> {
    match kind {
        ArtifactKind::Image if version.is_empty() && digest.is_empty() => {
            Some(("version", "an image needs a tag or a digest".into()))
        }
        ArtifactKind::Git if !is_commit(digest) => Some((
            "digest",
            format!("{digest:?} is not a full git commit id (40 or 64 lowercase hex digits)"),
        )),
        ArtifactKind::Chart if version.is_empty() => {
            Some(("version", "a chart needs its version".into()))
        }
        ArtifactKind::Image | ArtifactKind::Chart if !digest.is_empty() => {
            oci_digest_problem(digest)
                .map(|p| ("digest", format!("{digest:?} is not an OCI digest: {p}")))
        }
        _ => None,
    }
}

fn is_commit(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && is_lower_hex(s)
}

/// What makes `digest` not an OCI digest (`algorithm:encoded`, with the
/// registered algorithms' exact lengths), if anything.
fn oci_digest_problem(digest: &str) -> Option<String> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Some("expected algorithm:encoded, e.g. sha256:<64 hex digits>".into());
    };
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !algorithm.split(['+', '.', '_', '-']).all(component) {
        return Some(format!("{algorithm:?} is not an algorithm name"));
    }
    let hex_len = match algorithm {
        "sha256" => Some(64),
        "sha512" => Some(128),
        _ => None,
    };
    match hex_len {
        Some(n) if encoded.len() != n || !is_lower_hex(encoded) => Some(format!(
            "a {algorithm} digest is {n} lowercase hex digits, not {} characters",
            encoded.len()
        )),
        None if encoded.is_empty()
            || !encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b)) =>
        {
            Some(format!("{encoded:?} is not an encoded digest"))
        }
        _ => None,
    }
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
    let freight = match (&r.freight_selector, r.warehouse.as_str()) {
        (Some(S::Freight(_)), w) if !w.is_empty() => {
            return Err(Rejection::invalid(
                "warehouse",
                "is for asking for the newest available freight of a warehouse: leave it out when naming a freight",
            ))
        }
        (Some(S::Freight(f)), _) => FreightSelector::Named(id("freight", f)?),
        (Some(S::NewestAvailable(true)), "") => FreightSelector::NewestAvailable,
        (Some(S::NewestAvailable(true)), w) => FreightSelector::NewestOf(name("warehouse", w)?),
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

/// The idempotency key of an executor's report. A promotion has at most one
/// report of each result, so without a key of the caller's the key is made
/// of the project, the promotion and the result: an executor that reports
/// again (its reply lost, its job retried) gets the first report's outcome,
/// not a refusal. (A key that would not be valid is left to the caller's
/// malformed fields to explain.)
pub fn report_key(r: &pb::ReportPromotionResultRequest) -> String {
    if !r.idempotency_key.is_empty() {
        return r.idempotency_key.clone();
    }
    let key = format!("report-{}-{}-{}", r.project, r.promotion_id, r.result);
    id("idempotency_key", &key).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: ArtifactKind, version: &str, digest: &str) -> Option<&'static str> {
        artifact_problem(kind, version, digest).map(|(field, _)| field)
    }

    #[test]
    fn artifacts_are_refused_when_no_registry_or_repository_could_resolve_them() {
        let sha256 = format!("sha256:{}", "9f86d081".repeat(8));
        let sha512 = format!("sha512:{}", "ab".repeat(64));
        let commit = "a".repeat(40);
        use ArtifactKind::{Chart, Git, Image};
        for ok in [
            (Image, "1.4.2", ""),
            (Image, "1.4.2", sha256.as_str()),
            (Image, "", sha256.as_str()),
            (Image, "1.4.2", sha512.as_str()),
            (Image, "1.4.2", "blake3:AbC_-="),
            (
                Image,
                "1.4.2",
                "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
            ),
            (Git, "", commit.as_str()),
            (Git, "main", &"0123456789abcdef".repeat(4)),
            (Chart, "0.3.1", ""),
            (Chart, "0.3.1", sha256.as_str()),
        ] {
            assert_eq!(check(ok.0, ok.1, ok.2), None, "{ok:?}");
        }
        for (bad, field) in [
            ((Image, "", ""), "version"),
            ((Image, "1.4.2", "sha256:9f86d08"), "digest"),
            ((Image, "1.4.2", &sha256.to_uppercase()[..]), "digest"),
            (
                (Image, "1.4.2", &sha256.replace("sha256:", "")[..]),
                "digest",
            ),
            ((Image, "1.4.2", "SHA256:abc"), "digest"),
            ((Image, "1.4.2", "sha256:"), "digest"),
            ((Image, "1.4.2", ":abc"), "digest"),
            ((Image, "1.4.2", "sha256+:abc"), "digest"),
            ((Image, "1.4.2", "blake3:a b"), "digest"),
            ((Git, "", ""), "digest"),
            ((Git, "", "abc1234"), "digest"),
            ((Git, "", &commit.to_uppercase()[..]), "digest"),
            ((Chart, "", ""), "version"),
            ((Chart, "0.3.1", "md5"), "digest"),
        ] {
            assert_eq!(check(bad.0, bad.1, bad.2), Some(field), "{bad:?}");
        }
    }
}
