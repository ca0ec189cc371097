//! Reading: chain heads, bounded replays and the live tail, all through
//! ordered consumers (in order, no gaps, recreated on reconnect).

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::{RequestError, RequestErrorKind};
use async_nats::jetstream::stream::{
    ConsumerErrorKind, LastRawMessageError, LastRawMessageErrorKind,
};
use futures::stream::{self, StreamExt};
use futures::FutureExt;

use super::{JetStreamLog, HASH_HEADER};
use crate::chain::{ChainHash, ChainHead};
use crate::envelope::{ForeignRecord, StoredEvent};
use crate::error::LedgerError;
use crate::event::record_prev_hash;
use crate::log::{stored_event, EventStream, Position};

/// A bounded read gives up waiting for the next message after this long.
const BOUNDED_IDLE: Duration = Duration::from_secs(10);

/// The longest a consumer's pull request waits on the server. The ordered
/// consumer asks for heartbeats every half of it and makes a new consumer
/// after two missed ones (each noticed 2 heartbeats late), so with
/// [`REPOLL`] this bounds how long a tail stays on a consumer that went
/// away with its server (a node of a cluster killed) to about 5 s. An idle
/// tail sends a pull request every 2 s.
const PULL_EXPIRES: Duration = Duration::from_secs(2);

/// How often a tail waiting for its next message polls its consumer again.
/// async-nats 0.51's ordered consumer arms its heartbeat timer only while
/// polled, and after the first missed heartbeat it returns without arming
/// it again: waiting on it alone, a tail whose consumer's server was killed
/// stayed put until the client's reconnection check gave up, about 45 s
/// (walked on a 3-node cluster). Polling again arms the timer, so the
/// second missed heartbeat makes a new consumer.
const REPOLL: Duration = Duration::from_secs(1);

fn unavailable(what: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Unavailable(format!("{what}: {e}"))
}

/// The project's chain head, from its last message on the server.
pub(super) async fn fetch_head(
    log: &JetStreamLog,
    project: &str,
) -> Result<ChainHead, LedgerError> {
    let filter = log.project_filter(project);
    let last = asking_again(log, "reading the project head", raw_get_timed_out, || {
        log.inner.stream.get_last_raw_message_by_subject(&filter)
    });
    match last.await {
        Ok(msg) => {
            let position = Position(msg.sequence);
            let header = msg.headers.get(HASH_HEADER).map(|v| v.as_str());
            match record(log, position, &msg.subject, msg.payload, header) {
                Ok(stored) => Ok(ChainHead {
                    position,
                    hash: stored.hash,
                    seq: stored.event.project_seq,
                }),
                // The chain ends at the last record Waybill wrote; an append
                // still expects the foreign message's sequence, the
                // subject's last.
                Err(LedgerError::Foreign(foreign)) => {
                    tracing::warn!(
                        project,
                        position = position.0,
                        reason = %foreign.reason,
                        "the project's last message is not a Waybill record; reading back to its last record"
                    );
                    let mut head = last_record(log, &filter, position).await?;
                    head.position = position;
                    Ok(head)
                }
                Err(e) => Err(e),
            }
        }
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
            Ok(ChainHead::EMPTY)
        }
        Err(e) => Err(unavailable("reading the project head", e)),
    }
}

