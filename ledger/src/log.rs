//! The `EventLog` trait: the one interface both backends implement.

use std::fmt;

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chain::{ChainHash, ChainHead};
use crate::envelope::{Appended, Event, NewEvent, StoredEvent};
use crate::error::LedgerError;
use crate::event::{encode_record, MAX_RECORD_LEN};
use crate::name::ProjectName;

/// A global position in the log: the JetStream stream sequence (1-based).
/// Position 0 means "before the first event".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    /// Before the first event.
    pub const ZERO: Position = Position(0);

    /// The position after this one.
    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A stream of events read from the log, in position order.
pub type EventStream = BoxStream<'static, Result<StoredEvent, LedgerError>>;

/// An append-only, hash-chained event log with optimistic concurrency per project.
#[async_trait]
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Appends `event` to `project` if the project's last position is still
    /// `expected` (`Position::ZERO` = the project has no events).
    ///
    /// Errors: `Conflict{actual}` if the project moved on (nothing written);
    /// `Duplicate{original}` if the command id was already appended (nothing
    /// written); `Invalid` for malformed input; `Unavailable` if the log cannot
    /// be reached.
    async fn append(
        &self,
        project: &ProjectName,
        expected: Position,
        event: NewEvent,
    ) -> Result<Appended, LedgerError>;

    /// The project's chain head: last position, its hash and the event count.
    async fn project_head(&self, project: &ProjectName) -> Result<ChainHead, LedgerError>;

    /// The position of the last event in the whole log.
    async fn head(&self) -> Result<Position, LedgerError>;

    /// The project's events from `from` (inclusive) up to its last event at the time of the call.
    async fn read_project(
        &self,
        project: &ProjectName,
        from: Position,
    ) -> Result<EventStream, LedgerError>;

    /// Every event from `from` (inclusive) up to the head at the time of the call.
    async fn read_all(&self, from: Position) -> Result<EventStream, LedgerError>;

    /// Every event from `from` (inclusive), then new events as they are
    /// appended, forever: in order, without gaps or duplicates, across reconnects.
    async fn tail(&self, from: Position) -> Result<EventStream, LedgerError>;

    /// Writes records read from another log (`waybill copy`), each as it
    /// was there: the same bytes at the same position, so every chain hash,
    /// Merkle root and signed checkpoint stays valid. The first must land just
    /// after this log's head (`Conflict{actual: head}` otherwise) and each
    /// must follow its project's chain here (`Invalid` otherwise, as for a
    /// record whose stored hash does not match its bytes). Returns the new
    /// head. On an error, the records before the refused one may have been
    /// written: this log then holds a prefix of the source, from which a
    /// copy resumes.
    async fn append_copies(&self, records: &[StoredEvent]) -> Result<Position, LedgerError>;

    /// Writes a message another log holds that Waybill did not write (see
    /// [`crate::ForeignRecord`]) at its position, as `append_copies` writes
    /// records: at the next position of this log, or not at all
    /// (`Conflict`). Reads of this log yield it as `Foreign`, so that a copy
    /// keeps every position, and the Merkle tree its leaves.
    async fn append_foreign_copy(
        &self,
        record: &crate::ForeignRecord,
    ) -> Result<Position, LedgerError>;

    /// The project's last position.
    async fn last_position(&self, project: &ProjectName) -> Result<Position, LedgerError> {
        Ok(self.project_head(project).await?.position)
    }

    /// Why the log, as last seen, is no longer safe to append to (a
    /// JetStream stream whose configuration was changed since the start so
    /// that the server would discard events), if it is not: appends are
    /// refused (`Misconfigured`) meanwhile. Seen by `head`, which the
    /// server's health check calls every few seconds.
    fn unsafe_config(&self) -> Option<String> {
        None
    }

    /// The project's first event at or after `from`, if any, without
    /// starting a read of the rest (on JetStream, a direct get rather than
    /// a consumer).
    async fn next_event(
        &self,
        project: &ProjectName,
        from: Position,
    ) -> Result<Option<StoredEvent>, LedgerError> {
        use futures::StreamExt;
        self.read_project(project, from)
            .await?
            .next()
            .await
            .transpose()
    }
}

