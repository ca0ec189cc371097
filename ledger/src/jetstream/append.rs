//! Appending with per-project optimistic concurrency and idempotency.

use std::error::Error as _;
use std::time::Duration;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;

use crate::chain::ChainHead;

use super::{read, JetStreamLog, HASH_HEADER};
use crate::envelope::{Appended, NewEvent};
use crate::error::LedgerError;
use crate::log::{seal, Position};
use crate::name::ProjectName;

/// A concurrent in-flight write on a replicated stream (retried like a conflict).
const ERR_IN_FLIGHT: u64 = 10164;
/// JetStream error code of a publish refused for want of storage
/// ("insufficient resources").
const ERR_NO_ROOM: u64 = 10023;
/// Attempts at a publish that keeps meeting 10164.
const IN_FLIGHT_RETRIES: u32 = 8;
/// Retries of a publish that no stream answered (nothing was stored): a
/// replicated stream just created, or electing a new leader, has no
/// responder for a moment. Backing off 40 ms, 80 ms, ... up to 320 ms, the
/// retries span about 10 s: a stream leader killed on a 3-node cluster was
/// replaced after 6.2 and 6.3 s (nats-server 2.15.1), which the 2.5 s
/// these retries spanned before did not ride out.
const NO_RESPONDER_RETRIES: u32 = 33;

