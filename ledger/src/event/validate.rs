//! Structural validation of payloads, done before anything is appended.
//! Policy rules live in `commands`; this only refuses what could never be stored.

use super::payload::*;
use super::EventPayload;
use crate::error::LedgerError;
use crate::name::name_problem;

/// Longest free-text field (reason, details, URLs), in bytes.
pub const MAX_FIELD_LEN: usize = 4 * 1024;
/// Longest pipeline definition, in bytes.
pub const MAX_DEFINITION_LEN: usize = 512 * 1024;
/// Longest encoded record; NATS' default max payload is 1 MiB.
pub const MAX_RECORD_LEN: usize = 900 * 1024;
/// Most artifacts in one freight, and metrics in one verification.
pub const MAX_ITEMS: usize = 256;

fn name(field: &str, value: &str) -> Result<(), LedgerError> {
    match name_problem(value) {
        None => Ok(()),
        Some(problem) => Err(LedgerError::invalid(field, format!("{value:?}: {problem}"))),
    }
}

fn id(field: &str, value: &str) -> Result<(), LedgerError> {
    if value.is_empty() {
        return Err(LedgerError::invalid(field, "must not be empty"));
    }
    if value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LedgerError::invalid(
            field,
            "must be at most 128 printable ASCII characters",
        ));
    }
    Ok(())
}

fn text(field: &str, value: &str) -> Result<(), LedgerError> {
    text_max(field, value, MAX_FIELD_LEN)
}

fn text_max(field: &str, value: &str, max: usize) -> Result<(), LedgerError> {
    if value.len() > max {
        return Err(LedgerError::invalid(
            field,
            format!("is {} bytes, more than the limit of {max}", value.len()),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(LedgerError::invalid(field, "contains control characters"));
    }
    Ok(())
}

fn items(field: &str, len: usize) -> Result<(), LedgerError> {
    if len > MAX_ITEMS {
        return Err(LedgerError::invalid(
            field,
            format!("has {len} items, more than the limit of {MAX_ITEMS}"),
        ));
    }
    Ok(())
}

impl EventPayload {
    /// Refuses payloads with invalid names, empty ids or oversized fields.
    pub fn validate(&self) -> Result<(), LedgerError> {
        match self {
            EventPayload::PipelineConfigured(e) => {
                text_max("definition_json", &e.definition_json, MAX_DEFINITION_LEN)?;
                text("source_uri", &e.source_uri)?;
                text("source_revision", &e.source_revision)?;
                text("source_digest", &e.source_digest)
            }
            EventPayload::FreightDiscovered(e) => {
                id("freight_id", &e.freight_id)?;
                name("warehouse", &e.warehouse)?;
                text("alias", &e.alias)?;
                items("artifacts", e.artifacts.len())?;
                if e.artifacts.is_empty() {
                    return Err(LedgerError::invalid("artifacts", "a freight needs one"));
                }
                for a in &e.artifacts {
                    text("artifact.name", &a.name)?;
                    text("artifact.version", &a.version)?;
                    text("artifact.digest", &a.digest)?;
                }
                Ok(())
            }
            EventPayload::VerificationRecorded(e) => {
                id("freight_id", &e.freight_id)?;
                name("stage", &e.stage)?;
                name("check", &e.check)?;
                items("metrics", e.metrics.len())?;
                for (k, v) in &e.metrics {
                    text("metric name", k)?;
                    if !v.is_finite() {
                        return Err(LedgerError::invalid(
                            "metrics",
                            format!("{k} is not finite"),
                        ));
                    }
                }
                text("evidence_url", &e.evidence_url)?;
                text("details", &e.details)
            }
            EventPayload::FreightApproved(e) => {
                id("freight_id", &e.freight_id)?;
                name("stage", &e.stage)?;
                text("reason", &e.reason)?;
                text("ticket", &e.ticket)
            }
            EventPayload::PromotionRequested(e) => {
                id("promotion_id", &e.promotion_id)?;
                name("stage", &e.stage)?;
                id("freight_id", &e.freight_id)?;
                text("ticket", &e.ticket)?;
                text("reason", &e.reason)
            }
            EventPayload::PromotionApproved(PromotionApproved {
                promotion_id,
                comment: t,
            })
            | EventPayload::PromotionRejected(PromotionRejected {
                promotion_id,
                reason: t,
            })
            | EventPayload::PromotionStarted(PromotionStarted {
                promotion_id,
                executor: t,
            })
            | EventPayload::PromotionSucceeded(PromotionSucceeded {
                promotion_id,
                details: t,
            })
            | EventPayload::PromotionAborted(PromotionAborted {
                promotion_id,
                reason: t,
            }) => {
                id("promotion_id", promotion_id)?;
                text("text", t)
            }
            EventPayload::PromotionFailed(e) => {
                id("promotion_id", &e.promotion_id)?;
                text("reason", &e.reason)?;
                text("details", &e.details)
            }
            EventPayload::CheckpointSigned(e) => {
                text("origin", &e.origin)?;
                text_max("signed_note", &e.signed_note, 16 * 1024)
            }
        }
    }
}
