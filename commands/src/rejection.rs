//! Why a command is refused. Typed, with a machine-readable reason and details;
//! mapped to gRPC status codes in exactly one place (`service::status`).

use std::collections::BTreeMap;
use std::fmt;

/// A refused command. Nothing was appended.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// Malformed input: unknown project or stage, invalid names, missing fields.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// The freight or promotion named does not exist.
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// Policy forbids it now.
    #[error("{message}")]
    Policy {
        reason: Reason,
        message: String,
        details: BTreeMap<String, String>,
    },
}

/// Machine-readable reasons for policy rejections (`FAILED_PRECONDITION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    FreightNotAvailable,
    ApprovalsMissing,
    SeparationOfDuties,
    AlreadyApproved,
    TicketRequired,
    TicketInvalid,
    PromotionWindowClosed,
    StageFrozen,
    StageBusy,
    PromotionNotPending,
    NoRollbackTarget,
    BypassNotAllowed,
    AlreadyInFlight,
    AlreadyCurrent,
    StageInUse,
}

impl Reason {
    /// The reason as it appears on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Reason::FreightNotAvailable => "FREIGHT_NOT_AVAILABLE",
            Reason::ApprovalsMissing => "APPROVALS_MISSING",
            Reason::SeparationOfDuties => "SEPARATION_OF_DUTIES",
            Reason::AlreadyApproved => "ALREADY_APPROVED",
            Reason::TicketRequired => "TICKET_REQUIRED",
            Reason::TicketInvalid => "TICKET_INVALID",
            Reason::PromotionWindowClosed => "PROMOTION_WINDOW_CLOSED",
            Reason::StageFrozen => "STAGE_FROZEN",
            Reason::StageBusy => "STAGE_BUSY",
            Reason::PromotionNotPending => "PROMOTION_NOT_PENDING",
            Reason::NoRollbackTarget => "NO_ROLLBACK_TARGET",
            Reason::BypassNotAllowed => "BYPASS_NOT_ALLOWED",
            Reason::AlreadyInFlight => "ALREADY_IN_FLIGHT",
            Reason::AlreadyCurrent => "ALREADY_CURRENT",
            Reason::StageInUse => "STAGE_IN_USE",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Rejection {
    pub fn invalid(field: &str, message: impl Into<String>) -> Rejection {
        Rejection::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn policy<'a>(
        reason: Reason,
        message: impl Into<String>,
        details: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Rejection {
        Rejection::Policy {
            reason,
            message: message.into(),
            details: details
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    /// The policy reason, if this is a policy rejection.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Rejection::Policy { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason (a new one belongs here too).
    const ALL: [Reason; 15] = [
        Reason::FreightNotAvailable,
        Reason::ApprovalsMissing,
        Reason::SeparationOfDuties,
        Reason::AlreadyApproved,
        Reason::TicketRequired,
        Reason::TicketInvalid,
        Reason::PromotionWindowClosed,
        Reason::StageFrozen,
        Reason::StageBusy,
        Reason::PromotionNotPending,
        Reason::NoRollbackTarget,
        Reason::BypassNotAllowed,
        Reason::AlreadyInFlight,
        Reason::AlreadyCurrent,
        Reason::StageInUse,
    ];

    #[test]
    fn every_reason_is_documented_in_the_command_proto() {
        let proto = include_str!("../../proto/waybill/v1/commands.proto");
        for r in ALL {
            assert!(
                proto.contains(&format!("//   {} ", r.code())),
                "{} is not listed in commands.proto",
                r.code()
            );
        }
    }
}
