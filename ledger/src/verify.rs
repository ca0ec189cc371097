//! Walking the log and checking every project's hash chain.

use std::collections::BTreeMap;
use std::fmt;

use futures::StreamExt;

use crate::chain::{ChainHash, ChainHead};
use crate::envelope::{ForeignRecord, StoredEvent};
use crate::error::LedgerError;
use crate::log::{EventLog, Position};
use crate::name::ProjectName;

/// Why a link is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// The record's `prev_hash` is not the hash of the project's previous event:
    /// an event before it was removed, altered or inserted.
    PrevHash {
        expected: ChainHash,
        found: ChainHash,
    },
    /// The record's `project_seq` skips or repeats.
    Sequence { expected: u64, found: u64 },
    /// The hash stored beside the record differs from the one computed from it.
    StoredHash {
        computed: ChainHash,
        stored: ChainHash,
    },
    /// The record cannot be decoded.
    Undecodable(String),
}

/// The first broken link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    pub position: Position,
    pub project: String,
    pub kind: BreakKind,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, proj) = (self.position, &self.project);
        match &self.kind {
            BreakKind::PrevHash { expected, found } => write!(
                f,
                "chain broken at position {p} (project {proj}): prev_hash expected {expected}, found {found}"
            ),
            BreakKind::Sequence { expected, found } => write!(
                f,
                "chain broken at position {p} (project {proj}): project sequence expected {expected}, found {found}"
            ),
            BreakKind::StoredHash { computed, stored } => write!(
                f,
                "record altered at position {p} (project {proj}): hash computed {computed}, stored {stored}"
            ),
            BreakKind::Undecodable(reason) => {
                write!(f, "undecodable record at position {p}: {reason}")
            }
        }
    }
}

/// Incremental chain checker: feed it events in log order.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    heads: BTreeMap<String, ChainHead>,
    events: u64,
}

impl ChainVerifier {
    /// A verifier that has seen nothing.
    pub fn new() -> ChainVerifier {
        ChainVerifier::default()
    }

    /// Checks the next event; on success it becomes its project's head.
    pub fn push(&mut self, ev: &StoredEvent) -> Result<(), ChainBreak> {
        let project = ev.event.project.clone();
        let head = self
            .heads
            .get(&project)
            .copied()
            .unwrap_or(ChainHead::EMPTY);
        let broken = |kind| ChainBreak {
            position: ev.position,
            project: project.clone(),
            kind,
        };
        if ev.event.prev_hash != head.hash {
            return Err(broken(BreakKind::PrevHash {
                expected: head.hash,
                found: ev.event.prev_hash,
            }));
        }
        if ev.event.project_seq != head.seq + 1 {
            return Err(broken(BreakKind::Sequence {
                expected: head.seq + 1,
                found: ev.event.project_seq,
            }));
        }
        if let Some(stored) = ev.stored_hash {
            if stored != ev.hash {
                return Err(broken(BreakKind::StoredHash {
                    computed: ev.hash,
                    stored,
                }));
            }
        }
        self.events += 1;
        self.heads.insert(
            project,
            ChainHead {
                position: ev.position,
                hash: ev.hash,
                seq: ev.event.project_seq,
            },
        );
        Ok(())
    }

    /// The heads reached so far, per project.
    pub fn heads(&self) -> &BTreeMap<String, ChainHead> {
        &self.heads
    }

    /// Events checked so far.
    pub fn events(&self) -> u64 {
        self.events
    }
}

/// The outcome of a verification walk.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Events checked before stopping.
    pub events: u64,
    /// Chain heads per project.
    pub heads: BTreeMap<String, ChainHead>,
    /// The first broken link, if any.
    pub first_break: Option<ChainBreak>,
    /// Messages on the log that Waybill did not write (the first
    /// [`FOREIGN_KEPT`] of them, without their bytes), in log order. They are
    /// in no chain, so the walk goes on past them; they still fail a
    /// verification: something published to Waybill's subjects.
    pub foreign: Vec<ForeignRecord>,
    /// How many there were in all.
    pub foreign_count: u64,
}

/// Foreign messages a [`VerifyReport`] names; the rest are counted.
pub const FOREIGN_KEPT: usize = 20;

impl VerifyReport {
    /// Whether every chain checked out and nothing else was on the log.
    pub fn is_clean(&self) -> bool {
        self.first_break.is_none() && self.foreign_count == 0
    }

    /// The problem to name first, with its position: the broken link, else
    /// the first foreign message.
    pub fn first_problem(&self) -> Option<(Position, String)> {
        if let Some(b) = &self.first_break {
            return Some((b.position, b.to_string()));
        }
        self.foreign.first().map(|f| (f.position, foreign_text(f)))
    }
}

/// What `waybill verify` says of a foreign message.
pub fn foreign_text(f: &ForeignRecord) -> String {
    format!(
        "message at position {} (subject {}) was not written by Waybill: {}",
        f.position, f.subject, f.reason
    )
}

/// Walks the whole log (or one project) and checks every chain, stopping at
/// the first broken link. `progress` is called with each position checked.
pub async fn verify_log(
    log: &dyn EventLog,
    project: Option<&ProjectName>,
    mut progress: impl FnMut(Position),
) -> Result<VerifyReport, LedgerError> {
    let mut events = match project {
        Some(p) => log.read_project(p, Position(1)).await?,
        None => log.read_all(Position(1)).await?,
    };
    let mut verifier = ChainVerifier::new();
    let mut first_break = None;
    let (mut foreign, mut foreign_count) = (Vec::new(), 0u64);
    while let Some(item) = events.next().await {
        let mut verified = None;
        let result = match item {
            Ok(ev) => {
                verified = Some(ev.position);
                verifier.push(&ev)
            }
            Err(LedgerError::Foreign(f)) => {
                foreign_count += 1;
                if foreign.len() < FOREIGN_KEPT {
                    foreign.push(ForeignRecord {
                        bytes: bytes::Bytes::new(),
                        ..*f
                    });
                }
                verified = Some(f.position);
                Ok(())
            }
            Err(LedgerError::Corrupt { position, reason }) => Err(ChainBreak {
                position,
                project: String::new(),
                kind: BreakKind::Undecodable(reason),
            }),
            Err(e) => return Err(e),
        };
        if let Err(b) = result {
            first_break = Some(b);
            break;
        }
        if let Some(position) = verified {
            progress(position);
        }
    }
    Ok(VerifyReport {
        events: verifier.events(),
        heads: verifier.heads().clone(),
        first_break,
        foreign,
        foreign_count,
    })
}
