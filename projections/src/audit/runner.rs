//! The transparency projection: tails the log, appends every record to the
//! Merkle tree (leaf i = the record at position i + 1), remembers the
//! checkpoints it finds, and — when this process holds the signing key —
//! signs a checkpoint every `every` records or `interval` of time and appends
//! it to the log as a `CheckpointSigned` event of the project `_audit`.
//!
//! Two processes signing with the same key collapse on the command id
//! (`checkpoint-<size>`); processes with different keys each append their own
//! and a verifier trusts the one it knows.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use waybill_ledger::audit::{leaf_hash, Checkpoint, NoteSignature, SignedNote, SignerKey};
use waybill_ledger::name::Name;
use waybill_ledger::{
    Actor, EventLog, EventPayload, ForeignRecord, LedgerError, NewEvent, Position, StoredEvent,
};

use super::store::{MerkleStore, MerkleWriter, StoredCheckpoint};
use crate::error::ProjectionError;

/// Records applied per batch at most.
const MAX_BATCH: usize = 1024;
/// Leaves written per commit at most while busy...
const COMMIT_EVERY: u64 = 16_384;
/// ...or time between commits at most...
const COMMIT_INTERVAL: Duration = Duration::from_millis(250);
/// ...and a quiet moment after which what is pending is committed.
const FLUSH_AFTER: Duration = Duration::from_millis(20);
/// Wait before retrying a checkpoint the log refused.
const RETRY: Duration = Duration::from_secs(2);
/// The service principal checkpoints are attributed to.
pub const CHECKPOINTER: &str = "svc:checkpointer";

/// When and how to sign checkpoints.
#[derive(Clone)]
pub struct CheckpointPolicy {
    /// Sign after this many new records...
    pub every: u64,
    /// ...or this long after the last checkpoint, if anything was appended since.
    pub interval: Duration,
    /// The log's identity in the checkpoint (first line of the note).
    pub origin: String,
    /// The signing key; `None`: this process signs nothing.
    pub signer: Option<Arc<SignerKey>>,
}

impl CheckpointPolicy {
    /// Keeps the tree and signs nothing.
    pub fn read_only() -> CheckpointPolicy {
        CheckpointPolicy {
            every: u64::MAX,
            interval: Duration::from_secs(3600),
            origin: String::new(),
            signer: None,
        }
    }
}

impl std::fmt::Debug for CheckpointPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointPolicy")
            .field("every", &self.every)
            .field("interval", &self.interval)
            .field("origin", &self.origin)
            .field(
                "signer",
                &self.signer.as_ref().map(|s| s.verifier().encode()),
            )
            .finish()
    }
}

/// The transparency log's read side: the stored tree, its size and the
/// latest checkpoint, and a way to ask for a fresh checkpoint. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Transparency {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: MerkleStore,
    size: watch::Sender<u64>,
    latest: watch::Sender<Option<StoredCheckpoint>>,
    /// The smallest tree size someone waits for a checkpoint of.
    wanted: watch::Sender<u64>,
    wake: Notify,
    policy: CheckpointPolicy,
}

impl Transparency {
    /// Opens the tree in `db`. Blocking.
    pub fn open(db: &sled::Db, policy: CheckpointPolicy) -> Result<Transparency, ProjectionError> {
        let store = MerkleStore::open(db)?;
        let (size, _) = watch::channel(store.size()?);
        let (latest, _) = watch::channel(store.latest_checkpoint()?);
        let (wanted, _) = watch::channel(0);
        Ok(Transparency {
            inner: Arc::new(Inner {
                store,
                size,
                latest,
                wanted,
                wake: Notify::new(),
                policy,
            }),
        })
    }

    /// The stored tree (committed nodes only).
    pub fn store(&self) -> &MerkleStore {
        &self.inner.store
    }

    /// Leaves committed.
    pub fn size(&self) -> u64 {
        *self.inner.size.borrow()
    }

