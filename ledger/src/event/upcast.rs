//! Upcasting: older schema versions are converted on read, never rewritten.
//!
//! Each [`Upcaster`] lifts one event type from one version to the next; the
//! chain is applied until the record reaches the current version. The bytes on
//! the log (and so the hash chain) are untouched.

use waybill_proto::v1 as pb;

use crate::error::LedgerError;
use crate::event::EventType;

/// The ledger format version written by this build.
pub const CURRENT_FORMAT_VERSION: u32 = 1;

/// Lifts records of one event type from `from_version` to `from_version + 1`.
pub trait Upcaster: Send + Sync {
    /// The event type handled.
    fn event_type(&self) -> EventType;
    /// The version read.
    fn source_version(&self) -> u32;
    /// Converts the record in place.
    fn upcast(&self, record: &mut pb::EventRecord) -> Result<(), String>;
}

/// The upcasters of this build (none yet: every type is at version 1).
fn builtin() -> &'static [&'static dyn Upcaster] {
    &[]
}

/// Brings `record` to the current schema version of its type.
pub fn upcast(record: pb::EventRecord) -> Result<pb::EventRecord, LedgerError> {
    upcast_with(record, builtin())
}

/// [`upcast`] with an explicit set of upcasters.
pub fn upcast_with(
    mut record: pb::EventRecord,
    upcasters: &[&dyn Upcaster],
) -> Result<pb::EventRecord, LedgerError> {
    let corrupt = |reason: String| LedgerError::Invalid {
        field: "event".into(),
        reason,
    };
    if record.format_version > CURRENT_FORMAT_VERSION {
        return Err(corrupt(format!(
            "ledger format version {} is newer than this build understands ({}); upgrade Waybill",
            record.format_version, CURRENT_FORMAT_VERSION
        )));
    }
    let event_type = EventType::from_ce_type(&record.r#type)
        .ok_or_else(|| corrupt(format!("unknown event type {:?}", record.r#type)))?;
    let target = event_type.schema_version();
    if record.schema_version > target {
        return Err(corrupt(format!(
            "{event_type} schema version {} is newer than this build understands ({target})",
            record.schema_version
        )));
    }
    while record.schema_version < target {
        let from = record.schema_version;
        let step = upcasters
            .iter()
            .find(|u| u.event_type() == event_type && u.source_version() == from)
            .ok_or_else(|| corrupt(format!("no upcaster for {event_type} version {from}")))?;
        step.upcast(&mut record).map_err(corrupt)?;
        record.schema_version = from + 1;
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hypothetical version 0 of `PromotionRejected` had no reason; version 1 requires one.
    struct RejectedV0;

    impl Upcaster for RejectedV0 {
        fn event_type(&self) -> EventType {
            EventType::PromotionRejected
        }
        fn source_version(&self) -> u32 {
            0
        }
        fn upcast(&self, record: &mut pb::EventRecord) -> Result<(), String> {
            match &mut record.payload {
                Some(pb::event_record::Payload::PromotionRejected(r)) if r.reason.is_empty() => {
                    r.reason = "(no reason recorded before schema v1)".into();
                    Ok(())
                }
                _ => Err("not a v0 rejection".into()),
            }
        }
    }

    fn rejected(version: u32) -> pb::EventRecord {
        pb::EventRecord {
            format_version: 1,
            r#type: EventType::PromotionRejected.ce_type().to_string(),
            schema_version: version,
            payload: Some(pb::event_record::Payload::PromotionRejected(
                pb::PromotionRejected {
                    promotion_id: "p".into(),
                    reason: String::new(),
                },
            )),
            ..Default::default()
        }
    }

    #[test]
    fn old_versions_are_lifted_on_read() {
        let up = upcast_with(rejected(0), &[&RejectedV0]).expect("upcast");
        assert_eq!(up.schema_version, 1);
        match up.payload {
            Some(pb::event_record::Payload::PromotionRejected(r)) => {
                assert!(r.reason.contains("no reason"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_upcasters_and_future_versions_are_refused() {
        assert!(upcast_with(rejected(0), &[]).is_err());
        let err = upcast_with(rejected(7), &[]).expect_err("future");
        assert!(err.to_string().contains("newer"), "{err}");
        let mut future_format = rejected(1);
        future_format.format_version = 2;
        assert!(upcast(future_format).is_err());
        assert!(upcast(rejected(1)).is_ok());
    }
}
