//! The streaming queries: `History` (a filtered read of the history
//! items, sent in chunks while the rest is read) and `Watch` (history items
//! as the projections apply them, from a position on).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use waybill_ledger::{Position, ProjectName};
use waybill_proto::v1 as pb;

use super::{convert, event_type, opt, parse_time, EntryStream, MayView, QueryGrpc};
use crate::error::ProjectionError;
use crate::runner::Projections;
use crate::store::HistoryFilter;

/// History entries read before the first are sent.
const HISTORY_CHUNK: usize = 100;

impl QueryGrpc {
    /// The entries `History` answers `r` with, of the `visible` projects if
    /// set (the caller has checked access and waited for `r.min_position`).
    pub(super) async fn history_entries(
        &self,
        r: &pb::HistoryRequest,
        visible: Option<Arc<BTreeSet<String>>>,
    ) -> Result<EntryStream, Status> {
        if !r.project.is_empty() {
            ProjectName::project(r.project.as_str())
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let event_type = event_type(&r.event_type)?;
        let (since, until) = (
            parse_time("since", &r.since)?,
            parse_time("until", &r.until)?,
        );
        if let (Some(since), Some(until)) = (since, until) {
            if since >= until {
                return Err(Status::invalid_argument(format!(
                    "since ({}) must be before until ({}): the range is empty",
                    r.since, r.until
                )));
            }
        }
        if !r.project.is_empty() {
            // Names nobody has used are refused rather than answered with
            // nothing: most likely a typo.
            let shared = self.state(&r.project)?;
            if !r.stage.is_empty() {
                self.known_stage(&shared, &r.project, &r.stage).await?;
            }
        }
        // A freight of a project may be named by alias or by the start of
        // its id, as `GetFreight` takes it; the index knows whole ids only.
        let freight = match (r.project.as_str(), r.freight.as_str()) {
            (_, "") => None,
            ("", id) => Some(id.to_string()),
            (project, reference) => Some(self.whole_freight_id(project, reference).await?),
        };
        let mut filter = HistoryFilter {
            project: opt(&r.project),
            stage: opt(&r.stage),
            freight,
            actor: opt(&r.actor),
            event_type,
            promotion: None,
            since,
            until,
            visible,
        };
        let mut from = Position(r.from_position.max(1));
        if !r.promotion.is_empty() {
            // A promotion's events name its freight and follow its request:
            // the freight's index, from there, holds them all (and few else;
            // a stage's index would hold every later event of the stage).
            let promotion = self.named_promotion(&r.project, &r.promotion).await?;
            filter.freight.get_or_insert(promotion.freight);
            filter.promotion = Some(promotion.id);
            from = from.max(promotion.requested);
        }
        let limit = if r.limit == 0 { 1000 } else { r.limit as usize };
        // Backwards: before the position after from_position.
        let back = r.newest_first.then(|| match r.from_position {
            0 => Position(u64::MAX),
            p => Position(p.saturating_add(1)),
        });
        let store = self.projections.store().clone();
        // Entries go out in chunks while the rest is read.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<pb::HistoryEntry>, Status>>(4);
        tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(HISTORY_CHUNK);
            let each = |h| {
                chunk.push(h);
                if chunk.len() < HISTORY_CHUNK {
                    return true;
                }
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(HISTORY_CHUNK));
                tx.blocking_send(Ok(full)).is_ok()
            };
            let read = match back {
                Some(before) => store.history_back(&filter, before, limit, each),
                None => store.history_each(&filter, from, limit, each),
            };
            let last = match read {
                Ok(()) if chunk.is_empty() => return,
                Ok(()) => Ok(chunk),
                Err(e) => Err(Status::internal(e.to_string())),
            };
            let _ = tx.blocking_send(last);
        });
        let entries = ReceiverStream::new(rx).flat_map(|chunk| {
            let items: Vec<Result<pb::HistoryEntry, Status>> = match chunk {
                Ok(chunk) => chunk.into_iter().map(Ok).collect(),
                Err(status) => vec![Err(status)],
            };
            futures::stream::iter(items)
        });
        Ok(Box::pin(entries))
    }

    /// The entries `Watch` answers `r` with, of the projects `may_view`
    /// passes, until the client goes or the server stops (the caller has
    /// checked access to `r.project`).
    pub(super) fn watch_entries(
        &self,
        r: &pb::WatchRequest,
        may_view: MayView,
    ) -> Result<EntryStream, Status> {
        if !r.project.is_empty() {
            ProjectName::project(r.project.as_str())
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let filter = HistoryFilter {
            project: opt(&r.project),
            stage: opt(&r.stage),
            event_type: event_type(&r.event_type)?,
            ..Default::default()
        };
        // Where the entry leaves its promotion: not an index, a filter on
        // what the others pass.
        let status = super::support::promotion_status(&r.promotion_status)?.map(|s| s.name());
        let from = Position(r.from_position.max(1));
        let projections = self.projections.clone();
        let stopping = self.stopping.clone();
        let stream = futures::stream::unfold(
            (from, projections.subscribe(), may_view),
            move |(next, mut applied, may_view)| {
                let projections = projections.clone();
                let filter = filter.clone();
                let mut stopping = stopping.clone();
                async move {
                    let mut next = next;
                    loop {
                        // Everything up to `seen` is in the read models
                        // before this read: what it does not find there
                        // never matches, and is not read again.
                        let seen = *applied.borrow();
                        let store = projections.store().clone();
                        let f = filter.clone();
                        let items =
                            tokio::task::spawn_blocking(move || store.history(&f, next, 256)).await;
                        match items {
                            Ok(Ok(items)) if !items.is_empty() => {
                                let last = items.last().map_or(next, |h| Position(h.position));
                                let out: Vec<_> = items
                                    .into_iter()
                                    .filter(|h| may_view(&h.project))
                                    .filter(|h| status.is_none_or(|s| h.promotion_status == s))
                                    .collect();
                                let p = projections.clone();
                                let out = match tokio::task::spawn_blocking(move || {
                                    with_artifacts(&p, out)
                                })
                                .await
                                {
                                    Ok(Ok(out)) => out.into_iter().map(Ok).collect(),
                                    Ok(Err(e)) => vec![Err(Status::internal(e.to_string()))],
                                    Err(_) => return None,
                                };
                                let state = (last.next(), applied, may_view);
                                return Some((futures::stream::iter(out), state));
                            }
                            Ok(Ok(_)) => {
                                // Nothing new that matches: wait until the
                                // projections move past what was read (other
                                // projects' events move them too), or the
                                // server stops.
                                next = next.max(seen.next());
                                tokio::select! {
                                    moved = applied.wait_for(|p| *p >= next) => {
                                        if moved.is_err() {
                                            return None;
                                        }
                                    }
                                    _ = stopping.wait_for(|s| *s) => return None,
                                }
                            }
                            Ok(Err(e)) => {
                                let out = vec![Err(Status::internal(e.to_string()))];
                                let state = (next, applied, may_view);
                                return Some((futures::stream::iter(out), state));
                            }
                            Err(_) => return None,
                        }
                    }
                }
            },
        )
        .flatten();
        Ok(Box::pin(stream))
    }
}

/// `entries` with what each one's freight holds, read once per freight.
fn with_artifacts(
    projections: &Projections,
    mut entries: Vec<pb::HistoryEntry>,
) -> Result<Vec<pb::HistoryEntry>, ProjectionError> {
    let mut known: HashMap<(String, String), Vec<pb::Artifact>> = HashMap::new();
    for e in entries.iter_mut().filter(|e| !e.freight.is_empty()) {
        let key = (e.project.clone(), e.freight.clone());
        if !known.contains_key(&key) {
            let held = projections.freight(&e.project, &e.freight)?;
            known.insert(
                key.clone(),
                held.as_ref().map(convert::artifacts).unwrap_or_default(),
            );
        }
        e.freight_artifacts = known[&key].clone();
    }
    Ok(entries)
}
