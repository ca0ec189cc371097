//! The JetStream backend (DESIGN §2).
//!
//! One stream (`WAYBILL`, subjects `waybill.>`); each project's events go to
//! `waybill.<project>.<event-type>`. Every append carries
//! `Nats-Expected-Last-Subject-Sequence` filtered by `waybill.<project>.>`, so
//! decisions are linearizable per project, and `Nats-Msg-Id` = command id, so
//! retries inside the duplicate window collapse. CloudEvents attributes travel
//! as `ce-*` headers beside the protobuf record.

mod append;
mod creds;
mod options;
mod read;
mod setup;

pub use creds::check_creds_file;
pub use options::{
    JetStreamOptions, NatsCredentials, NatsTls, DEFAULT_DUPLICATE_WINDOW, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX,
};
pub use setup::check_version;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, stream};
use async_trait::async_trait;

use crate::chain::ChainHead;
use crate::envelope::{Appended, NewEvent};
use crate::error::LedgerError;
use crate::log::{EventLog, EventStream, Position};
use crate::name::ProjectName;

/// Header carrying the chain hash of the record (hex), for tools that read the stream.
pub const HASH_HEADER: &str = "Waybill-Hash";

/// The JetStream-backed event log. Cheap to clone.
#[derive(Clone)]
pub struct JetStreamLog {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream,
    opts: JetStreamOptions,
    /// Last known chain head per project; a hint, never trusted over the server's OCC.
    heads: Mutex<HashMap<String, ChainHead>>,
    /// Answers of recent single-event reads (see [`read::next_event`]).
    recent: Mutex<read::Recent>,
    /// Why the stream's configuration, as last read, would discard events
    /// (see [`EventLog::unsafe_config`]); appends are refused meanwhile.
    unsafe_config: Mutex<Option<String>>,
    /// Whether `unsafe_config` holds a reason: what an append looks at,
    /// without the lock.
    unsafe_now: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for JetStreamLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamLog")
            .field("url", &self.inner.opts.url)
            .field("stream", &self.inner.opts.stream)
            .finish()
    }
}

impl JetStreamLog {
    /// Connects, checks the server and creates or validates the stream.
    pub async fn connect(opts: JetStreamOptions) -> Result<JetStreamLog, LedgerError> {
        let client = setup::connect(&opts).await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(opts.request_timeout);
        let stream = setup::ensure_stream(&js, &opts).await?;
        tracing::info!(url = %opts.url, stream = %opts.stream, "opened JetStream log");
        Ok(JetStreamLog {
            inner: Arc::new(Inner {
                client,
                js,
                stream,
                opts,
                heads: Mutex::new(HashMap::new()),
                recent: Mutex::default(),
                unsafe_config: Mutex::default(),
                unsafe_now: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The NATS client, for callers that share the connection.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context.
    pub fn context(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// The options in force.
    pub fn options(&self) -> &JetStreamOptions {
        &self.inner.opts
    }

    /// Drains the NATS connection: pending publishes are flushed first.
    pub async fn close(&self) {
        if let Err(e) = self.inner.client.drain().await {
            tracing::warn!(error = %e, "draining the NATS connection failed");
        }
    }

    fn project_filter(&self, project: &str) -> String {
        format!("{}.{project}.>", self.inner.opts.subject_prefix)
    }

    fn cached_head(&self, project: &str) -> Option<ChainHead> {
        self.inner.heads.lock().ok()?.get(project).copied()
    }

    fn cache_head(&self, project: &str, head: ChainHead) {
        if let Ok(mut heads) = self.inner.heads.lock() {
            match heads.get_mut(project) {
                Some(entry) if head.position >= entry.position => *entry = head,
                Some(_) => {}
                None => {
                    heads.insert(project.to_string(), head);
                }
            }
        }
    }

    /// Takes note of the stream's configuration as the server reported it:
    /// changed since the start so that it would discard events, appends
    /// stop until it is changed back.
    fn note_config(&self, config: &stream::Config) {
        let problems = setup::problems(config, &self.inner.opts);
        let now = (!problems.is_empty()).then(|| {
            format!(
                "the configuration of stream {} was changed and is no longer safe for an \
                 immutable ledger: {}. Waybill appends nothing to it until it is changed \
                 back (no age, size or count limit, deny_delete and deny_purge, no rollups); \
                 what the server discards meanwhile is lost",
                self.inner.opts.stream,
                problems.join("; ")
            )
        });
        let unsafe_now = now.is_some();
        if let Ok(mut kept) = self.inner.unsafe_config.lock() {
            *kept = now;
        }
        self.inner
            .unsafe_now
            .store(unsafe_now, std::sync::atomic::Ordering::Release);
    }

    /// Refuses an append while the stream's configuration is unsafe.
    fn check_config(&self) -> Result<(), LedgerError> {
        if !self
            .inner
            .unsafe_now
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(());
        }
        match self.unsafe_config() {
            Some(problem) => Err(LedgerError::Misconfigured(format!(
                "{problem}; nothing was written"
            ))),
            None => Ok(()),
        }
    }

    fn forget_head(&self, project: &str) {
        if let Ok(mut heads) = self.inner.heads.lock() {
            heads.remove(project);
        }
    }
}

#[async_trait]
impl EventLog for JetStreamLog {
    async fn append(
        &self,
        project: &ProjectName,
        expected: Position,
        event: NewEvent,
    ) -> Result<Appended, LedgerError> {
        self.check_config()?;
        append::append(self, project, expected, event).await
    }

    async fn append_copies(&self, records: &[crate::StoredEvent]) -> Result<Position, LedgerError> {
        self.check_config()?;
        append::append_copies(self, records).await
    }

    async fn append_foreign_copy(
        &self,
        record: &crate::ForeignRecord,
    ) -> Result<Position, LedgerError> {
        self.check_config()?;
        append::append_foreign_copy(self, record).await
    }

    fn unsafe_config(&self) -> Option<String> {
        self.inner
            .unsafe_config
            .lock()
            .map(|kept| kept.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    async fn project_head(&self, project: &ProjectName) -> Result<ChainHead, LedgerError> {
        let head = read::fetch_head(self, project.as_str()).await?;
        self.cache_head(project.as_str(), head);
        Ok(head)
    }

    async fn head(&self) -> Result<Position, LedgerError> {
        read::stream_last_sequence(self).await
    }

    async fn read_project(
        &self,
        project: &ProjectName,
        from: Position,
    ) -> Result<EventStream, LedgerError> {
        let end = self.project_head(project).await?.position;
        read::bounded(self, self.project_filter(project.as_str()), from, end).await
    }

    async fn next_event(
        &self,
        project: &ProjectName,
        from: Position,
    ) -> Result<Option<crate::StoredEvent>, LedgerError> {
        read::next_event(self, &self.project_filter(project.as_str()), from).await
    }

    async fn read_all(&self, from: Position) -> Result<EventStream, LedgerError> {
        let end = self.head().await?;
        let filter = format!("{}.>", self.inner.opts.subject_prefix);
        read::bounded(self, filter, from, end).await
    }

    async fn tail(&self, from: Position) -> Result<EventStream, LedgerError> {
        let filter = format!("{}.>", self.inner.opts.subject_prefix);
        Ok(read::tail(self.clone(), filter, from))
    }
}
