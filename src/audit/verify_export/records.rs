//! The records of an export: each line's chain link, its agreement with the
//! record it carries, and its leaf for the inclusion proof.

use std::io::BufRead;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use waybill_ledger::audit::{leaf_hash, Hash};
use waybill_ledger::event::decode_record;
use waybill_ledger::{ChainHash, EventPayload, Position};
use waybill_projections::audit::export::{EventLine, Manifest, Policies, EVENTS_FILE};

use super::promotions::Matcher;
use super::Findings;

/// What the records say, for the checks after them.
#[derive(Debug, Default)]
pub struct Seen {
    pub count: u64,
    pub first_position: u64,
    pub last_position: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub head: Option<ChainHash>,
}

/// Walks `events.jsonl` as an iterator of leaves `(index, leaf hash)`,
/// checking every line on the way and noting problems in `findings`.
pub struct Records<'a, R: BufRead> {
    lines: std::io::Lines<R>,
    line_no: u64,
    manifest: &'a Manifest,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    prev: Option<ChainHash>,
    /// The project sequence number the next record must have.
    next_seq: u64,
    last_position: u64,
    pub seen: Seen,
    pub findings: &'a mut Findings,
    /// Told of every `PromotionRequested` met (when the promotions file can
    /// be read).
    pub promotions: Option<Matcher>,
    /// The pipelines applied among the records, as the policies file must
    /// state them.
    pub policies: Policies,
    /// A line that cannot be read stops the walk.
    stopped: bool,
}

impl<'a, R: BufRead> Records<'a, R> {
    pub fn new(
        reader: R,
        manifest: &'a Manifest,
        findings: &'a mut Findings,
        promotions: Option<Matcher>,
    ) -> Self {
        let time = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        Records {
            lines: reader.lines(),
            line_no: 0,
            manifest,
            from: time(&manifest.from),
            to: time(&manifest.to),
            prev: ChainHash::from_hex(&manifest.events.prev_hash),
            next_seq: manifest.events.first_seq,
            last_position: 0,
            seen: Seen::default(),
            findings,
            promotions,
            policies: Policies::default(),
            stopped: false,
        }
    }

    fn problem(&mut self, what: String) {
        let line = self.line_no;
        self.findings
            .problem(format!("{EVENTS_FILE} line {line}: {what}"));
    }

    /// Checks one line; returns its leaf when it has one.
    fn check(&mut self, text: &str) -> Option<(u64, Hash)> {
        let line: EventLine = match serde_json::from_str(text) {
            Ok(l) => l,
            Err(e) => {
                self.problem(format!("not a record line: {e}"));
                return None;
            }
        };
        let bytes = match base64::engine::general_purpose::STANDARD.decode(&line.record) {
            Ok(b) => b,
            Err(e) => {
                self.problem(format!("record is not base64: {e}"));
                return None;
            }
        };
        let pos = line.position;
        if pos <= self.last_position {
            self.problem(format!(
                "position {pos} follows position {}: records are out of order or repeated",
                self.last_position
            ));
        }
        self.last_position = self.last_position.max(pos);
        if pos == 0 || pos > self.manifest.checkpoint.size {
            self.problem(format!(
                "position {pos} is outside the checkpointed tree of {} records",
                self.manifest.checkpoint.size
            ));
        }
        let event = match decode_record(&bytes) {
            Ok(e) => e,
            Err(e) => {
                self.problem(format!("position {pos}: the record does not decode: {e}"));
                return Some((pos.saturating_sub(1), leaf_hash(&bytes)));
            }
        };
        let hash = event.prev_hash.next(&bytes);
        let at = format!("position {pos} (seq {})", event.project_seq);
        if event.project != self.manifest.project {
            self.problem(format!(
                "{at}: the record belongs to project {:?}, not {:?}",
                event.project, self.manifest.project
            ));
        }
        if event.project_seq != self.next_seq {
            self.problem(format!(
                "{at}: expected the project's record {} here: {} record(s) missing or \
                 reordered",
                self.next_seq,
                event.project_seq.abs_diff(self.next_seq)
            ));
        }
        self.next_seq = event.project_seq + 1;
        match self.prev {
            Some(prev) if prev != event.prev_hash => self.problem(format!(
                "{at}: chain broken: the record's previous hash is {}, the record before it \
                 hashes to {prev}",
                event.prev_hash
            )),
            _ => {}
        }
        self.prev = Some(hash);
        let copies = [
            ("project", line.project == event.project),
            ("project_seq", line.project_seq == event.project_seq),
            (
                "type",
                line.event_type == event.payload.event_type().ce_type(),
            ),
            ("actor", line.actor == event.actor.principal),
            ("prev_hash", line.prev_hash == event.prev_hash.to_hex()),
            ("hash", line.hash == hash.to_hex()),
            (
                "time",
                DateTime::parse_from_rfc3339(&line.time)
                    .is_ok_and(|t| t.with_timezone(&Utc) == event.time),
            ),
        ];
        for (field, agrees) in copies {
            if !agrees {
                self.problem(format!(
                    "{at}: the line's {field} does not match the record it carries"
                ));
            }
        }
        let t = event.time;
        let stamp = || t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        if self.from.is_some_and(|from| t < from) {
            self.problem(format!("{at}: time {} is before the range", stamp()));
        }
        if self.to.is_some_and(|to| t >= to) {
            self.problem(format!("{at}: time {} is after the range", stamp()));
        }
        if let (EventPayload::PromotionRequested(p), Some(m)) =
            (&event.payload, self.promotions.as_mut())
        {
            m.requested(pos, &p.promotion_id, &p.stage);
        }
        self.policies.saw(Position(pos), &event, true);
        let s = &mut self.seen;
        if s.count == 0 {
            s.first_position = pos;
            s.first_seq = event.project_seq;
        }
        s.count += 1;
        s.last_position = pos;
        s.last_seq = event.project_seq;
        s.head = Some(hash);
        Some((pos.saturating_sub(1), leaf_hash(&bytes)))
    }
}

impl<R: BufRead> Iterator for Records<'_, R> {
    type Item = (u64, Hash);

    fn next(&mut self) -> Option<(u64, Hash)> {
        while !self.stopped {
            self.line_no += 1;
            match self.lines.next() {
                None => self.stopped = true,
                Some(Err(e)) => {
                    self.problem(format!("cannot be read: {e}"));
                    self.stopped = true;
                }
                Some(Ok(text)) => {
                    if let Some(leaf) = self.check(&text) {
                        return Some(leaf);
                    }
                }
            }
        }
        None
    }
}
