//! Domain events: the payloads, their types and versions, the wire codec and
//! the upcasting hook.

mod codec;
mod kind;
mod payload;
mod upcast;
mod validate;

pub(crate) use codec::record_prev_hash;
pub use codec::{decode_record, encode_record};
pub use kind::EventType;
pub use payload::*;
pub use upcast::{upcast, Upcaster, CURRENT_FORMAT_VERSION};
pub use validate::{MAX_FIELD_LEN, MAX_RECORD_LEN};

use serde::{Deserialize, Serialize};

/// Every fact Waybill records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EventPayload {
    PipelineConfigured(PipelineConfigured),
    FreightDiscovered(FreightDiscovered),
    VerificationRecorded(VerificationRecorded),
    FreightApproved(FreightApproved),
    PromotionRequested(PromotionRequested),
    PromotionApproved(PromotionApproved),
    PromotionRejected(PromotionRejected),
    PromotionStarted(PromotionStarted),
    PromotionSucceeded(PromotionSucceeded),
    PromotionFailed(PromotionFailed),
    PromotionAborted(PromotionAborted),
    CheckpointSigned(CheckpointSigned),
}

impl EventPayload {
    /// The type of this payload.
    pub fn event_type(&self) -> EventType {
        match self {
            EventPayload::PipelineConfigured(_) => EventType::PipelineConfigured,
            EventPayload::FreightDiscovered(_) => EventType::FreightDiscovered,
            EventPayload::VerificationRecorded(_) => EventType::VerificationRecorded,
            EventPayload::FreightApproved(_) => EventType::FreightApproved,
            EventPayload::PromotionRequested(_) => EventType::PromotionRequested,
            EventPayload::PromotionApproved(_) => EventType::PromotionApproved,
            EventPayload::PromotionRejected(_) => EventType::PromotionRejected,
            EventPayload::PromotionStarted(_) => EventType::PromotionStarted,
            EventPayload::PromotionSucceeded(_) => EventType::PromotionSucceeded,
            EventPayload::PromotionFailed(_) => EventType::PromotionFailed,
            EventPayload::PromotionAborted(_) => EventType::PromotionAborted,
            EventPayload::CheckpointSigned(_) => EventType::CheckpointSigned,
        }
    }
}
