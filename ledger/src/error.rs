//! The ledger's error type: variants are named by what the caller can do.

use crate::log::Position;

/// Everything that can go wrong talking to the log.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The project moved on since the decision was made: re-read and re-decide.
    #[error("conflict: the project's last position is {actual}, not the expected one")]
    Conflict {
        /// The project's last position when the append was refused.
        actual: Position,
    },
    /// This command id was already appended; nothing new was written.
    #[error("duplicate command: already appended at position {original}")]
    Duplicate {
        /// Where the original event is.
        original: Position,
    },
    /// The log cannot be reached. Nothing was written, except when an append's
    /// acknowledgement was lost: retrying with the same command id is always safe.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The input is malformed; nothing was written.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field or argument is wrong.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The log's configuration is unsafe or incompatible; the message says what to do.
    #[error("{0}")]
    Misconfigured(String),
    /// A stored record cannot be decoded.
    #[error("corrupt record at position {position}: {reason}")]
    Corrupt {
        /// Position of the record.
        position: Position,
        /// What is wrong with it.
        reason: String,
    },
    /// A message Waybill did not write; readers skip it (see
    /// [`crate::envelope::ForeignRecord`]).
    #[error(
        "position {} holds a message Waybill did not write (subject {}, {} bytes): {}",
        .0.position, .0.subject, .0.bytes.len(), .0.reason
    )]
    Foreign(Box<crate::envelope::ForeignRecord>),
    /// The embedded store failed.
    #[error("embedded store error: {0}")]
    Storage(String),
}

impl LedgerError {
    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        LedgerError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl From<sled::Error> for LedgerError {
    fn from(err: sled::Error) -> Self {
        LedgerError::Storage(err.to_string())
    }
}
