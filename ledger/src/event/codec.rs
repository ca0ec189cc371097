//! Conversion between domain events and the protobuf record on the wire.
//! Protobuf stops here: nothing outside this file sees `pb::EventRecord`.

use chrono::{DateTime, Utc};
use prost::Message;
use uuid::Uuid;
use waybill_proto::v1 as pb;
use waybill_proto::v1::event_record::Payload as P;

use super::payload::*;
use super::upcast::{upcast, CURRENT_FORMAT_VERSION};
use super::EventPayload;
use crate::chain::ChainHash;
use crate::envelope::{Actor, Event};
use crate::error::LedgerError;

/// Encodes an event into its canonical bytes (what is stored and hashed).
pub fn encode_record(event: &Event) -> Vec<u8> {
    let record = pb::EventRecord {
        format_version: CURRENT_FORMAT_VERSION,
        id: event.id.to_string(),
        project: event.project.clone(),
        project_seq: event.project_seq,
        prev_hash: event.prev_hash.0.to_vec(),
        r#type: event.payload.event_type().ce_type().to_string(),
        schema_version: event.schema_version,
        time_unix_nanos: event.time.timestamp_nanos_opt().unwrap_or(i64::MAX),
        source: event.source.clone(),
        subject: event.subject.clone(),
        actor: Some(pb::Actor {
            principal: event.actor.principal.clone(),
            auth_method: event.actor.auth_method.clone(),
        }),
        command_id: event.command_id.clone(),
        correlation_id: event.correlation_id.clone(),
        causation_id: event.causation_id.clone(),
        payload: Some(payload_to_pb(&event.payload)),
    };
    record.encode_to_vec()
}

/// Decodes stored bytes into a domain event, upcasting older schema versions.
pub fn decode_record(bytes: &[u8]) -> Result<Event, LedgerError> {
    let record = pb::EventRecord::decode(bytes)
        .map_err(|e| LedgerError::invalid("event", format!("not a valid record: {e}")))?;
    let original_version = record.schema_version;
    let record = upcast(record)?;
    let mut event = Event::try_from(record)?;
    event.schema_version = original_version;
    Ok(event)
}

/// The `prev_hash` of a record's envelope, read without the rest of it
/// (whose payload may be one this build does not know): what tells a record
/// that a newer Waybill wrote from a message that no Waybill did.
pub(crate) fn record_prev_hash(bytes: &[u8]) -> Option<ChainHash> {
    let record = pb::EventRecord::decode(bytes).ok()?;
    ChainHash::from_slice(&record.prev_hash)
}

impl TryFrom<pb::EventRecord> for Event {
    type Error = LedgerError;

    fn try_from(r: pb::EventRecord) -> Result<Self, Self::Error> {
        let id = Uuid::parse_str(&r.id)
            .map_err(|e| LedgerError::invalid("id", format!("{:?}: {e}", r.id)))?;
        let prev_hash = ChainHash::from_slice(&r.prev_hash)
            .ok_or_else(|| LedgerError::invalid("prev_hash", "must be 32 bytes"))?;
        let payload = r
            .payload
            .ok_or_else(|| LedgerError::invalid("payload", "missing"))?;
        let payload = payload_from_pb(payload)?;
        if payload.event_type().ce_type() != r.r#type {
            return Err(LedgerError::invalid(
                "type",
                format!("{:?} does not match the payload", r.r#type),
            ));
        }
        let actor = r.actor.unwrap_or_default();
        Ok(Event {
            id,
            project: r.project,
            project_seq: r.project_seq,
            prev_hash,
            time: DateTime::<Utc>::from_timestamp_nanos(r.time_unix_nanos),
            source: r.source,
            subject: r.subject,
            actor: Actor {
                principal: actor.principal,
                auth_method: actor.auth_method,
            },
            command_id: r.command_id,
            correlation_id: r.correlation_id,
            causation_id: r.causation_id,
            schema_version: r.schema_version,
            payload,
        })
    }
}