pub(super) async fn append(
    log: &JetStreamLog,
    project: &ProjectName,
    expected: Position,
    event: NewEvent,
) -> Result<Appended, LedgerError> {
    event.payload.validate()?;
    let name = project.as_str();
    // The chain link needs the head at `expected`. If the project has moved
    // past it, the append can only be a conflict, or a retry of a command that
    // was already appended after `expected` (the server checks the expected
    // sequence before its dedup window, so Waybill looks for the command id).
    let head = match log.cached_head(name) {
        Some(head) if head.position == expected => head,
        _ => {
            let head = read::fetch_head(log, name).await?;
            log.cache_head(name, head);
            if head.position != expected {
                return Err(conflict_or_duplicate(
                    log,
                    name,
                    expected,
                    head.position,
                    &event.command_id,
                )
                .await);
            }
            head
        }
    };
    let sealed = seal(project, &head, event)?;
    let e = &sealed.event;
    let subject = subject_of(log, e);
    let payload = bytes::Bytes::copy_from_slice(&sealed.bytes);
    let filter = log.project_filter(name);
    let envelope = Envelope::of(e, &sealed.hash);
    // Built per attempt (normally once) rather than cloned.
    let message = || {
        envelope.headers(
            e,
            PublishMessage::build()
                .payload(payload.clone())
                .expected_last_subject_sequence(expected.0)
                .header(
                    "Nats-Expected-Last-Subject-Sequence-Subject",
                    filter.as_str(),
                ),
        )
    };

    let mut attempt = 0;
    let mut unanswered = 0;
    loop {
        attempt += 1;
        let result = match log.inner.js.send_publish(subject.clone(), message()).await {
            Ok(ack) => ack.await,
            Err(e) => Err(e),
        };
        match result {
            Ok(ack) if ack.duplicate => {
                return Err(LedgerError::Duplicate {
                    original: Position(ack.sequence),
                })
            }
            Ok(ack) => {
                let position = Position(ack.sequence);
                log.cache_head(
                    name,
                    ChainHead {
                        position,
                        hash: sealed.hash,
                        seq: sealed.event.project_seq,
                    },
                );
                return Ok(sealed.into_appended(position));
            }
            Err(err) => match classify(&err) {
                Failure::Conflict(actual) => {
                    log.forget_head(name);
                    let actual = match actual {
                        Some(a) => Position(a),
                        None => read::fetch_head(log, name).await?.position,
                    };
                    let command_id = &sealed.event.command_id;
                    return Err(
                        conflict_or_duplicate(log, name, expected, actual, command_id).await,
                    );
                }
                Failure::InFlight if attempt < IN_FLIGHT_RETRIES => {
                    tracing::debug!(
                        project = name,
                        attempt,
                        "concurrent in-flight write; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(1 << attempt.min(6))).await;
                }
                Failure::InFlight => {
                    log.forget_head(name);
                    let actual = read::fetch_head(log, name).await?.position;
                    return Err(LedgerError::Conflict { actual });
                }
                Failure::NoResponders if unanswered < NO_RESPONDER_RETRIES => {
                    unanswered += 1;
                    tracing::debug!(
                        project = name,
                        retry = unanswered,
                        "no stream answered the append; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(20 << unanswered.min(4))).await;
                }
                Failure::TooLarge => {
                    return Err(LedgerError::invalid("event", err.to_string()));
                }
                Failure::NoResponders => {
                    log.forget_head(name);
                    return Err(LedgerError::Unavailable(format!(
                        "no stream took the append to {subject}: {err}{}; nothing was written",
                        source_text(&err)
                    )));
                }
                Failure::Refused(why) => {
                    log.forget_head(name);
                    return Err(LedgerError::Unavailable(format!(
                        "the NATS server refused the append to {subject}: {why}; nothing was \
                         written"
                    )));
                }
                // The message may have been stored and its acknowledgement
                // lost: only a retry under the same id (Nats-Msg-Id, and the
                // command ids the project state keeps) is safe.
                Failure::Unavailable => {
                    log.forget_head(name);
                    return Err(LedgerError::Unavailable(format!(
                        "append to {subject} not acknowledged: {err}{}; it may have been \
                         written: retry with the same idempotency key, and it is recorded once",
                        source_text(&err)
                    )));
                }
            },
        }
    }
}

/// `<prefix>.<project>.<event type>`.
fn subject_of(log: &JetStreamLog, e: &crate::envelope::Event) -> String {
    format!(
        "{}.{}.{}",
        log.inner.opts.subject_prefix,
        e.project,
        e.payload.event_type().subject_token()
    )
}

/// The headers every Waybill message carries: the command id (dedup), the
/// CloudEvents attributes and the chain hash (docs/ledger-format.md).
struct Envelope {
    id: String,
    time: String,
    hash: String,
    ce_type: &'static str,
}

impl Envelope {
    fn of(e: &crate::envelope::Event, hash: &crate::chain::ChainHash) -> Envelope {
        Envelope {
            id: e.id.to_string(),
            time: e.time.to_rfc3339(),
            hash: hash.to_hex(),
            ce_type: e.payload.event_type().ce_type(),
        }
    }

    fn headers(&self, e: &crate::envelope::Event, message: PublishMessage) -> PublishMessage {
        message
            .message_id(&e.command_id)
            .header("ce-specversion", "1.0")
            .header("ce-id", self.id.as_str())
            .header("ce-source", e.source.as_str())
            .header("ce-type", self.ce_type)
            .header("ce-time", self.time.as_str())
            .header("ce-subject", e.subject.as_str())
            .header(HASH_HEADER, self.hash.as_str())
    }
}

/// Records copied from another log, each published with the headers it
/// would have had and `Nats-Expected-Last-Sequence` = its position - 1, so
/// that it lands exactly at its position or not at all. Published as one
/// pipeline, then acknowledged in order. A batch that no stream answered at
/// all (a replicated stream just created, or electing a leader: nothing was
/// stored) is published again, as an append is.
pub(super) async fn append_copies(
    log: &JetStreamLog,
    records: &[crate::StoredEvent],
) -> Result<Position, LedgerError> {
    let mut unanswered = 0;
    loop {
        match publish_copies(log, records).await {
            Err(Unanswered(err)) if unanswered < NO_RESPONDER_RETRIES => {
                unanswered += 1;
                tracing::debug!(retry = unanswered, error = %err, "no stream answered the copy; retrying");
                tokio::time::sleep(Duration::from_millis(20 << unanswered.min(4))).await;
            }
            Err(Unanswered(err)) => return Err(err),
            Err(Failed(err)) => return Err(err),
            Ok(last) => return Ok(last),
        }
    }
}

/// A message Waybill did not write, copied from another log: published as
/// it was (its bytes, without headers, so that it reads back as foreign) to
/// its subject under this stream's prefix, with `Nats-Expected-Last-Sequence`
/// = its position - 1, so that it lands exactly at its position or not at all.
pub(super) async fn append_foreign_copy(
    log: &JetStreamLog,
    record: &crate::ForeignRecord,
) -> Result<Position, LedgerError> {
    let prefix = &log.inner.opts.subject_prefix;
    let subject = match record.subject.split_once('.') {
        Some((_, rest)) => format!("{prefix}.{rest}"),
        None => format!("{prefix}.{}", record.subject),
    };
    let message = PublishMessage::build().payload(record.bytes.clone());
    let message = match record.position.0.checked_sub(1) {
        None => {
            return Err(LedgerError::invalid(
                "copied message",
                "positions start at 1",
            ))
        }
        Some(0) => message.expected_last_subject_sequence(0).header(
            "Nats-Expected-Last-Subject-Sequence-Subject",
            format!("{prefix}.>").as_str(),
        ),
        Some(previous) => message.expected_last_sequence(previous),
    };
    let copying = |err: &dyn std::fmt::Display| {
        LedgerError::Unavailable(format!("copying position {}: {err}", record.position))
    };
    let ack = log
        .inner
        .js
        .send_publish(subject, message)
        .await
        .map_err(|e| copying(&e))?;
    match ack.await {
        Ok(ack) if ack.sequence == record.position.0 => Ok(record.position),
        Ok(ack) => Err(LedgerError::Storage(format!(
            "the copy of position {} landed at {}",
            record.position, ack.sequence
        ))),
        Err(err) => match classify(&err) {
            Failure::Conflict(_) => Err(LedgerError::Conflict {
                actual: read::stream_last_sequence(log).await?,
            }),
            _ => Err(copying(&err)),
        },
    }
}

/// Why a batch of copies was not all stored.
enum CopyFailure {
    /// No stream answered its first record: nothing was stored.
    Unanswered(LedgerError),
    Failed(LedgerError),
}
use CopyFailure::{Failed, Unanswered};

impl From<LedgerError> for CopyFailure {
    fn from(err: LedgerError) -> Self {
        Failed(err)
    }
}

async fn publish_copies(
    log: &JetStreamLog,
    records: &[crate::StoredEvent],
) -> Result<Position, CopyFailure> {
    let Some(first) = records.first() else {
        return Ok(read::stream_last_sequence(log).await?);
    };
    let mut heads: std::collections::HashMap<String, ChainHead> = Default::default();
    let mut acks = Vec::with_capacity(records.len());
    let mut at = first.position;
    for record in records {
        let e = &record.event;
        // The head this call or an earlier one left; else the server's. One
        // known from before that does not fit is asked for again (it can
        // only be stale; the server checks the expected sequence anyway).
        let known = heads
            .get(&e.project)
            .copied()
            .or_else(|| log.cached_head(&e.project));
        let checked = match known {
            Some(head) => crate::log::check_copy(record, at, &head),
            None => Err(LedgerError::Unavailable("head not known".into())),
        };
        let (project, new_head) = match checked {
            Ok(checked) => checked,
            Err(_) if !heads.contains_key(&e.project) => {
                let head = read::fetch_head(log, &e.project).await?;
                crate::log::check_copy(record, at, &head)?
            }
            Err(err) => return Err(Failed(err)),
        };
        heads.insert(project.as_str().to_string(), new_head);
        let message = PublishMessage::build().payload(record.bytes.clone());
        // The server ignores an expected last sequence of 0; "nothing on the
        // stream's subjects yet" is said with the subject-filtered header.
        let message = match record.position.0 - 1 {
            0 => message.expected_last_subject_sequence(0).header(
                "Nats-Expected-Last-Subject-Sequence-Subject",
                format!("{}.>", log.inner.opts.subject_prefix).as_str(),
            ),
            previous => message.expected_last_sequence(previous),
        };
        let message = Envelope::of(e, &record.hash).headers(e, message);
        let ack = log
            .inner
            .js
            .send_publish(subject_of(log, e), message)
            .await
            .map_err(|err| {
                LedgerError::Unavailable(format!("copying position {}: {err}", record.position))
            })?;
        acks.push((record.position, ack));
        at = record.position.next();
    }
    let mut last = Position::ZERO;
    for (position, ack) in acks {
        match ack.await {
            Ok(ack) if ack.duplicate => {
                return Err(Failed(LedgerError::invalid(
                    "copied record",
                    format!("position {position}: its command id is already in this log"),
                )))
            }
            Ok(ack) if ack.sequence != position.0 => {
                return Err(Failed(LedgerError::Storage(format!(
                    "the copy of position {position} landed at {}",
                    ack.sequence
                ))))
            }
            Ok(_) => last = position,
            Err(err) => {
                for project in heads.keys() {
                    log.forget_head(project);
                }
                let unavailable = LedgerError::Unavailable(format!(
                    "copying position {position}: {err}{}",
                    source_text(&err)
                ));
                return Err(match classify(&err) {
                    Failure::Conflict(_) => Failed(LedgerError::Conflict {
                        actual: read::stream_last_sequence(log).await?,
                    }),
                    Failure::NoResponders if last == Position::ZERO => Unanswered(unavailable),
                    _ => Failed(unavailable),
                });
            }
        }
    }
    for (project, head) in heads {
        log.cache_head(&project, head);
    }
    Ok(last)
}

/// Most events examined for a retried command id before calling it a conflict.
/// Older retries are answered by the project state's own idempotency record.
const MAX_DEDUP_SCAN: usize = 1_000;

/// `Duplicate` if `command_id` was appended to the project after `expected`,
/// else `Conflict{actual}`.
async fn conflict_or_duplicate(
    log: &JetStreamLog,
    project: &str,
    expected: Position,
    actual: Position,
    command_id: &str,
) -> LedgerError {
    let conflict = LedgerError::Conflict { actual };
    let duplicate = |ev: &crate::StoredEvent| {
        (ev.event.command_id == command_id).then_some(LedgerError::Duplicate {
            original: ev.position,
        })
    };
    let filter = log.project_filter(project);
    let mut next = expected.next();
    // The few events a conflict usually misses, one leader read each (kept:
    // the command's catch-up reads the same ones next)...
    for _ in 0..DEDUP_ONE_BY_ONE {
        if next > actual {
            return conflict;
        }
        match read::next_event(log, &filter, next).await {
            Ok(Some(ev)) => match duplicate(&ev) {
                Some(found) => return found,
                None => next = ev.position.next(),
            },
            Ok(None) => return conflict,
            // No event: nobody's command.
            Err(LedgerError::Foreign(f)) => next = f.position.next(),
            Err(e) => return e,
        }
    }
    if next > actual {
        return conflict;
    }
    // ...and more as one streamed read, not a round trip per event.
    let mut events = match read::bounded(log, filter, next, actual).await {
        Ok(events) => events,
        Err(e) => return e,
    };
    let mut examined = DEDUP_ONE_BY_ONE;
    while let Some(ev) = futures::StreamExt::next(&mut events).await {
        match ev {
            Ok(ev) => {
                if let Some(found) = duplicate(&ev) {
                    return found;
                }
            }
            Err(LedgerError::Foreign(_)) => {}
            Err(e) => return e,
        }
        examined += 1;
        if examined >= MAX_DEDUP_SCAN {
            break;
        }
    }
    conflict
}

/// Events examined one by one (a leader read each) before the rest of a
/// duplicate search is read as a stream.
const DEDUP_ONE_BY_ONE: usize = 8;

enum Failure {
    Conflict(Option<u64>),
    InFlight,
    /// The stream answered with an error: nothing was stored.
    Refused(String),
    /// No stream answered: nothing was stored.
    NoResponders,
    TooLarge,
    Unavailable,
}

fn jetstream_error(err: &PublishError) -> Option<&async_nats::jetstream::Error> {
    err.source()?.downcast_ref::<async_nats::jetstream::Error>()
}

fn source_text(err: &PublishError) -> String {
    err.source().map(|s| format!(" ({s})")).unwrap_or_default()
}

fn classify(err: &PublishError) -> Failure {
    match err.kind() {
        PublishErrorKind::WrongLastSequence => {
            // "wrong last sequence: N" names the project's actual last sequence.
            let actual = jetstream_error(err).and_then(|e| {
                let text = e.to_string();
                let digits: String = text
                    .split("wrong last sequence:")
                    .nth(1)?
                    .trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            });
            Failure::Conflict(actual)
        }
        PublishErrorKind::MaxPayloadExceeded => Failure::TooLarge,
        // async-nats reports a 503 (no responders) reply this way.
        PublishErrorKind::StreamNotFound => Failure::NoResponders,
        PublishErrorKind::Other => match jetstream_error(err) {
            Some(e) if e.error_code().0 == ERR_IN_FLIGHT => Failure::InFlight,
            // The stream answered, and stored nothing.
            Some(e) if e.error_code().0 == ERR_NO_ROOM => Failure::Refused(format!(
                "{e}: its JetStream storage is full (the server's max_file_store, or \
                 the disk of its store_dir)"
            )),
            Some(e) => Failure::Refused(e.to_string()),
            None => Failure::Unavailable,
        },
        _ => Failure::Unavailable,
    }
}
