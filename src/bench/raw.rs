//! The baseline: raw JetStream, doing what Waybill does underneath and nothing more.
//!
//! A stream with Waybill's configuration (file storage, limits retention,
//! deny delete/purge, same duplicate window and replicas) under its own name
//! and subject prefix. An append is one publish with `Nats-Msg-Id` and the
//! subject-filtered expected sequence (`<prefix>.<project>.>`), then its ack.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{stream, Context};
use bytes::Bytes;
use futures::StreamExt;
use waybill_ledger::jetstream::DEFAULT_DUPLICATE_WINDOW;

use super::sample::RunId;
use super::server::Target;
use super::stats::Rate;

/// Acks awaited at once while filling the replay stream.
const FILL_WINDOW: usize = 1024;

/// A raw stream and the payload every message carries.
#[derive(Debug, Clone)]
pub struct RawStream {
    js: Context,
    stream: stream::Stream,
    prefix: String,
    payload: Bytes,
    /// Carry a header set like the one Waybill stores (same names and sizes).
    envelope: bool,
}

/// Headers shaped like Waybill's stored ones: the six `ce-*` attributes,
/// `Waybill-Hash`, and stand-ins for the two expected-sequence headers (which
/// a pipelined fill cannot use for real).
fn envelope_headers(message: PublishMessage, prefix: &str, project: &str) -> PublishMessage {
    attribute_headers(
        message
            .header("X-Expected-Last-Subject-Sequence", "0")
            .header(
                "X-Expected-Last-Subject-Sequence-Subject",
                format!("{prefix}.{project}.>").as_str(),
            ),
    )
}

/// The six `ce-*` attributes and `Waybill-Hash`, shaped like Waybill's.
fn attribute_headers(message: PublishMessage) -> PublishMessage {
    message
        .header("ce-specversion", "1.0")
        .header("ce-id", "01a224bc-9fbb-7027-8d93-7d928cafb741")
        .header("ce-source", "waybill://bench-host")
        .header("ce-type", "waybill.v1.PromotionRequested")
        .header("ce-time", "2026-11-29T00:00:00.123456789+00:00")
        .header("ce-subject", "stage/prod/promotion/prm-068925f8533e28f9")
        .header(
            "Waybill-Hash",
            "a394eb7ca1d598afe89119c539d551d6b34cea35e578b74716f4a13765cd92bb",
        )
}

