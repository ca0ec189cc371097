//! Reads from the embedded store in chunks, off the async runtime.

use futures::stream::{self, StreamExt};
use tokio::sync::watch;

use super::keys;
use crate::chain::ChainHash;
use crate::envelope::{ForeignRecord, StoredEvent};
use crate::error::LedgerError;
use crate::log::{stored_event, EventStream, Position};

/// Events read per blocking call.
const CHUNK: usize = 1024;

type Chunk = Vec<Result<StoredEvent, LedgerError>>;

fn decode(pos: Position, value: &[u8]) -> Result<StoredEvent, LedgerError> {
    if value.len() < 32 {
        return Err(LedgerError::Corrupt {
            position: pos,
            reason: "stored value shorter than its hash".into(),
        });
    }
    if let Some((subject, bytes)) = keys::decode_foreign(value) {
        return Err(LedgerError::Foreign(Box::new(ForeignRecord {
            position: pos,
            subject,
            bytes: bytes::Bytes::copy_from_slice(bytes),
            reason: "copied from a log where Waybill did not write it".into(),
        })));
    }
    let stored_hash = ChainHash::from_slice(&value[..32]);
    stored_event(
        pos,
        bytes::Bytes::copy_from_slice(&value[32..]),
        stored_hash,
    )
}

/// Events with `from <= position <= end`, at most `CHUNK`.
fn range_chunk(tree: &sled::Tree, from: Position, end: Position) -> (Chunk, Position) {
    let mut out = Vec::new();
    let mut next = from;
    for item in tree.range(keys::event(from)..=keys::event(end)).take(CHUNK) {
        match item {
            Ok((k, v)) => {
                let Some(pos) = keys::event_pos(&k) else {
                    continue;
                };
                next = pos.next();
                out.push(decode(pos, &v));
            }
            Err(e) => {
                out.push(Err(e.into()));
                return (out, end.next());
            }
        }
    }
    if out.len() < CHUNK {
        next = end.next();
    }
    (out, next)
}

/// The project's events with `from <= position <= end`, at most `CHUNK`:
/// its positions from the index, then the records of each run of
/// consecutive positions by one range scan (a project that has the log to
/// itself is read like the whole log, not by a lookup per record).
fn project_chunk(
    tree: &sled::Tree,
    project: &str,
    from: Position,
    end: Position,
) -> (Chunk, Position) {
    let range = keys::index(project, from)..=keys::index(project, end);
    let mut positions = Vec::with_capacity(CHUNK);
    let mut failed = None;
    for item in tree.range(range).take(CHUNK) {
        match item.map_err(LedgerError::from).and_then(|(k, _)| {
            keys::index_pos(&k).ok_or_else(|| LedgerError::Storage("corrupt index key".into()))
        }) {
            Ok(pos) => positions.push(pos),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let next = match positions.last() {
        Some(last) if failed.is_none() && positions.len() == CHUNK => last.next(),
        _ => end.next(),
    };
    let mut out = Vec::with_capacity(positions.len() + 1);
    for run in positions.chunk_by(|a, b| b.0 == a.0 + 1) {
        let (first, last) = (run[0], run[run.len() - 1]);
        let mut records = tree.range(keys::event(first)..=keys::event(last));
        for &pos in run {
            let result = match records.next() {
                Some(Ok((k, v))) if keys::event_pos(&k) == Some(pos) => decode(pos, &v),
                Some(Err(e)) => Err(e.into()),
                _ => Err(LedgerError::Corrupt {
                    position: pos,
                    reason: "indexed event is missing".into(),
                }),
            };
            let stop = result.is_err();
            out.push(result);
            if stop {
                return (out, end.next());
            }
        }
    }
    out.extend(failed.map(Err));
    (out, next)
}

/// The project's first event at or after `from`: one index lookup and one
/// record, where a read of the project would decode a whole chunk.
pub(super) fn next_in_project(
    tree: &sled::Tree,
    project: &str,
    from: Position,
) -> Result<Option<StoredEvent>, LedgerError> {
    let range = keys::index(project, from)..=keys::index(project, Position(u64::MAX));
    let Some(item) = tree.range(range).next() else {
        return Ok(None);
    };
    let (k, _) = item?;
    let pos =
        keys::index_pos(&k).ok_or_else(|| LedgerError::Storage("corrupt index key".into()))?;
    match tree.get(keys::event(pos))? {
        Some(v) => decode(pos, &v).map(Some),
        None => Err(LedgerError::Corrupt {
            position: pos,
            reason: "indexed event is missing".into(),
        }),
    }
}

/// What a stream yields when a chunk's read panicked or was cancelled: an
/// error, so that its reader does not take an early end for the whole log.
fn read_failed(e: tokio::task::JoinError) -> Chunk {
    vec![Err(LedgerError::Unavailable(format!(
        "reading the embedded log failed: {e}"
    )))]
}

/// The chunks `read(next)` returns from `from` until past `end`, each read
/// on the blocking pool; the next chunk is read while the caller works
/// through the current one (a reader that formats or sends what it reads
/// does not wait for sled in between).
fn read_ahead<F>(from: Position, end: Position, read: F) -> EventStream
where
    F: Fn(Position) -> (Chunk, Position) + Clone + Send + 'static,
{
    let spawn = move |next: Position| {
        let read = read.clone();
        tokio::task::spawn_blocking(move || read(next))
    };
    let first = (from <= end).then(|| spawn(from));
    stream::unfold(first, move |pending| {
        let spawn = spawn.clone();
        async move {
            match pending?.await {
                Ok((chunk, next)) => {
                    let ahead = (next <= end).then(|| spawn(next));
                    Some((stream::iter(chunk), ahead))
                }
                Err(e) => Some((stream::iter(read_failed(e)), None)),
            }
        }
    })
    .flatten()
    .boxed()
}

/// Every event from `from` to `end` inclusive.
pub(crate) fn range_stream(tree: sled::Tree, from: Position, end: Position) -> EventStream {
    read_ahead(from.max(Position(1)), end, move |next| {
        range_chunk(&tree, next, end)
    })
}

/// The project's events from `from` to `end` inclusive.
pub(crate) fn project_stream(
    tree: sled::Tree,
    project: String,
    from: Position,
    end: Position,
) -> EventStream {
    read_ahead(from.max(Position(1)), end, move |next| {
        project_chunk(&tree, &project, next, end)
    })
}

/// Every event from `from`, then each new one as it is committed.
pub(crate) fn tail_stream(
    tree: sled::Tree,
    from: Position,
    head_rx: watch::Receiver<Position>,
) -> EventStream {
    let from = from.max(Position(1));
    stream::unfold(Some((from, head_rx)), move |state| {
        let tree = tree.clone();
        async move {
            let (next, mut head_rx) = state?;
            loop {
                let head = *head_rx.borrow_and_update();
                if next <= head {
                    let read = move || range_chunk(&tree, next, head);
                    return Some(match tokio::task::spawn_blocking(read).await {
                        Ok((chunk, next)) => (stream::iter(chunk), Some((next, head_rx))),
                        Err(e) => (stream::iter(read_failed(e)), None),
                    });
                }
                // The sender lives as long as the log; if it is gone, the log closed.
                head_rx.changed().await.ok()?;
            }
        }
    })
    .flatten()
    .boxed()
}
