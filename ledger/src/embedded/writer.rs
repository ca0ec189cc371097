//! The single writer of the embedded store, with group commit.
//!
//! Appends are queued to one blocking thread. It takes every request waiting,
//! decides each in arrival order (dedup, then the expected position, then the
//! chain link), writes them in one atomic sled batch, fsyncs once, and only
//! then acknowledges them. So an acknowledged append is on disk, and a crash
//! leaves either the whole batch or none of it.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot, watch};

use super::keys;
use crate::chain::ChainHead;
use crate::envelope::{Appended, ForeignRecord, NewEvent, StoredEvent};
use crate::error::LedgerError;
use crate::log::{check_copy, seal, Position};
use crate::name::ProjectName;

/// Most appends committed in one batch.
const MAX_BATCH: usize = 512;

pub(crate) struct AppendRequest {
    pub project: ProjectName,
    pub expected: Position,
    pub event: NewEvent,
    pub reply: oneshot::Sender<Result<Appended, LedgerError>>,
}

/// Records copied from another log, written as they are (`append_copies`).
pub(crate) struct CopyRequest {
    pub records: Vec<StoredEvent>,
    pub reply: oneshot::Sender<Result<Position, LedgerError>>,
}

/// A message Waybill did not write, copied from another log
/// (`append_foreign_copy`).
pub(crate) struct ForeignCopyRequest {
    pub record: ForeignRecord,
    pub reply: oneshot::Sender<Result<Position, LedgerError>>,
}

pub(crate) enum Request {
    Append(Box<AppendRequest>),
    Copy(CopyRequest),
    Foreign(Box<ForeignCopyRequest>),
}

impl Request {
    fn fail(self, err: LedgerError) {
        match self {
            Request::Append(r) => drop(r.reply.send(Err(err))),
            Request::Copy(r) => drop(r.reply.send(Err(err))),
            Request::Foreign(r) => drop(r.reply.send(Err(err))),
        }
    }
}

/// What a request decided, sent once its batch is on disk.
enum Outcome {
    Append(Box<Result<Appended, LedgerError>>),
    Copy(Result<Position, LedgerError>),
}

/// What the writer knows beyond what is on disk: this batch's pending writes.
struct Pending {
    heads: HashMap<String, ChainHead>,
    dedup: HashMap<String, Position>,
    head: Position,
}

pub(crate) fn run(
    db: sled::Tree,
    mut rx: mpsc::Receiver<Request>,
    head_tx: watch::Sender<Position>,
) {
    let mut head = *head_tx.borrow();
    while let Some(first) = rx.blocking_recv() {
        let mut requests = vec![first];
        while requests.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => requests.push(r),
                Err(_) => break,
            }
        }
        let mut pending = Pending {
            heads: HashMap::new(),
            dedup: HashMap::new(),
            head,
        };
        let mut batch = sled::Batch::default();
        let mut outcomes = Vec::with_capacity(requests.len());
        for req in &requests {
            outcomes.push(match req {
                Request::Append(req) => {
                    Outcome::Append(Box::new(decide(&db, &mut pending, &mut batch, req)))
                }
                Request::Copy(req) => {
                    Outcome::Copy(copy(&db, &mut pending, &mut batch, &req.records))
                }
                Request::Foreign(req) => {
                    Outcome::Copy(copy_foreign(&mut pending, &mut batch, &req.record))
                }
            });
        }
        let wrote = pending.head != head;
        let committed = if wrote {
            batch.insert(keys::HEAD, &keys::encode_pos(pending.head)[..]);
            db.apply_batch(batch)
                .and_then(|()| db.flush().map(|_| ()))
                .map_err(LedgerError::from)
        } else {
            Ok(())
        };
        match committed {
            Ok(()) => {
                head = pending.head;
                if wrote {
                    head_tx.send_replace(head);
                }
                for (req, outcome) in requests.into_iter().zip(outcomes) {
                    match (req, outcome) {
                        (Request::Append(r), Outcome::Append(o)) => drop(r.reply.send(*o)),
                        (Request::Copy(r), Outcome::Copy(o)) => drop(r.reply.send(o)),
                        (Request::Foreign(r), Outcome::Copy(o)) => drop(r.reply.send(o)),
                        _ => unreachable!("outcomes follow their requests"),
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "embedded log batch failed; nothing acknowledged");
                for req in requests {
                    req.fail(LedgerError::Unavailable(err.to_string()));
                }
            }
        }
    }
    tracing::debug!("embedded log writer stopped");
}