impl RawStream {
    /// Creates the stream `<stream><run>` on subjects `<prefix><run>.>` on
    /// `target` (which deletes it at the end), with the target's replicas and
    /// Waybill's default duplicate window, and messages of `payload_len`
    /// bytes; `envelope`: each append also carries Waybill's header set.
    pub async fn create(
        target: &mut Target,
        run: &RunId,
        stream: &str,
        prefix: &str,
        payload_len: usize,
        envelope: bool,
    ) -> anyhow::Result<RawStream> {
        let (name, prefix) = (run.name(stream), run.name(prefix));
        target.track(&name);
        let js = target.context();
        let config = stream::Config {
            name: name.clone(),
            description: Some("waybill bench: raw JetStream baseline".into()),
            subjects: vec![format!("{prefix}.>")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: target.replicas(),
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            deny_delete: true,
            deny_purge: true,
            allow_rollup: false,
            allow_direct: true,
            max_messages: -1,
            max_bytes: -1,
            max_messages_per_subject: -1,
            max_consumers: -1,
            ..Default::default()
        };
        let stream = js
            .create_stream(config)
            .await
            .with_context(|| format!("creating the raw stream {name}"))?;
        let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
        Ok(RawStream {
            js: js.clone(),
            stream,
            prefix,
            payload: Bytes::from(payload),
            envelope,
        })
    }

    /// One optimistic-concurrency append to `project`, given its last sequence;
    /// returns the new sequence.
    /// Like Waybill, a publish that meets 10164 (another write in flight on a
    /// replicated stream) is sent again, up to 8 times.
    pub async fn append(&self, project: &str, last: u64, msg_id: &str) -> anyhow::Result<u64> {
        let mut attempt = 1;
        loop {
            let message = self.message(project, last, msg_id);
            match self.send(project, message).await {
                Err(e) if attempt < 8 && format!("{e:#}").contains("error code 10164") => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn message(&self, project: &str, last: u64, msg_id: &str) -> PublishMessage {
        let message = PublishMessage::build()
            .payload(self.payload.clone())
            .message_id(msg_id)
            .expected_last_subject_sequence(last)
            .header(
                "Nats-Expected-Last-Subject-Sequence-Subject",
                format!("{}.{project}.>", self.prefix).as_str(),
            );
        if self.envelope {
            attribute_headers(message)
        } else {
            message
        }
    }

    async fn send(&self, project: &str, message: PublishMessage) -> anyhow::Result<u64> {
        let subject = format!("{}.{project}.ev", self.prefix);
        let ack = self
            .js
            .send_publish(subject, message)
            .await
            .context("raw publish")?
            .await
            .context("raw publish ack")?;
        ensure!(!ack.duplicate, "raw publish was a duplicate");
        Ok(ack.sequence)
    }

    /// `n` sequential appends to `project`, each timed from publish to ack.
    pub async fn latency(
        &self,
        run: &RunId,
        project: &str,
        last: &mut u64,
        n: u64,
    ) -> anyhow::Result<Vec<Duration>> {
        let mut samples = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let id = run.command_id(project, 0, *last);
            let started = Instant::now();
            *last = self.append(project, *last, &id).await?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    }

    /// `writers` concurrent tasks, each appending `per_writer` events in
    /// sequence to its own project `<tag>-w<n>`.
    pub async fn throughput(
        &self,
        run: &RunId,
        tag: &str,
        writers: usize,
        per_writer: u64,
    ) -> anyhow::Result<Rate> {
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let raw = self.clone();
                let run = run.clone();
                let project = format!("{tag}-w{w}");
                let tag = tag.to_string();
                tokio::spawn(async move {
                    let mut last = 0;
                    for i in 0..per_writer {
                        last = raw
                            .append(&project, last, &run.command_id(&tag, w, i))
                            .await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for task in tasks {
            task.await.context("raw writer task")??;
        }
        Ok(Rate {
            events: writers as u64 * per_writer,
            elapsed: started.elapsed(),
        })
    }

    /// Publishes `n` messages over `projects` subjects as fast as the server
    /// takes them (acks awaited in windows, no expected sequence).
    pub async fn fill(&self, run: &RunId, n: u64, projects: usize) -> anyhow::Result<()> {
        let mut acks = Vec::with_capacity(FILL_WINDOW);
        for i in 0..n {
            let project = i as usize % projects.max(1);
            let subject = format!("{}.fill-{project}.ev", self.prefix);
            let mut message = PublishMessage::build()
                .payload(self.payload.clone())
                .message_id(run.command_id("fill", project, i));
            if self.envelope {
                message = envelope_headers(message, &self.prefix, &format!("fill-{project}"));
            }
            acks.push(self.js.send_publish(subject, message).await?.into_future());
            if acks.len() == FILL_WINDOW {
                futures::future::try_join_all(acks.drain(..)).await?;
            }
        }
        futures::future::try_join_all(acks).await?;
        Ok(())
    }

    /// Reads the whole stream through an ordered pull consumer, touching
    /// every payload; timed from creating the consumer to the last message.
    pub async fn replay(&self) -> anyhow::Result<Rate> {
        let started = Instant::now();
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("{}.>", self.prefix),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .context("creating the raw ordered consumer")?;
        let mut messages = consumer.messages().await?;
        let mut events = 0u64;
        let mut touched = 0u64;
        while let Some(message) = messages.next().await {
            let message = message.context("raw replay")?;
            events += 1;
            touched = touched.wrapping_add(message.payload.len() as u64);
            touched ^= u64::from(message.payload.first().copied().unwrap_or_default());
            let pending = message
                .info()
                .map_err(|e| anyhow::anyhow!("malformed delivery: {e}"))?
                .pending;
            if pending == 0 {
                break;
            }
        }
        std::hint::black_box(touched);
        Ok(Rate {
            events,
            elapsed: started.elapsed(),
        })
    }
}
