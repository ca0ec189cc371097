//! The promotions file: one record for every `PromotionRequested` among the
//! exported records, and nothing else.
//!
//! Both files are in position order, so the check is a merge: the records
//! walk reports each request as it meets it, and the promotions file is read
//! alongside, one row at a time. Memory stays the same whatever the export's
//! size.

use std::io::BufRead;
use std::path::Path;

use waybill_projections::audit::export::{Manifest, PromotionRecord};

use super::Findings;

/// One row of the promotions file.
struct Row {
    line: u64,
    position: u64,
    id: String,
    stage: String,
}

type Rows = Box<dyn Iterator<Item = Result<Row, String>>>;

/// The rows of `path`, read lazily; a row that cannot be read is an `Err`
/// naming its line.
fn rows(path: &Path, name: &str, csv: bool) -> Result<Rows, String> {
    let name = name.to_string();
    if csv {
        let mut reader =
            csv::Reader::from_path(path).map_err(|e| format!("{name}: cannot be read: {e}"))?;
        let header = reader
            .headers()
            .map_err(|e| format!("{name}: cannot be read: {e}"))?
            .clone();
        let col = |n: &str| header.iter().position(|h| h == n);
        let (Some(id), Some(pos), Some(stage)) =
            (col("promotion_id"), col("requested_position"), col("stage"))
        else {
            return Err(format!(
                "{name}: the header lacks promotion_id, requested_position or stage"
            ));
        };
        Ok(Box::new(reader.into_records().enumerate().map(
            move |(i, row)| {
                let line = i as u64 + 2;
                let r = row.map_err(|e| format!("{name} line {line}: {e}"))?;
                Ok(Row {
                    line,
                    position: r.get(pos).and_then(|p| p.parse().ok()).unwrap_or(0),
                    id: r.get(id).unwrap_or_default().to_string(),
                    stage: r.get(stage).unwrap_or_default().to_string(),
                })
            },
        )))
    } else {
        let file = std::fs::File::open(path).map_err(|e| format!("{name}: cannot be read: {e}"))?;
        Ok(Box::new(
            std::io::BufReader::new(file)
                .lines()
                .enumerate()
                .map(move |(i, l)| {
                    let line = i as u64 + 1;
                    let r = l.map_err(|e| e.to_string()).and_then(|l| {
                        serde_json::from_str::<PromotionRecord>(&l).map_err(|e| e.to_string())
                    });
                    match r {
                        Ok(r) => Ok(Row {
                            line,
                            position: r.requested_position,
                            id: r.promotion_id,
                            stage: r.stage,
                        }),
                        Err(e) => Err(format!("{name} line {line}: not a promotion record: {e}")),
                    }
                }),
        ))
    }
}

/// Matches the promotions file against the requests among the records, as
/// the records walk meets them (in position order).
pub struct Matcher {
    name: String,
    rows: Rows,
    /// The next row not yet matched.
    next: Option<Row>,
    /// Position of the last row read (rows must not go backwards).
    last: u64,
    read: u64,
    matched: u64,
    requests: u64,
    problems: Vec<String>,
}

impl Matcher {
    /// Opens the promotions file the manifest names; `None` (with the
    /// problem noted) when it cannot be read.
    pub fn open(dir: &Path, manifest: &Manifest, f: &mut Findings) -> Option<Matcher> {
        let name = manifest.promotions.file.clone();
        let csv = manifest.promotions.format == "csv";
        match rows(&dir.join(&name), &name, csv) {
            Ok(rows) => {
                let mut m = Matcher {
                    name,
                    rows,
                    next: None,
                    last: 0,
                    read: 0,
                    matched: 0,
                    requests: 0,
                    problems: Vec::new(),
                };
                m.advance();
                Some(m)
            }
            Err(problem) => {
                f.problem(problem);
                None
            }
        }
    }

    /// Reads the next readable row into `next`.
    fn advance(&mut self) {
        self.next = None;
        for row in self.rows.by_ref() {
            match row {
                Ok(row) => {
                    self.read += 1;
                    if row.position < self.last {
                        self.problems.push(format!(
                            "{} line {}: out of order (requested at {})",
                            self.name, row.line, row.position
                        ));
                    }
                    self.last = row.position;
                    self.next = Some(row);
                    return;
                }
                Err(problem) => {
                    self.read += 1;
                    self.problems.push(problem);
                }
            }
        }
    }

    /// Rows before `position` name no request: reports them.
    fn skip_before(&mut self, position: u64) {
        while let Some(row) = self.next.take_if(|r| r.position < position) {
            self.problems.push(format!(
                "{} line {}: promotion {} names position {}, which is not a \
                 PromotionRequested record of this export",
                self.name, row.line, row.id, row.position
            ));
            self.advance();
        }
    }

    /// The records hold a `PromotionRequested` of promotion `id` into
    /// `stage` at `position`.
    pub fn requested(&mut self, position: u64, id: &str, stage: &str) {
        self.requests += 1;
        self.skip_before(position);
        match self.next.take_if(|r| r.position == position) {
            Some(row) => {
                if row.id == id && row.stage == stage {
                    self.matched += 1;
                } else {
                    self.problems.push(format!(
                        "{} line {}: promotion {} says it was requested at position {position}, \
                         where the record requests {id}",
                        self.name, row.line, row.id
                    ));
                }
                self.advance();
            }
            None => self.problems.push(format!(
                "{}: no record for promotion {id}, requested at position {position}",
                self.name
            )),
        }
    }

    /// Reports what is left over and the counts.
    pub fn finish(mut self, manifest: &Manifest, f: &mut Findings) {
        self.skip_before(u64::MAX);
        for p in self.problems.drain(..) {
            f.problem(p);
        }
        if self.read != manifest.promotions.count {
            f.problem(format!(
                "{}: {} records, the manifest states {}",
                self.name, self.read, manifest.promotions.count
            ));
        }
        if self.matched == self.read && self.matched == self.requests {
            f.fact(
                "promotions",
                match self.matched {
                    0 => "none: the range holds no PromotionRequested record".to_string(),
                    1 => "1 record, matching its PromotionRequested record".to_string(),
                    n => format!("{n} records, each matching its PromotionRequested record"),
                },
            );
        }
    }
}