    /// Waits (at most `timeout`) until the tree holds `size` leaves; returns its size.
    pub async fn wait_for(&self, size: u64, timeout: Duration) -> Result<u64, u64> {
        let mut rx = self.inner.size.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|s| *s >= size))
            .await
            .map(|r| r.map(|s| *s));
        match reached {
            Ok(Ok(s)) => Ok(s),
            _ => Err(self.size()),
        }
    }

    /// The latest checkpoint found in the log.
    pub fn latest(&self) -> Option<StoredCheckpoint> {
        self.inner.latest.borrow().clone()
    }

    /// This server's verifier key, if it signs.
    pub fn public_key(&self) -> Option<String> {
        self.inner
            .policy
            .signer
            .as_ref()
            .map(|s| s.verifier().encode())
    }

    /// The signing key, if this process holds it.
    pub fn signer(&self) -> Option<Arc<SignerKey>> {
        self.inner.policy.signer.clone()
    }

    /// Waits (at most `timeout`) for a checkpoint of at least `min_size`
    /// leaves, asking the signer for one.
    pub async fn checkpoint_covering(
        &self,
        min_size: u64,
        timeout: Duration,
    ) -> Option<StoredCheckpoint> {
        self.inner.wanted.send_modify(|w| *w = (*w).max(min_size));
        self.inner.wake.notify_one();
        let mut rx = self.inner.latest.subscribe();
        let found = tokio::time::timeout(
            timeout,
            rx.wait_for(|c| c.as_ref().is_some_and(|c| c.size >= min_size)),
        )
        .await;
        match found {
            Ok(Ok(c)) => c.clone(),
            _ => None,
        }
    }

    /// Tails `log` from the stored size and keeps the tree current, signing
    /// checkpoints as the policy says, until `shutdown` completes.
    pub async fn run(
        &self,
        log: Arc<dyn EventLog>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), ProjectionError> {
        tokio::pin!(shutdown);
        let store = self.inner.store.clone();
        let mut writer = tokio::task::spawn_blocking(move || MerkleWriter::open(store))
            .await
            .map_err(|e| ProjectionError::Storage(e.to_string()))??;
        let mut tail = log.tail(Position(writer.size() + 1)).await?;
        let policy = &self.inner.policy;
        let mut signed = self.latest().map(|c| c.size).unwrap_or(0);
        // Did anything but checkpoints arrive since the last one?
        let mut fresh = writer.size() > signed + 1;
        let mut audit_head = Position::ZERO;
        let mut due = Instant::now() + policy.interval;
        let mut committed = writer.size();
        let mut last_commit = Instant::now();
        // Checkpoints seen but not yet committed.
        let mut found: Vec<StoredCheckpoint> = Vec::new();
        // Other keys seen signing checkpoints in the log, each warned of once.
        let mut others_warned = std::collections::BTreeSet::new();
        let mut warn_of_others = |c: &StoredCheckpoint| {
            let Some(others) = policy.signer.as_deref().and_then(|k| other_signers(c, k)) else {
                return;
            };
            if others_warned.insert(others.clone()) {
                tracing::warn!(
                    tree_size = c.size,
                    position = c.position,
                    signed_by = %others,
                    "a checkpoint in the log is signed by another key than this server's: give \
                     every process that signs the same --signing-key, or auditors need each \
                     key (and the log holds checkpoints from each)"
                );
            }
        };
        if let Some(latest) = self.latest() {
            warn_of_others(&latest);
        }
        loop {
            let wanted = *self.inner.wanted.borrow();
            let size = writer.size();
            let asked = wanted > signed && size >= wanted;
            let due_now = asked
                || (fresh
                    && (size >= signed.saturating_add(policy.every) || Instant::now() >= due));
            if policy.signer.is_some() && due_now {
                // Sign only what readers can prove against.
                if writer.size() > committed {
                    writer = self.commit(writer, &mut found).await?;
                    committed = writer.size();
                    last_commit = Instant::now();
                }
                match self.sign(&log, &writer, audit_head).await {
                    Ok(()) => {
                        // Its own event arrives through the tail.
                        signed = size;
                        fresh = false;
                        due = Instant::now() + policy.interval;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, size, "checkpoint not appended; retrying");
                        due = Instant::now() + RETRY.min(policy.interval);
                    }
                }
            }
            let first = tokio::select! {
                () = &mut shutdown => break,
                // Armed only while something waits to be signed.
                () = tokio::time::sleep_until(due), if policy.signer.is_some() && fresh => continue,
                () = self.inner.wake.notified() => continue,
                // Nothing more arrived for a moment: make what is pending visible.
                () = tokio::time::sleep(FLUSH_AFTER), if !found.is_empty() || writer.size() > committed => {
                    writer = self.commit(writer, &mut found).await?;
                    committed = writer.size();
                    last_commit = Instant::now();
                    continue;
                }
                item = tail.next() => match item {
                    Some(item) => Leaf::of(item)?,
                    None => break,
                },
            };
            let mut events = vec![first];
            while events.len() < MAX_BATCH {
                match tail.next().now_or_never() {
                    Some(Some(item)) => events.push(Leaf::of(item)?),
                    _ => break,
                }
            }
            for leaf in &events {
                let expected = writer.size() + 1;
                if leaf.position().0 != expected {
                    return Err(ProjectionError::Corrupt(format!(
                        "the log skips from position {} to {}: a record is missing \
                         (run `waybill verify`)",
                        expected - 1,
                        leaf.position()
                    )));
                }
                writer.push(leaf_hash(leaf.bytes()));
                let Leaf::Event(ev) = leaf else {
                    fresh = true;
                    continue;
                };
                if let Some(c) = checkpoint_of(ev) {
                    warn_of_others(&c);
                    writer.checkpoint(&c)?;
                    audit_head = ev.position;
                    signed = signed.max(c.size);
                    if c.size + 1 == ev.position.0 {
                        // It covers every record before its own, so none
                        // waits to be signed (one another process signed,
                        // or a tree built again from the log reached it).
                        fresh = false;
                        due = Instant::now() + policy.interval;
                    }
                    found.push(c);
                } else {
                    fresh = true;
                }
            }
            // Commit in large batches: each commit rewrites the open chunk of
            // every level.
            if writer.size() - committed >= COMMIT_EVERY || last_commit.elapsed() >= COMMIT_INTERVAL
            {
                writer = self.commit(writer, &mut found).await?;
                committed = writer.size();
                last_commit = Instant::now();
            }
        }
        if writer.size() > committed || !found.is_empty() {
            self.commit(writer, &mut found).await?;
        }
        Ok(())
    }

    /// Writes what is pending, then makes it (and the checkpoints found) visible.
    async fn commit(
        &self,
        mut writer: MerkleWriter,
        found: &mut Vec<StoredCheckpoint>,
    ) -> Result<MerkleWriter, ProjectionError> {
        let writer = tokio::task::spawn_blocking(move || writer.commit().map(|()| writer))
            .await
            .map_err(|e| ProjectionError::Storage(e.to_string()))??;
        self.inner.size.send_replace(writer.size());
        metrics::gauge!("waybill_merkle_tree_size").set(writer.size() as f64);
        for c in found.drain(..) {
            self.inner.latest.send_modify(|l| {
                if l.as_ref().is_none_or(|l| l.size <= c.size) {
                    *l = Some(c);
                }
            });
        }
        Ok(writer)
    }

    /// Signs the tree as it stands and appends the checkpoint.
    async fn sign(
        &self,
        log: &Arc<dyn EventLog>,
        writer: &MerkleWriter,
        audit_head: Position,
    ) -> Result<(), LedgerError> {
        let Some(signer) = &self.inner.policy.signer else {
            return Ok(());
        };
        let checkpoint = Checkpoint {
            origin: self.inner.policy.origin.clone(),
            size: writer.size(),
            root: writer.root(),
            extensions: Vec::new(),
        };
        let note = signer
            .sign(&checkpoint.body())
            .map_err(|e| LedgerError::Invalid {
                field: "checkpoint".into(),
                reason: e.to_string(),
            })?;
        let payload = EventPayload::CheckpointSigned(waybill_ledger::event::CheckpointSigned {
            origin: checkpoint.origin.clone(),
            tree_size: checkpoint.size,
            root_hash: checkpoint.root.to_vec(),
            signed_note: note,
        });
        let actor = Actor {
            principal: CHECKPOINTER.to_string(),
            auth_method: "service".to_string(),
        };
        let mut event = NewEvent::new(payload, actor, format!("checkpoint-{}", checkpoint.size));
        event.subject = format!("tree/{}", checkpoint.size);
        event.source = "waybill".to_string();
        let project = Name::audit();
        let mut expected = audit_head;
        for _ in 0..8 {
            match log.append(&project, expected, event.clone()).await {
                Ok(a) => {
                    metrics::counter!("waybill_checkpoints_signed_total").increment(1);
                    tracing::info!(size = checkpoint.size, position = %a.position, "checkpoint signed");
                    return Ok(());
                }
                Err(LedgerError::Duplicate { .. }) => return Ok(()),
                Err(LedgerError::Conflict { actual }) => expected = actual,
                Err(e) => return Err(e),
            }
        }
        Err(LedgerError::Unavailable(
            "the _audit project kept moving".to_string(),
        ))
    }
}