fn artifact_to_pb(a: &Artifact) -> pb::Artifact {
    let kind = match a.kind {
        ArtifactKind::Image => pb::artifact::Kind::Image,
        ArtifactKind::Git => pb::artifact::Kind::Git,
        ArtifactKind::Chart => pb::artifact::Kind::Chart,
    };
    pb::Artifact {
        kind: kind as i32,
        name: a.name.clone(),
        version: a.version.clone(),
        digest: a.digest.clone(),
    }
}

fn artifact_from_pb(a: pb::Artifact) -> Result<Artifact, LedgerError> {
    let kind = match pb::artifact::Kind::try_from(a.kind) {
        Ok(pb::artifact::Kind::Image) => ArtifactKind::Image,
        Ok(pb::artifact::Kind::Git) => ArtifactKind::Git,
        Ok(pb::artifact::Kind::Chart) => ArtifactKind::Chart,
        _ => {
            return Err(LedgerError::invalid(
                "artifact.kind",
                format!("unknown kind {}", a.kind),
            ))
        }
    };
    Ok(Artifact {
        kind,
        name: a.name,
        version: a.version,
        digest: a.digest,
    })
}

fn payload_to_pb(p: &EventPayload) -> P {
    match p.clone() {
        EventPayload::PipelineConfigured(e) => P::PipelineConfigured(pb::PipelineConfigured {
            definition_json: e.definition_json,
            source_uri: e.source_uri,
            source_revision: e.source_revision,
            source_digest: e.source_digest,
        }),
        EventPayload::FreightDiscovered(e) => P::FreightDiscovered(pb::FreightDiscovered {
            freight_id: e.freight_id,
            warehouse: e.warehouse,
            artifacts: e.artifacts.iter().map(artifact_to_pb).collect(),
            alias: e.alias,
        }),
        EventPayload::VerificationRecorded(e) => {
            P::VerificationRecorded(pb::VerificationRecorded {
                freight_id: e.freight_id,
                stage: e.stage,
                check: e.check,
                passed: e.passed,
                metrics: e.metrics.into_iter().collect(),
                evidence_url: e.evidence_url,
                details: e.details,
            })
        }
        EventPayload::FreightApproved(e) => P::FreightApproved(pb::FreightApproved {
            freight_id: e.freight_id,
            stage: e.stage,
            reason: e.reason,
            ticket: e.ticket,
            bypass: e.bypass,
        }),
        EventPayload::PromotionRequested(e) => P::PromotionRequested(pb::PromotionRequested {
            promotion_id: e.promotion_id,
            stage: e.stage,
            freight_id: e.freight_id,
            ticket: e.ticket,
            reason: e.reason,
        }),
        EventPayload::PromotionApproved(e) => P::PromotionApproved(pb::PromotionApproved {
            promotion_id: e.promotion_id,
            comment: e.comment,
        }),
        EventPayload::PromotionRejected(e) => P::PromotionRejected(pb::PromotionRejected {
            promotion_id: e.promotion_id,
            reason: e.reason,
        }),
        EventPayload::PromotionStarted(e) => P::PromotionStarted(pb::PromotionStarted {
            promotion_id: e.promotion_id,
            executor: e.executor,
        }),
        EventPayload::PromotionSucceeded(e) => P::PromotionSucceeded(pb::PromotionSucceeded {
            promotion_id: e.promotion_id,
            details: e.details,
        }),
        EventPayload::PromotionFailed(e) => P::PromotionFailed(pb::PromotionFailed {
            promotion_id: e.promotion_id,
            reason: e.reason,
            details: e.details,
        }),
        EventPayload::PromotionAborted(e) => P::PromotionAborted(pb::PromotionAborted {
            promotion_id: e.promotion_id,
            reason: e.reason,
        }),
        EventPayload::CheckpointSigned(e) => P::CheckpointSigned(pb::CheckpointSigned {
            origin: e.origin,
            tree_size: e.tree_size,
            root_hash: e.root_hash,
            signed_note: e.signed_note,
        }),
    }
}

