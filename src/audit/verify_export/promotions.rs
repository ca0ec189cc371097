//! The promotions file: one record for every `PromotionRequested` among the
//! exported records, and nothing else.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use waybill_projections::audit::export::{Manifest, PromotionRecord};

use super::Findings;

/// (requested position, promotion id, stage) of each record, with its line.
fn read(path: &Path, csv: bool, f: &mut Findings) -> Option<Vec<(u64, u64, String, String)>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut rows = Vec::new();
    if csv {
        let mut reader = match csv::Reader::from_path(path) {
            Ok(r) => r,
            Err(e) => {
                f.problem(format!("{name}: cannot be read: {e}"));
                return None;
            }
        };
        let header = reader.headers().ok()?.clone();
        let col = |n: &str| header.iter().position(|h| h == n);
        let (Some(id), Some(pos), Some(stage)) =
            (col("promotion_id"), col("requested_position"), col("stage"))
        else {
            f.problem(format!(
                "{name}: the header lacks promotion_id, requested_position or stage"
            ));
            return None;
        };
        for (i, row) in reader.records().enumerate() {
            let line = i as u64 + 2;
            match row {
                Ok(r) => {
                    let position = r.get(pos).and_then(|p| p.parse().ok()).unwrap_or(0);
                    rows.push((
                        line,
                        position,
                        r.get(id).unwrap_or_default().to_string(),
                        r.get(stage).unwrap_or_default().to_string(),
                    ));
                }
                Err(e) => f.problem(format!("{name} line {line}: {e}")),
            }
        }
    } else {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                f.problem(format!("{name}: cannot be read: {e}"));
                return None;
            }
        };
        for (i, l) in std::io::BufReader::new(file).lines().enumerate() {
            let line = i as u64 + 1;
            let parsed = l.map_err(|e| e.to_string()).and_then(|l| {
                serde_json::from_str::<PromotionRecord>(&l).map_err(|e| e.to_string())
            });
            match parsed {
                Ok(r) => rows.push((line, r.requested_position, r.promotion_id, r.stage)),
                Err(e) => f.problem(format!("{name} line {line}: not a promotion record: {e}")),
            }
        }
    }
    Some(rows)
}

/// Checks the promotions file against the requests seen among the records.
pub fn check(
    dir: &Path,
    manifest: &Manifest,
    requested: &BTreeMap<u64, (String, String)>,
    f: &mut Findings,
) {
    let csv = manifest.promotions.format == "csv";
    let name = &manifest.promotions.file;
    let Some(rows) = read(&dir.join(name), csv, f) else {
        return;
    };
    let mut matched = 0u64;
    let mut last = 0u64;
    for (line, position, id, stage) in &rows {
        if *position < last {
            f.problem(format!(
                "{name} line {line}: out of order (requested at {position})"
            ));
        }
        last = *position;
        match requested.get(position) {
            Some((want_id, want_stage)) if want_id == id && want_stage == stage => matched += 1,
            Some((want_id, _)) => f.problem(format!(
                "{name} line {line}: promotion {id} says it was requested at position \
                 {position}, where the record requests {want_id}"
            )),
            None => f.problem(format!(
                "{name} line {line}: promotion {id} names position {position}, which is not a \
                 PromotionRequested record of this export"
            )),
        }
    }
    let listed: std::collections::BTreeSet<u64> = rows.iter().map(|r| r.1).collect();
    for (position, (id, _)) in requested {
        if !listed.contains(position) {
            f.problem(format!(
                "{name}: no record for promotion {id}, requested at position {position}"
            ));
        }
    }
    if rows.len() as u64 != manifest.promotions.count {
        f.problem(format!(
            "{name}: {} records, the manifest states {}",
            rows.len(),
            manifest.promotions.count
        ));
    }
    if matched == rows.len() as u64 && matched == requested.len() as u64 {
        f.fact(
            "promotions",
            format!("{matched} records, each matching its PromotionRequested record"),
        );
    }
}
