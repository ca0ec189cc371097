//! Event types: their names on the wire, subject tokens and schema versions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The type of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    PipelineConfigured,
    FreightDiscovered,
    VerificationRecorded,
    FreightApproved,
    PromotionRequested,
    PromotionApproved,
    PromotionRejected,
    PromotionStarted,
    PromotionSucceeded,
    PromotionFailed,
    PromotionAborted,
    CheckpointSigned,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 12] = [
        EventType::PipelineConfigured,
        EventType::FreightDiscovered,
        EventType::VerificationRecorded,
        EventType::FreightApproved,
        EventType::PromotionRequested,
        EventType::PromotionApproved,
        EventType::PromotionRejected,
        EventType::PromotionStarted,
        EventType::PromotionSucceeded,
        EventType::PromotionFailed,
        EventType::PromotionAborted,
        EventType::CheckpointSigned,
    ];

    /// The type's name, e.g. `PromotionRequested`.
    pub fn name(self) -> &'static str {
        match self {
            EventType::PipelineConfigured => "PipelineConfigured",
            EventType::FreightDiscovered => "FreightDiscovered",
            EventType::VerificationRecorded => "VerificationRecorded",
            EventType::FreightApproved => "FreightApproved",
            EventType::PromotionRequested => "PromotionRequested",
            EventType::PromotionApproved => "PromotionApproved",
            EventType::PromotionRejected => "PromotionRejected",
            EventType::PromotionStarted => "PromotionStarted",
            EventType::PromotionSucceeded => "PromotionSucceeded",
            EventType::PromotionFailed => "PromotionFailed",
            EventType::PromotionAborted => "PromotionAborted",
            EventType::CheckpointSigned => "CheckpointSigned",
        }
    }

    /// The last token of the NATS subject: `waybill.<project>.<token>`.
    pub fn subject_token(self) -> &'static str {
        match self {
            EventType::PipelineConfigured => "pipeline-configured",
            EventType::FreightDiscovered => "freight-discovered",
            EventType::VerificationRecorded => "verification-recorded",
            EventType::FreightApproved => "freight-approved",
            EventType::PromotionRequested => "promotion-requested",
            EventType::PromotionApproved => "promotion-approved",
            EventType::PromotionRejected => "promotion-rejected",
            EventType::PromotionStarted => "promotion-started",
            EventType::PromotionSucceeded => "promotion-succeeded",
            EventType::PromotionFailed => "promotion-failed",
            EventType::PromotionAborted => "promotion-aborted",
            EventType::CheckpointSigned => "checkpoint-signed",
        }
    }

    /// The CloudEvents `type` attribute, e.g. `waybill.v1.PromotionRequested`.
    pub fn ce_type(self) -> &'static str {
        static CE_TYPES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
            EventType::ALL
                .iter()
                .map(|t| format!("waybill.v1.{}", t.name()))
                .collect()
        });
        // `ALL` lists the variants in declaration order (a test checks it).
        &CE_TYPES[self as usize]
    }

    /// Parses a CloudEvents `type` attribute.
    pub fn from_ce_type(text: &str) -> Option<EventType> {
        let name = text.strip_prefix("waybill.v1.")?;
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// A type as a person names it: its name (`PromotionRequested`, in any
    /// case), its subject token (`promotion-requested`) or its CloudEvents
    /// type (`waybill.v1.PromotionRequested`).
    pub fn parse(text: &str) -> Option<EventType> {
        let text = text.trim();
        let name = text.strip_prefix("waybill.v1.").unwrap_or(text);
        EventType::ALL.into_iter().find(|t| {
            t.name().eq_ignore_ascii_case(name) || t.subject_token().eq_ignore_ascii_case(name)
        })
    }

    /// The schema version new events of this type are written with.
    pub fn schema_version(self) -> u32 {
        1
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order_and_ce_types_round_trip() {
        for (i, t) in EventType::ALL.into_iter().enumerate() {
            assert_eq!(t as usize, i, "{t} is out of order in ALL");
            assert_eq!(t.ce_type(), format!("waybill.v1.{}", t.name()));
            assert_eq!(EventType::from_ce_type(t.ce_type()), Some(t));
            for text in [
                t.name().to_string(),
                t.name().to_lowercase(),
                t.subject_token().to_string(),
                t.ce_type().to_string(),
            ] {
                assert_eq!(EventType::parse(&text), Some(t), "{text}");
            }
        }
        assert_eq!(EventType::parse("PromotionFoo"), None);
        assert_eq!(EventType::parse(""), None);
    }
}