/// The chain head of the last Waybill record matching `filter` at or
/// before `end` (`EMPTY` when there is none), read from the start: only
/// when the subject's last message is foreign, which is rare.
async fn last_record(
    log: &JetStreamLog,
    filter: &str,
    end: Position,
) -> Result<ChainHead, LedgerError> {
    let mut records = bounded(log, filter.to_string(), Position(1), end).await?;
    let mut head = ChainHead::EMPTY;
    while let Some(item) = records.next().await {
        match item {
            Ok(ev) => {
                head = ChainHead {
                    position: ev.position,
                    hash: ev.hash,
                    seq: ev.event.project_seq,
                }
            }
            Err(LedgerError::Foreign(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(head)
}

/// Answers of recent [`next_event`] calls: "the first event matching this
/// filter at or after this position is that one" stays true for ever (a
/// later message always gets a higher sequence, and none is ever deleted),
/// so it is kept and given again. This serves the reads that follow a
/// conflict: the append looks through the events it missed for its own
/// command id, then the command's catch-up reads the same events.
#[derive(Debug, Default)]
pub(super) struct Recent {
    answers: std::collections::HashMap<(String, u64), StoredEvent>,
    order: std::collections::VecDeque<(String, u64)>,
}

impl Recent {
    /// Answers kept; the oldest go first.
    const KEPT: usize = 256;

    fn get(&self, filter: &str, from: u64) -> Option<StoredEvent> {
        self.answers.get(&(filter.to_string(), from)).cloned()
    }

    fn put(&mut self, filter: &str, from: u64, event: StoredEvent) {
        let key = (filter.to_string(), from);
        if self.answers.insert(key.clone(), event).is_none() {
            self.order.push_back(key);
            while self.order.len() > Self::KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.answers.remove(&old);
                }
            }
        }
    }
}

/// The first event matching `filter` at or after `from`, read through the
/// stream leader (so it reflects every acknowledged append), or as a recent
/// read found it (see [`Recent`]).
pub(super) async fn next_event(
    log: &JetStreamLog,
    filter: &str,
    from: Position,
) -> Result<Option<StoredEvent>, LedgerError> {
    let from = Position(from.0.max(1));
    // A poisoned lock only means a panic elsewhere; the map is whole.
    let recent = || log.inner.recent.lock().unwrap_or_else(|p| p.into_inner());
    let known = recent().get(filter, from.0);
    if known.is_some() {
        return Ok(known);
    }
    let found = fetch_next_event(log, filter, from).await?;
    if let Some(ev) = &found {
        recent().put(filter, from.0, ev.clone());
    }
    Ok(found)
}

async fn fetch_next_event(
    log: &JetStreamLog,
    filter: &str,
    from: Position,
) -> Result<Option<StoredEvent>, LedgerError> {
    let next = asking_again(log, "reading an event", raw_get_timed_out, || {
        log.inner
            .stream
            .raw_message_builder()
            .next_by_subject(filter.to_string())
            .sequence(from.0.max(1))
            .send()
    });
    match next.await {
        Ok(msg) => {
            let header = msg.headers.get(HASH_HEADER).map(|v| v.as_str());
            record(
                log,
                Position(msg.sequence),
                &msg.subject,
                msg.payload,
                header,
            )
            .map(Some)
        }
        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(None),
        Err(e) => Err(unavailable("reading an event", e)),
    }
}

/// Attempts at a read-only API request (stream info, the last or next
/// message of a subject, creating a read's consumer) that goes unanswered
/// within the request timeout while the connection stays up. A server can
/// answer late for a moment (a replicated stream just created, a busy or
/// stalled process); asking again is harmless, and a server that stays
/// silent fails the read after this many timeouts. A timeout while the
/// connection is down is not asked again: NATS is gone, not slow, and the
/// caller (a shutdown saving what it can, a command) should know at once.
const TIMED_OUT_ATTEMPTS: u32 = 3;

/// Whether a request that timed out is worth asking again: attempts left,
/// and the connection to NATS up.
fn ask_again(log: &JetStreamLog, attempt: u32) -> bool {
    attempt < TIMED_OUT_ATTEMPTS
        && log.inner.client.connection_state() == async_nats::connection::State::Connected
}

/// `request()`, asked again while it times out (see [`ask_again`]).
async fn asking_again<T, E, F, Fut>(
    log: &JetStreamLog,
    what: &str,
    timed_out: impl Fn(&E) -> bool,
    mut request: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Err(e) if timed_out(&e) && ask_again(log, attempt) => {
                attempt += 1;
                tracing::warn!("{what} timed out; asking again");
            }
            answer => return answer,
        }
    }
}

/// A message get (last or next by subject) that went unanswered: async-nats
/// reports it as `Other`, with the request's timeout as its source.
fn raw_get_timed_out(e: &LastRawMessageError) -> bool {
    matches!(e.kind(), LastRawMessageErrorKind::Other)
        && std::error::Error::source(e)
            .and_then(|source| source.downcast_ref::<RequestError>())
            .is_some_and(|request| matches!(request.kind(), RequestErrorKind::TimedOut))
}

pub(super) async fn stream_last_sequence(log: &JetStreamLog) -> Result<Position, LedgerError> {
    let info = asking_again(
        log,
        "stream info",
        |e: &RequestError| matches!(e.kind(), RequestErrorKind::TimedOut),
        || log.inner.stream.get_info(),
    )
    .await
    .map_err(|e| {
        if stream_missing(&e) {
            LedgerError::Unavailable(format!(
                "the stream {} is not on the NATS server (deleted?): nothing can be read or \
                 appended until it is restored (docs/operations.md, \"Restoring\"); a \
                 restart would create it anew, empty",
                log.inner.opts.stream
            ))
        } else {
            unavailable("stream info", e)
        }
    })?;
    log.note_config(&info.config);
    Ok(Position(info.state.last_sequence))
}

/// Whether a request failed because the stream is not on the server.
fn stream_missing(e: &RequestError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|js| js.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND)
}

fn to_stored(
    log: &JetStreamLog,
    msg: &async_nats::jetstream::Message,
) -> Result<StoredEvent, LedgerError> {
    let info = msg
        .info()
        .map_err(|e| LedgerError::Unavailable(format!("malformed delivery: {e}")))?;
    let position = Position(info.stream_sequence);
    let header = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(HASH_HEADER))
        .map(|v| v.as_str());
    record(log, position, &msg.subject, msg.payload.clone(), header)
}

