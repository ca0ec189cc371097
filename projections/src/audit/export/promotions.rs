//! The promotions file: one record per promotion, from the read model.

use tokio::sync::mpsc;
use waybill_ledger::domain::Freight;
use waybill_ledger::Position;

use super::out::FileOut;
use super::{promotions_file, ExportError, ExportItem, ExportSpec, FileEntry, PromotionRecord};
use crate::models;
use crate::runner::Projections;
use crate::store::ProjectionStore;

/// Writes one record per promotion requested at a position in `range` (the
/// exported records'), in the order of their requests, from the promotions
/// read model, on the calling (blocking) thread.
fn write_promotions(
    store: &ProjectionStore,
    project: &str,
    csv: bool,
    range: std::ops::RangeInclusive<u64>,
    tx: &mpsc::Sender<ExportItem>,
) -> Result<(FileEntry, u64), ExportError> {
    let send = |item| tx.blocking_send(item).map_err(|_| ExportError::Cancelled);
    let storage = |e: crate::ProjectionError| ExportError::Internal(e.to_string());
    let mut out = FileOut::new(promotions_file(csv));
    if csv {
        if let Some(chunk) = out.write(&csv_line(PromotionRecord::CSV_HEADER)?) {
            send(chunk)?;
        }
    }
    let tree = store.views();
    let after = Position(range.start().saturating_sub(1));
    // Promotions of one freight tend to come together: look its freight up once.
    let mut last: Option<(String, Option<Freight>)> = None;
    let mut count = 0u64;
    for p in models::promotions_after(tree, project, after) {
        let p = p.map_err(storage)?;
        if p.requested.0 > *range.end() {
            break;
        }
        if last.as_ref().is_none_or(|(id, _)| *id != p.freight) {
            let f = models::freight(tree, project, &p.freight).map_err(storage)?;
            last = Some((p.freight.clone(), f));
        }
        let freight = last.as_ref().and_then(|(_, f)| f.as_ref());
        let record = PromotionRecord::with_freight(project, &p, freight);
        count += 1;
        let chunk = if csv {
            out.write(&csv_line(record.csv_row())?)
        } else {
            out.write_with(|buf| {
                serde_json::to_writer(&mut *buf, &record)?;
                buf.push(b'\n');
                Ok(())
            })
            .map_err(|e: serde_json::Error| ExportError::Internal(e.to_string()))?
        };
        if let Some(chunk) = chunk {
            send(chunk)?;
        }
    }
    let (items, entry) = out.finish();
    for item in items {
        send(item)?;
    }
    Ok((entry, count))
}

/// [`write_promotions`] on the blocking pool.
pub(super) fn spawn_promotions(
    projections: &Projections,
    spec: &ExportSpec,
    range: std::ops::RangeInclusive<u64>,
    tx: &mpsc::Sender<ExportItem>,
) -> tokio::task::JoinHandle<Result<(FileEntry, u64), ExportError>> {
    let store = projections.store().clone();
    let project = spec.project.as_str().to_string();
    let (csv, tx) = (spec.csv, tx.clone());
    tokio::task::spawn_blocking(move || write_promotions(&store, &project, csv, range, &tx))
}

/// One CSV line (RFC 4180 quoting).
fn csv_line<I, T>(fields: I) -> Result<Vec<u8>, ExportError>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.write_record(fields)
        .map_err(|e| ExportError::Internal(e.to_string()))?;
    w.into_inner()
        .map_err(|e| ExportError::Internal(e.to_string()))
}
