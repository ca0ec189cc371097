//! Errors of the projections.

use waybill_ledger::LedgerError;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The store could not be read or written.
    #[error("projection store error: {0}")]
    Storage(String),
    /// The log could not be read.
    #[error(transparent)]
    Log(#[from] LedgerError),
    /// A stored value does not decode.
    #[error("corrupt projection data: {0}")]
    Corrupt(String),
    /// The store was built from another log than the one it is opened with
    /// (see [`crate::origin`]); the message says what to do.
    #[error("{0}")]
    OtherLog(String),
}

impl From<sled::Error> for ProjectionError {
    fn from(e: sled::Error) -> Self {
        ProjectionError::Storage(e.to_string())
    }
}

impl From<serde_json::Error> for ProjectionError {
    fn from(e: serde_json::Error) -> Self {
        ProjectionError::Corrupt(e.to_string())
    }
}

impl From<prost::DecodeError> for ProjectionError {
    fn from(e: prost::DecodeError) -> Self {
        ProjectionError::Corrupt(e.to_string())
    }
}