/// The Waybill record a message holds, or `Foreign` when Waybill did not
/// write it: every record Waybill writes carries its chain hash,
/// `SHA-256(prev_hash ‖ bytes)`, in the `Waybill-Hash` header. A message
/// whose hash checks out but that this build cannot decode (written by a
/// newer Waybill) is `Corrupt`, and stops the reader. A record published to
/// another subject than its own (`<prefix>.<project>.<type>`: a copy put
/// where it does not belong) is foreign too.
fn record(
    log: &JetStreamLog,
    position: Position,
    subject: &str,
    payload: bytes::Bytes,
    hash_header: Option<&str>,
) -> Result<StoredEvent, LedgerError> {
    let foreign = |payload: bytes::Bytes, reason: String| {
        LedgerError::Foreign(Box::new(ForeignRecord {
            position,
            subject: subject.to_string(),
            bytes: payload,
            reason,
        }))
    };
    let Some(stored) = hash_header.and_then(ChainHash::from_hex) else {
        let reason = match hash_header {
            None => format!("it has no {HASH_HEADER} header"),
            Some(_) => format!("its {HASH_HEADER} header is not a SHA-256 hash"),
        };
        return Err(foreign(payload, reason));
    };
    let mismatch = || format!("its {HASH_HEADER} header does not match its bytes");
    match stored_event(position, payload.clone(), Some(stored)) {
        Ok(ev) if ev.hash == stored => {
            let prefix = &log.inner.opts.subject_prefix;
            let own = subject
                .strip_prefix(prefix.as_str())
                .and_then(|s| s.strip_prefix('.'))
                .and_then(|s| s.strip_prefix(ev.event.project.as_str()))
                .and_then(|s| s.strip_prefix('.'))
                == Some(ev.event.payload.event_type().subject_token());
            if own {
                return Ok(ev);
            }
            let reason = format!(
                "a record of project {} ({}) on another subject than its own",
                ev.event.project,
                ev.event.payload.event_type().name()
            );
            Err(foreign(payload, reason))
        }
        Ok(_) => Err(foreign(payload, mismatch())),
        Err(unreadable) => match record_prev_hash(&payload) {
            Some(prev) if prev.next(&payload) == stored => Err(unreadable),
            _ => Err(foreign(payload, mismatch())),
        },
    }
}

/// An ordered consumer's messages; the consumer is deleted on the server
/// when this is dropped. Left alone, the server would keep it for 30 s
/// after its last pull (async-nats' inactive threshold for ordered
/// consumers), and nats-server 2.15 refuses a stream's 1,001st consumer
/// (its default limit, which the stream's `max_consumers: -1` does not
/// lift): a burst of reads (each project's first command after a start,
/// conflicts under load) would fail with "maximum consumers limit reached".
struct Reading {
    messages: pull::Ordered,
    /// The consumer's name, and its stream.
    reap: Option<(async_nats::jetstream::stream::Stream, String)>,
}

impl Drop for Reading {
    fn drop(&mut self) {
        let Some((stream, name)) = self.reap.take() else {
            return;
        };
        // Without a runtime (the process is ending) the server's inactive
        // threshold removes it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = stream.delete_consumer(&name).await {
                    tracing::debug!(consumer = %name, error = %e, "cannot delete a finished read's consumer");
                }
            });
        }
    }
}

/// How long a read waits for the stream's consumer limit to free a slot
/// before it fails `Unavailable`.
const CONSUMER_SLOT_WAIT: Duration = Duration::from_secs(30);

/// Is this the stream (or the server) refusing one more consumer? Every
/// bounded read holds one while it runs, so a burst of reads can meet the
/// limit (nats-server 2.15: 1,000 per stream unless configured otherwise);
/// it frees as the other reads end.
fn at_consumer_limit(e: &async_nats::jetstream::stream::ConsumerError) -> bool {
    use async_nats::jetstream::{stream::ConsumerErrorKind, ErrorCode};
    matches!(e.kind(), ConsumerErrorKind::JetStream(err)
        if err.error_code() == ErrorCode::MAXIMUM_CONSUMERS_LIMIT)
}

