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
    fn from_version(&self) -> u32;
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
            .find(|u| u.event_type() == event_type && u.from_version() == from)
            .ok_or_else(|| corrupt(format!("no upcaster for {event_type} version {from}")))?;
        step.upcast(&mut record).map_err(corrupt)?;
        record.schema_version = from + 1;
    }
    Ok(record)
}
