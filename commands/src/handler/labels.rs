//! The labels a command's outcome is counted under in `waybill_commands_total`.

use super::{CommandError, Outcome};
use crate::auth::AuthError;
use crate::rejection::Rejection;

/// `(outcome, reason)`: outcome is `accepted`, `already_done`, `rejected`
/// (reason: the policy reason, e.g. `FREIGHT_NOT_AVAILABLE`), `invalid`,
/// `not_found`, `unauthenticated`, `denied`, `aborted`, `unavailable` or
/// `internal`; reason is empty except for policy rejections.
pub(super) fn labels(result: &Result<Outcome, CommandError>) -> (&'static str, &'static str) {
    match result {
        Ok(o) if o.already_done => ("already_done", ""),
        Ok(_) => ("accepted", ""),
        Err(CommandError::Rejected(r)) => match r {
            Rejection::Policy { reason, .. } => ("rejected", reason.code()),
            Rejection::Invalid { .. } => ("invalid", ""),
            Rejection::NotFound { .. } => ("not_found", ""),
        },
        Err(CommandError::Auth(AuthError::Unauthenticated(_))) => ("unauthenticated", ""),
        Err(CommandError::Auth(AuthError::PermissionDenied { .. })) => ("denied", ""),
        Err(CommandError::Auth(_)) => ("internal", ""),
        Err(CommandError::Aborted { .. }) => ("aborted", ""),
        Err(CommandError::Unavailable(_)) => ("unavailable", ""),
        Err(CommandError::Internal(_)) => ("internal", ""),
    }
}