async fn ordered(log: &JetStreamLog, filter: &str, from: Position) -> Result<Reading, LedgerError> {
    let config = pull::OrderedConfig {
        filter_subject: filter.to_string(),
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: from.0.max(1),
        },
        max_expires: PULL_EXPIRES,
        ..Default::default()
    };
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    let mut attempt = 1;
    let consumer = loop {
        match log.inner.stream.create_consumer(config.clone()).await {
            Ok(consumer) => break consumer,
            Err(e) if at_consumer_limit(&e) && started.elapsed() < CONSUMER_SLOT_WAIT => {
                if pause == Duration::from_millis(5) {
                    tracing::debug!(
                        filter,
                        "the stream's consumer limit is reached; waiting for a slot"
                    );
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
            // An ordered consumer that a late answer created anyway is
            // reaped by its inactivity threshold.
            Err(e)
                if matches!(e.kind(), ConsumerErrorKind::TimedOut) && ask_again(log, attempt) =>
            {
                attempt += 1;
                tracing::warn!(filter, "creating a consumer timed out; asking again");
            }
            Err(e) => return Err(unavailable("creating a consumer", e)),
        }
    };
    let name = consumer.cached_info().name.clone();
    let messages = consumer
        .messages()
        .await
        .map_err(|e| unavailable("starting a consumer", e))?;
    Ok(Reading {
        messages,
        reap: Some((log.inner.stream.clone(), name)),
    })
}

/// Events matching `filter` with `from <= position <= end`.
pub(super) async fn bounded(
    log: &JetStreamLog,
    filter: String,
    from: Position,
    end: Position,
) -> Result<EventStream, LedgerError> {
    let from = from.max(Position(1));
    if from > end {
        return Ok(stream::empty().boxed());
    }
    let messages = ordered(log, &filter, from).await?;
    let state = (Some(messages), from, log.clone());
    Ok(
        stream::unfold(state, move |(messages, next, log)| async move {
            let mut messages = messages?;
            if next > end {
                return None;
            }
            // A buffered message needs no timer.
            let received = match messages.messages.next().now_or_never() {
                Some(received) => Ok(received),
                None => tokio::time::timeout(BOUNDED_IDLE, messages.messages.next()).await,
            };
            match received {
                Ok(Some(Ok(msg))) => {
                    let item = to_stored(&log, &msg);
                    let pos = match &item {
                        Ok(ev) => ev.position,
                        // A reader skips it and goes on.
                        Err(LedgerError::Foreign(f)) => f.position,
                        Err(_) => end,
                    };
                    // Stop at `end` only: a consumer placed on a replica that is
                    // still catching up can report nothing pending before `end`
                    // (its copy is behind); the rest arrives as it catches up.
                    let next = pos.next();
                    Some((item, (Some(messages), next, log)))
                }
                Ok(Some(Err(e))) => {
                    Some((Err(unavailable("reading the log", e)), (None, next, log)))
                }
                Ok(None) => None,
                Err(_) => Some((
                    Err(LedgerError::Unavailable(format!(
                        "no message at position {next} within {BOUNDED_IDLE:?}"
                    ))),
                    (None, next, log),
                )),
            }
        })
        .boxed(),
    )
}

/// Every event matching `filter` from `from`, forever. Survives server
/// restarts: the consumer is recreated from the next expected position, and
/// anything already delivered is skipped.
pub(super) fn tail(log: JetStreamLog, filter: String, from: Position) -> EventStream {
    let from = from.max(Position(1));
    let state = (log, filter, None::<Reading>, from, 0u32);
    stream::unfold(state, |(log, filter, mut messages, mut next, mut failures)| async move {
        loop {
            let current = match messages.as_mut() {
                Some(m) => m,
                None => match ordered(&log, &filter, next).await {
                    Ok(m) => {
                        failures = 0;
                        messages.insert(m)
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, position = next.0, "tail: cannot (re)start consumer");
                        tokio::time::sleep(backoff(failures)).await;
                        continue;
                    }
                },
            };
            // A buffered message needs no timer.
            let received = match current.messages.next().now_or_never() {
                Some(received) => received,
                None => loop {
                    if let Ok(received) =
                        tokio::time::timeout(REPOLL, current.messages.next()).await
                    {
                        break received;
                    }
                },
            };
            match received {
                Some(Ok(msg)) => {
                    let item = to_stored(&log, &msg);
                    match &item {
                        Ok(ev) if ev.position < next => continue,
                        Ok(ev) => next = ev.position.next(),
                        Err(LedgerError::Corrupt { position, .. }) => next = position.next(),
                        Err(LedgerError::Foreign(f)) if f.position < next => continue,
                        Err(LedgerError::Foreign(f)) => next = f.position.next(),
                        Err(_) => {}
                    }
                    return Some((item, (log, filter, messages, next, failures)));
                }
                Some(Err(e)) => {
                    failures += 1;
                    tracing::warn!(error = %e, position = next.0, "tail: consumer failed; recreating");
                    messages = None;
                    tokio::time::sleep(backoff(failures)).await;
                }
                None => {
                    messages = None;
                }
            }
        }
    })
    .boxed()
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis((50u64 << failures.min(5)).min(2_000))
}