/// The keys that signed checkpoint `c` (`name+id`, comma-separated) when
/// `ours` is not among them; `None` when it is, or the note does not parse
/// (the audit service reports that).
fn other_signers(c: &StoredCheckpoint, ours: &SignerKey) -> Option<String> {
    let note = SignedNote::parse(&c.note).ok()?;
    if note.signed_by(&ours.verifier()) {
        return None;
    }
    let labels: Vec<String> = note.signatures.iter().map(NoteSignature::label).collect();
    Some(labels.join(", "))
}

/// The checkpoint an event records, if it is one.
fn checkpoint_of(ev: &StoredEvent) -> Option<StoredCheckpoint> {
    match &ev.event.payload {
        EventPayload::CheckpointSigned(c) => Some(StoredCheckpoint {
            size: c.tree_size,
            root: hex::encode(&c.root_hash),
            origin: c.origin.clone(),
            note: c.signed_note.clone(),
            position: ev.position.0,
        }),
        _ => None,
    }
}

/// A message of the log as the tree takes it: every message of the stream
/// is a leaf, a foreign one too (its bytes as stored), so that leaf `i`
/// stays the message at position `i + 1`.
// Nearly every one is an event: boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Leaf {
    Event(StoredEvent),
    Foreign(Box<ForeignRecord>),
}

