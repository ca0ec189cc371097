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
use crate::envelope::{Appended, NewEvent};
use crate::error::LedgerError;
use crate::log::{seal, Position};
use crate::name::ProjectName;

/// Most appends committed in one batch.
const MAX_BATCH: usize = 512;

pub(crate) struct AppendRequest {
    pub project: ProjectName,
    pub expected: Position,
    pub event: NewEvent,
    pub reply: oneshot::Sender<Result<Appended, LedgerError>>,
}

/// What the writer knows beyond what is on disk: this batch's pending writes.
struct Pending {
    heads: HashMap<String, ChainHead>,
    dedup: HashMap<String, Position>,
    head: Position,
}

pub(crate) fn run(
    db: sled::Tree,
    mut rx: mpsc::Receiver<AppendRequest>,
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
            outcomes.push(decide(&db, &mut pending, &mut batch, req));
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
                    let _ = req.reply.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "embedded log batch failed; nothing acknowledged");
                for req in requests {
                    let _ = req
                        .reply
                        .send(Err(LedgerError::Unavailable(err.to_string())));
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
    let head = match pending.heads.get(project) {
        Some(head) => *head,
        None => match db.get(keys::project(project))? {
            Some(value) => keys::decode_head(&value)
                .ok_or_else(|| LedgerError::Storage("corrupt project head".into()))?,
            None => ChainHead::EMPTY,
        },
    };
    if head.position != req.expected {
        return Err(LedgerError::Conflict {
            actual: head.position,
        });
    }
    let sealed = seal(&req.project, &head, req.event.clone())?;
    let position = pending.head.next();
    let mut value = Vec::with_capacity(32 + sealed.bytes.len());
    value.extend_from_slice(&sealed.hash.0);
    value.extend_from_slice(&sealed.bytes);
    batch.insert(&keys::event(position)[..], value);
    batch.insert(keys::index(project, position), &[][..]);
    let new_head = ChainHead {
        position,
        hash: sealed.hash,
        seq: sealed.event.project_seq,
    };
    batch.insert(keys::project(project), &keys::encode_head(&new_head)[..]);
    batch.insert(keys::dedup(command_id), &keys::encode_pos(position)[..]);
    pending.heads.insert(project.to_string(), new_head);
    pending.dedup.insert(command_id.clone(), position);
    pending.head = position;
    Ok(sealed.into_appended(position))
}