fn payload_from_pb(p: P) -> Result<EventPayload, LedgerError> {
    Ok(match p {
        P::PipelineConfigured(e) => EventPayload::PipelineConfigured(PipelineConfigured {
            definition_json: e.definition_json,
            source_uri: e.source_uri,
            source_revision: e.source_revision,
            source_digest: e.source_digest,
        }),
        P::FreightDiscovered(e) => EventPayload::FreightDiscovered(FreightDiscovered {
            freight_id: e.freight_id,
            warehouse: e.warehouse,
            artifacts: e
                .artifacts
                .into_iter()
                .map(artifact_from_pb)
                .collect::<Result<_, _>>()?,
            alias: e.alias,
        }),
        P::VerificationRecorded(e) => EventPayload::VerificationRecorded(VerificationRecorded {
            freight_id: e.freight_id,
            stage: e.stage,
            check: e.check,
            passed: e.passed,
            metrics: e.metrics.into_iter().collect(),
            evidence_url: e.evidence_url,
            details: e.details,
        }),
        P::FreightApproved(e) => EventPayload::FreightApproved(FreightApproved {
            freight_id: e.freight_id,
            stage: e.stage,
            reason: e.reason,
            ticket: e.ticket,
            bypass: e.bypass,
        }),
        P::PromotionRequested(e) => EventPayload::PromotionRequested(PromotionRequested {
            promotion_id: e.promotion_id,
            stage: e.stage,
            freight_id: e.freight_id,
            ticket: e.ticket,
            reason: e.reason,
        }),
        P::PromotionApproved(e) => EventPayload::PromotionApproved(PromotionApproved {
            promotion_id: e.promotion_id,
            comment: e.comment,
        }),
        P::PromotionRejected(e) => EventPayload::PromotionRejected(PromotionRejected {
            promotion_id: e.promotion_id,
            reason: e.reason,
        }),
        P::PromotionStarted(e) => EventPayload::PromotionStarted(PromotionStarted {
            promotion_id: e.promotion_id,
            executor: e.executor,
        }),
        P::PromotionSucceeded(e) => EventPayload::PromotionSucceeded(PromotionSucceeded {
            promotion_id: e.promotion_id,
            details: e.details,
        }),
        P::PromotionFailed(e) => EventPayload::PromotionFailed(PromotionFailed {
            promotion_id: e.promotion_id,
            reason: e.reason,
            details: e.details,
        }),
        P::PromotionAborted(e) => EventPayload::PromotionAborted(PromotionAborted {
            promotion_id: e.promotion_id,
            reason: e.reason,
        }),
        P::CheckpointSigned(e) => EventPayload::CheckpointSigned(CheckpointSigned {
            origin: e.origin,
            tree_size: e.tree_size,
            root_hash: e.root_hash,
            signed_note: e.signed_note,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use proptest::prelude::*;

    fn sample(payload: EventPayload) -> Event {
        Event {
            id: Uuid::now_v7(),
            project: "shop".into(),
            project_seq: 3,
            prev_hash: ChainHash([7; 32]),
            time: DateTime::<Utc>::from_timestamp_nanos(1_700_000_000_123_456_789),
            source: "waybill://test".into(),
            subject: "stage/prod".into(),
            actor: Actor {
                principal: "alice".into(),
                auth_method: "jwt".into(),
            },
            command_id: "cmd-1".into(),
            correlation_id: "corr".into(),
            causation_id: "cause".into(),
            schema_version: 1,
            payload,
        }
    }

    fn payload() -> impl Strategy<Value = EventPayload> {
        let text = "[ -~]{0,40}";
        prop_oneof![
            (text, text).prop_map(
                |(a, b)| EventPayload::PipelineConfigured(PipelineConfigured {
                    definition_json: a,
                    source_uri: b,
                    source_revision: String::new(),
                    source_digest: String::new(),
                })
            ),
            (text, prop::collection::vec((text, text), 0..4)).prop_map(|(id, arts)| {
                EventPayload::FreightDiscovered(FreightDiscovered {
                    freight_id: id,
                    warehouse: "images".into(),
                    artifacts: arts
                        .into_iter()
                        .map(|(name, version)| Artifact {
                            kind: ArtifactKind::Image,
                            name,
                            version,
                            digest: "sha256:00".into(),
                        })
                        .collect(),
                    alias: String::new(),
                })
            }),
            (
                text,
                any::<bool>(),
                prop::collection::btree_map("[a-z]{1,8}", -1e9f64..1e9, 0..4)
            )
                .prop_map(|(check, passed, metrics)| {
                    EventPayload::VerificationRecorded(VerificationRecorded {
                        freight_id: "f".into(),
                        stage: "dev".into(),
                        check,
                        passed,
                        metrics,
                        evidence_url: "https://ci/1".into(),
                        details: String::new(),
                    })
                }),
            (text, any::<bool>()).prop_map(|(reason, bypass)| EventPayload::FreightApproved(
                FreightApproved {
                    freight_id: "f".into(),
                    stage: "prod".into(),
                    reason,
                    ticket: "CHG-1".into(),
                    bypass,
                }
            )),
            (text, text).prop_map(
                |(p, t)| EventPayload::PromotionRequested(PromotionRequested {
                    promotion_id: p,
                    stage: "prod".into(),
                    freight_id: "f".into(),
                    ticket: t,
                    reason: String::new(),
                })
            ),
            text.prop_map(|c| EventPayload::PromotionApproved(PromotionApproved {
                promotion_id: "p".into(),
                comment: c,
            })),
            text.prop_map(|r| EventPayload::PromotionRejected(PromotionRejected {
                promotion_id: "p".into(),
                reason: r,
            })),
            text.prop_map(|e| EventPayload::PromotionStarted(PromotionStarted {
                promotion_id: "p".into(),
                executor: e,
            })),
            text.prop_map(|d| EventPayload::PromotionSucceeded(PromotionSucceeded {
                promotion_id: "p".into(),
                details: d,
            })),
            (text, text).prop_map(|(r, d)| EventPayload::PromotionFailed(PromotionFailed {
                promotion_id: "p".into(),
                reason: r,
                details: d,
            })),
            text.prop_map(|r| EventPayload::PromotionAborted(PromotionAborted {
                promotion_id: "p".into(),
                reason: r,
            })),
            (any::<u64>(), prop::collection::vec(any::<u8>(), 32)).prop_map(|(n, root)| {
                EventPayload::CheckpointSigned(CheckpointSigned {
                    origin: "waybill".into(),
                    tree_size: n,
                    root_hash: root,
                    signed_note: String::new(),
                })
            }),
        ]
    }

    proptest! {
        #[test]
        fn every_payload_round_trips(p in payload()) {
            let event = sample(p);
            let bytes = encode_record(&event);
            let decoded = decode_record(&bytes).expect("decode");
            prop_assert_eq!(&decoded, &event);
            // Encoding is deterministic, so the canonical bytes are stable.
            prop_assert_eq!(encode_record(&decoded), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_record(&bytes);
        }
    }

    #[test]
    fn a_type_that_disagrees_with_the_payload_is_refused() {
        let event = sample(EventPayload::PromotionApproved(PromotionApproved {
            promotion_id: "p".into(),
            comment: String::new(),
        }));
        let mut record = pb::EventRecord::decode(encode_record(&event).as_slice()).expect("decode");
        record.r#type = EventType::PromotionRejected.ce_type().to_string();
        assert!(decode_record(&record.encode_to_vec()).is_err());
    }
}