impl Leaf {
    fn of(item: Result<StoredEvent, LedgerError>) -> Result<Leaf, ProjectionError> {
        match item {
            Ok(ev) => Ok(Leaf::Event(ev)),
            Err(LedgerError::Foreign(f)) => Ok(Leaf::Foreign(f)),
            Err(e) => Err(e.into()),
        }
    }

    fn position(&self) -> Position {
        match self {
            Leaf::Event(ev) => ev.position,
            Leaf::Foreign(f) => f.position,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Leaf::Event(ev) => &ev.bytes,
            Leaf::Foreign(f) => &f.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_by(key: &SignerKey) -> StoredCheckpoint {
        StoredCheckpoint {
            size: 3,
            root: String::new(),
            origin: "waybill-test".into(),
            note: key.sign("waybill-test\n3\nAAAA\n").expect("sign"),
            position: 4,
        }
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_names_that_key() {
        let ours = SignerKey::generate("replica-a").expect("key");
        let theirs = SignerKey::generate("replica-b").expect("key");
        assert_eq!(other_signers(&signed_by(&ours), &ours), None);
        let named = other_signers(&signed_by(&theirs), &ours).expect("another key");
        assert!(named.starts_with("replica-b+"), "{named}");
        // `name+id+key`: the label is the name and the id.
        let public = theirs.verifier().encode();
        let label: Vec<&str> = public.splitn(3, '+').take(2).collect();
        assert_eq!(named, label.join("+"));
    }
}