fn decide(
    db: &sled::Tree,
    pending: &mut Pending,
    batch: &mut sled::Batch,
    req: &AppendRequest,
) -> Result<Appended, LedgerError> {
    let project = req.project.as_str();
    let command_id = &req.event.command_id;
    if let Some(original) = pending.dedup.get(command_id) {
        return Err(LedgerError::Duplicate {
            original: *original,
        });
    }
    if let Some(value) = db.get(keys::dedup(command_id))? {
        let original = keys::decode_pos(&value)
            .ok_or_else(|| LedgerError::Storage("corrupt dedup entry".into()))?;
        return Err(LedgerError::Duplicate { original });
    }
    let head = project_head(db, pending, project)?;
    if head.position != req.expected {
        return Err(LedgerError::Conflict {
            actual: head.position,
        });
    }
    let sealed = seal(&req.project, &head, req.event.clone())?;
    let position = pending.head.next();
    let new_head = ChainHead {
        position,
        hash: sealed.hash,
        seq: sealed.event.project_seq,
    };
    write(pending, batch, project, command_id, &sealed.bytes, new_head);
    Ok(sealed.into_appended(position))
}

/// The project's chain head, counting this batch's pending writes.
fn project_head(
    db: &sled::Tree,
    pending: &Pending,
    project: &str,
) -> Result<ChainHead, LedgerError> {
    match pending.heads.get(project) {
        Some(head) => Ok(*head),
        None => match db.get(keys::project(project))? {
            Some(value) => keys::decode_head(&value)
                .ok_or_else(|| LedgerError::Storage("corrupt project head".into())),
            None => Ok(ChainHead::EMPTY),
        },
    }
}

/// The keys of one record at `head.position`: the record, the project's
/// index entry and head, the command id.
fn write(
    pending: &mut Pending,
    batch: &mut sled::Batch,
    project: &str,
    command_id: &str,
    bytes: &[u8],
    head: ChainHead,
) {
    let position = head.position;
    let mut value = Vec::with_capacity(32 + bytes.len());
    value.extend_from_slice(&head.hash.0);
    value.extend_from_slice(bytes);
    batch.insert(&keys::event(position)[..], value);
    batch.insert(keys::index(project, position), &[][..]);
    batch.insert(keys::project(project), &keys::encode_head(&head)[..]);
    batch.insert(keys::dedup(command_id), &keys::encode_pos(position)[..]);
    pending.heads.insert(project.to_string(), head);
    pending.dedup.insert(command_id.to_string(), position);
    pending.head = position;
}

/// Copied records, each at the next position; stops at the first that
/// cannot be written (those before it are written with the batch).
fn copy(
    db: &sled::Tree,
    pending: &mut Pending,
    batch: &mut sled::Batch,
    records: &[StoredEvent],
) -> Result<Position, LedgerError> {
    for record in records {
        let project = record.event.project.as_str();
        let command_id = &record.event.command_id;
        let head = project_head(db, pending, project)?;
        let (_, new_head) = check_copy(record, pending.head.next(), &head)?;
        if pending.dedup.contains_key(command_id) || db.get(keys::dedup(command_id))?.is_some() {
            return Err(LedgerError::invalid(
                "copied record",
                format!(
                    "position {}: its command id {command_id:?} is already in this log",
                    record.position
                ),
            ));
        }
        write(pending, batch, project, command_id, &record.bytes, new_head);
    }
    Ok(pending.head)
}

/// A foreign message at the next position: in no project (no index entry,
/// no head, no command id), read back as foreign.
fn copy_foreign(
    pending: &mut Pending,
    batch: &mut sled::Batch,
    record: &ForeignRecord,
) -> Result<Position, LedgerError> {
    if record.position != pending.head.next() {
        return Err(LedgerError::Conflict {
            actual: pending.head,
        });
    }
    let value = keys::encode_foreign(&record.subject, &record.bytes);
    batch.insert(&keys::event(record.position)[..], value);
    pending.head = record.position;
    Ok(pending.head)
}
