//! The one place where command errors become gRPC statuses.
//!
//! Policy rejections are `FAILED_PRECONDITION` with an `ErrorInfo` detail
//! (reason = e.g. `FREIGHT_NOT_AVAILABLE`, domain `waybill.dev`, metadata =
//! the rejection's details) and the reason also in the `waybill-reason`
//! trailer for clients without rich-error support.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use waybill_ledger::domain::short_start_note;

use crate::handler::CommandError;
use crate::rejection::Rejection;

/// The `ErrorInfo` domain of Waybill's errors.
pub const ERROR_DOMAIN: &str = "waybill.dev";
/// Metadata key carrying the machine-readable reason.
pub const REASON_KEY: &str = "waybill-reason";

/// Maps a command error to its status.
pub fn status(err: &CommandError) -> Status {
    match err {
        CommandError::Rejected(r) => rejection_status(r),
        CommandError::Auth(a) => Status::from(a.clone()),
        CommandError::Aborted { .. } => {
            with_reason(Code::Aborted, err.to_string(), "CONFLICT", HashMap::new())
        }
        CommandError::Unavailable(m) => unavailable(m, HashMap::new()),
        CommandError::Internal(m) => Status::internal(m.clone()),
    }
}

/// [`status`] for a command that ran under idempotency key `key`: when the
/// log did not answer, the event may have been written all the same, and
/// the reply names the key (`idempotency_key`, the client's own or the one
/// the server made up) under which a retry is recorded at most once.
pub fn status_with_key(err: &CommandError, key: &str) -> Status {
    match err {
        CommandError::Unavailable(m) => unavailable(
            m,
            HashMap::from([("idempotency_key".to_string(), key.to_string())]),
        ),
        _ => status(err),
    }
}

fn unavailable(m: &str, metadata: HashMap<String, String>) -> Status {
    with_reason(
        Code::Unavailable,
        format!("event log unavailable: {m}"),
        "LOG_UNAVAILABLE",
        metadata,
    )
}

fn rejection_status(r: &Rejection) -> Status {
    match r {
        Rejection::Invalid { field, message } => {
            let mut s = Status::with_error_details(
                Code::InvalidArgument,
                r.to_string(),
                ErrorDetails::with_bad_request_violation(field.clone(), message.clone()),
            );
            insert_reason(&mut s, "INVALID_ARGUMENT");
            s
        }
        Rejection::NotFound { what, id } => with_reason(
            Code::NotFound,
            match *what {
                "freight" => format!("{r}{}", short_start_note(id)),
                _ => r.to_string(),
            },
            "NOT_FOUND",
            HashMap::from([
                ("kind".to_string(), what.to_string()),
                ("id".to_string(), id.clone()),
            ]),
        ),
        Rejection::Policy {
            reason,
            message,
            details,
        } => with_reason(
            Code::FailedPrecondition,
            format!("{}: {message}", reason.code()),
            reason.code(),
            details.clone().into_iter().collect(),
        ),
    }
}

fn with_reason(
    code: Code,
    message: String,
    reason: &str,
    metadata: HashMap<String, String>,
) -> Status {
    let mut s = Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
    );
    insert_reason(&mut s, reason);
    s
}

fn insert_reason(s: &mut Status, reason: &str) {
    if let Ok(v) = reason.parse() {
        s.metadata_mut().insert(REASON_KEY, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::Reason;

    #[test]
    fn each_kind_has_its_code_and_reason() {
        let policy = CommandError::Rejected(Rejection::policy(
            Reason::ApprovalsMissing,
            "1 of 2",
            [("approvals", "1".to_string())],
        ));
        let s = status(&policy);
        assert_eq!(s.code(), Code::FailedPrecondition);
        let info = s.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "APPROVALS_MISSING");
        assert_eq!(
            info.metadata.get("approvals").map(String::as_str),
            Some("1")
        );
        assert_eq!(
            s.metadata().get(REASON_KEY).and_then(|v| v.to_str().ok()),
            Some("APPROVALS_MISSING")
        );
        let invalid = CommandError::Rejected(Rejection::invalid("stage", "no stage \"qa\""));
        assert_eq!(status(&invalid).code(), Code::InvalidArgument);
        // A freight named by hex digits too few for the start of an id
        // says so; a start long enough, an alias or a promotion do not.
        let missing = |what: &'static str, id: &str| {
            status(&CommandError::Rejected(Rejection::NotFound {
                what,
                id: id.to_string(),
            }))
        };
        let short = missing("freight", "19a3");
        assert_eq!(short.code(), Code::NotFound);
        assert_eq!(
            short.message(),
            "freight \"19a3\" not found (the start of an id needs 6 hex digits or more)"
        );
        for (what, id) in [
            ("freight", "19a310"),
            ("freight", "v1.4"),
            ("promotion", "19a3"),
        ] {
            assert_eq!(
                missing(what, id).message(),
                format!("{what} {id:?} not found")
            );
        }
        assert_eq!(
            status(&CommandError::Aborted { attempts: 16 }).code(),
            Code::Aborted
        );
        assert_eq!(
            status(&CommandError::Unavailable("down".into())).code(),
            Code::Unavailable
        );
    }
}