/// Checks that `record`, copied from another log, can follow `head` (its
/// project's chain head here) at position `at`; returns the project's new
/// head and its name.
pub(crate) fn check_copy(
    record: &StoredEvent,
    at: Position,
    head: &ChainHead,
) -> Result<(ProjectName, ChainHead), LedgerError> {
    let pos = record.position;
    let invalid =
        |reason: String| LedgerError::invalid("copied record", format!("position {pos}: {reason}"));
    if pos.0 == 0 {
        return Err(invalid("positions start at 1".into()));
    }
    if pos != at {
        return Err(LedgerError::Conflict {
            actual: Position(at.0.saturating_sub(1)),
        });
    }
    let project = ProjectName::log_project(record.event.project.clone())
        .map_err(|e| invalid(format!("its project name: {e}")))?;
    if record.stored_hash.is_some_and(|h| h != record.hash) {
        return Err(invalid(
            "the hash stored beside it does not match its bytes (run `waybill verify` on the source)"
                .into(),
        ));
    }
    if record.event.prev_hash != head.hash || record.event.project_seq != head.seq + 1 {
        return Err(invalid(format!(
            "event {} of project {} does not follow the {} event(s) of its chain here \
             (run `waybill verify` on the source)",
            record.event.project_seq, record.event.project, head.seq
        )));
    }
    if record.hash != head.hash.next(&record.bytes) {
        return Err(invalid("its hash is not the hash of its bytes".into()));
    }
    Ok((
        project,
        ChainHead {
            position: pos,
            hash: record.hash,
            seq: record.event.project_seq,
        },
    ))
}

/// A record ready to be stored: the event, its canonical bytes and chain hash.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub event: Event,
    pub bytes: Vec<u8>,
    pub hash: ChainHash,
}

/// Builds the record that follows `head` in `project`'s chain, checking the
/// envelope fields (callers have validated the payload).
pub(crate) fn seal(
    project: &ProjectName,
    head: &ChainHead,
    new: NewEvent,
) -> Result<Sealed, LedgerError> {
    if new.command_id.is_empty() || new.command_id.len() > 128 {
        return Err(LedgerError::invalid(
            "command_id",
            "must be 1 to 128 characters",
        ));
    }
    for (field, value) in [
        ("command_id", &new.command_id),
        ("correlation_id", &new.correlation_id),
        ("causation_id", &new.causation_id),
    ] {
        if value.len() > 128 || value.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(LedgerError::invalid(
                field,
                "must be at most 128 printable ASCII characters without spaces",
            ));
        }
    }
    for (field, value) in [
        ("subject", &new.subject),
        ("source", &new.source),
        ("actor.principal", &new.actor.principal),
        ("actor.auth_method", &new.actor.auth_method),
    ] {
        if value.len() > 256 || value.chars().any(char::is_control) {
            return Err(LedgerError::invalid(
                field,
                "must be at most 256 characters without control characters",
            ));
        }
    }
    let checkpoint = matches!(new.payload, crate::event::EventPayload::CheckpointSigned(_));
    if checkpoint != project.is_audit() {
        return Err(LedgerError::invalid(
            "project",
            format!(
                "checkpoints, and only checkpoints, go to the project {:?}",
                crate::name::AUDIT_PROJECT
            ),
        ));
    }
    let event_type = new.payload.event_type();
    let event = Event {
        id: Uuid::now_v7(),
        project: project.as_str().to_string(),
        project_seq: head.seq + 1,
        prev_hash: head.hash,
        time: new.time.unwrap_or_else(Utc::now),
        source: new.source,
        subject: new.subject,
        actor: new.actor,
        command_id: new.command_id,
        correlation_id: new.correlation_id,
        causation_id: new.causation_id,
        schema_version: event_type.schema_version(),
        payload: new.payload,
    };
    let bytes = encode_record(&event);
    if bytes.len() > MAX_RECORD_LEN {
        return Err(LedgerError::invalid(
            "event",
            format!(
                "encodes to {} bytes, more than the limit of {MAX_RECORD_LEN}",
                bytes.len()
            ),
        ));
    }
    let hash = head.hash.next(&bytes);
    Ok(Sealed { event, bytes, hash })
}

impl Sealed {
    pub(crate) fn into_appended(self, position: Position) -> Appended {
        Appended {
            position,
            id: self.event.id,
            hash: self.hash,
            project_seq: self.event.project_seq,
            event: self.event,
        }
    }
}

/// Decodes a stored record into a [`StoredEvent`], computing its chain hash.
pub(crate) fn stored_event(
    position: Position,
    bytes: bytes::Bytes,
    stored_hash: Option<ChainHash>,
) -> Result<StoredEvent, LedgerError> {
    let event = crate::event::decode_record(&bytes).map_err(|e| LedgerError::Corrupt {
        position,
        reason: e.to_string(),
    })?;
    let hash = event.prev_hash.next(&bytes);
    Ok(StoredEvent {
        position,
        hash,
        stored_hash,
        bytes,
        event,
    })
}
