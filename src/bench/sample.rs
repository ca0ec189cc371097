//! What the benchmark appends: a typical Waybill event and unique ids.

use std::time::{SystemTime, UNIX_EPOCH};

use waybill_ledger::event::PromotionRequested;
use waybill_ledger::{Actor, EventPayload, NewEvent};

/// A promotion request as a person would make it through the API: ids,
/// a stage, a freight id (a content hash), a ticket, a reason, an
/// authenticated actor and a correlation id. Every field has a fixed width,
/// so every event encodes to the same length.
pub fn event(command_id: String, n: u64) -> NewEvent {
    let mut event = NewEvent::new(
        EventPayload::PromotionRequested(PromotionRequested {
            promotion_id: format!("promo-{n:010}"),
            stage: "staging".to_string(),
            freight_id: "5d41402abc4b2a76b9719d911017c592ae2f7c3e".to_string(),
            ticket: "CHG-104233".to_string(),
            reason: "weekly release train".to_string(),
        }),
        Actor {
            principal: "alice@example.com".to_string(),
            auth_method: "jwt".to_string(),
        },
        command_id.clone(),
    );
    event.subject = "stage/staging".to_string();
    event.correlation_id = command_id;
    event
}

/// Ids unique to one run, so that runs against a shared server never collide
/// (in stream names, subjects, or the duplicate window).
#[derive(Debug, Clone)]
pub struct RunId(String);

impl RunId {
    /// From the clock: 8 hex digits of the current time in milliseconds.
    pub fn new() -> RunId {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        RunId(format!("{:08x}", millis & 0xffff_ffff))
    }

    /// `<prefix><run>`, e.g. a stream name or a subject prefix.
    pub fn name(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.0)
    }

    /// A command or message id: fixed width for a given `phase`.
    pub fn command_id(&self, phase: &str, writer: usize, n: u64) -> String {
        format!("bench-{}-{phase}-{writer:04}-{n:010}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_events_are_valid_and_ids_fixed_width() {
        let run = RunId::new();
        let a = run.command_id("lat", 0, 0);
        let b = run.command_id("lat", 63, 9_999_999);
        assert_eq!(a.len(), b.len());
        event(a, 0).payload.validate().expect("a valid payload");
    }
}
