//! The paged lists: `ListFreight` (newest first) and `ListPromotions` (in
//! order of request, through the narrowest index that holds every match).

use tonic::Status;
use waybill_ledger::domain::{Promotion, PromotionStatus};
use waybill_ledger::Position;
use waybill_proto::v1 as pb;

use super::support::{blocking, page_size};
use super::{convert, QueryGrpc};
use crate::models;
use crate::runner::{read, Projections};
use crate::store::{HistoryFilter, MAX_HISTORY};
use crate::ProjectionError;

impl QueryGrpc {
    /// The page of freight `r` asks for, as the read models reflect `position`.
    pub(super) async fn freight_page(
        &self,
        r: &pb::ListFreightRequest,
        position: u64,
    ) -> Result<pb::ListFreightReply, Status> {
        let (configured, stage) = {
            let shared = self.state(&r.project)?;
            let state = read(&shared);
            let stage = match r.available_for.as_str() {
                "" => None,
                s => Some(
                    state
                        .definition()
                        .and_then(|d| d.stage(s))
                        .cloned()
                        .ok_or_else(|| {
                            Status::not_found(format!("project {} has no stage {s:?}", r.project))
                        })?,
                ),
            };
            (convert::configured_stages(&state), stage)
        };
        let before = match r.page_token.as_str() {
            "" => None,
            t => Some(
                t.strip_prefix("before-")
                    .and_then(|h| hex::decode(h).ok())
                    .filter(|k| k.len() > 8)
                    .ok_or_else(|| {
                        Status::invalid_argument("page_token is not one this server gave")
                    })?,
            ),
        };
        let size = page_size(r.page_size);
        let store = self.projections.store().clone();
        let (project, warehouse) = (r.project.clone(), r.warehouse.clone());
        // Newest first; one past the page says whether another follows.
        let now = (self.clock)();
        let (freight, next_page_token) = blocking(move || {
            let mut out = Vec::new();
            let mut last = Vec::new();
            for item in models::freight_newest_first(store.views(), &project, before.as_deref()) {
                let (key, f) = item?;
                if !(warehouse.is_empty() || f.warehouse == warehouse) {
                    continue;
                }
                if out.len() == size {
                    return Ok((out, format!("before-{}", hex::encode(&last))));
                }
                out.push(convert::freight(&f, now, &configured, stage.as_ref()));
                last = key;
            }
            Ok((out, String::new()))
        })
        .await?;
        Ok(pb::ListFreightReply {
            freight,
            next_page_token,
            position,
        })
    }

    /// The page of promotions `r` asks for, as the read models reflect `position`.
    pub(super) async fn promotions_page(
        &self,
        r: &pb::ListPromotionsRequest,
        position: u64,
    ) -> Result<pb::ListPromotionsReply, Status> {
        let status = match r.status.as_str() {
            "" => None,
            name => Some(PromotionStatus::parse(name).ok_or_else(|| {
                let names: Vec<&str> = PromotionStatus::ALL.iter().map(|s| s.name()).collect();
                Status::invalid_argument(format!(
                    "unknown promotion status {name:?}: one of {}",
                    names.join(", ")
                ))
            })?),
        };
        let shared = self.state(&r.project)?;
        if !r.stage.is_empty() {
            self.known_stage(&shared, &r.project, &r.stage).await?;
        }
        let after = match r.page_token.as_str() {
            "" => 0,
            t => t
                .strip_prefix("after-")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    Status::invalid_argument("page_token is not one this server gave")
                })?,
        };
        let size = page_size(r.page_size);
        let freight = match r.freight.as_str() {
            "" => None,
            reference => Some(self.whole_freight_id(&r.project, reference).await?),
        };
        let projections = self.projections.clone();
        let (project, stage) = (r.project.clone(), r.stage.clone());
        // The promotions read model is in order of request: read one past
        // the page to know whether another follows.
        let (list, more) = blocking(move || {
            let tree = projections.store().views();
            let after = Position(after);
            let active = status.is_some_and(PromotionStatus::is_active);
            // The narrowest index that holds every match, in request order.
            let candidates: Box<dyn Iterator<Item = Result<Promotion, ProjectionError>>> =
                if let Some(freight) = &freight {
                    Box::new(freight_promotions(&projections, &project, freight, after)?)
                } else if !stage.is_empty() {
                    Box::new(models::stage_promotions_after(
                        tree, &project, &stage, after,
                    ))
                } else if active {
                    Box::new(models::active_promotions_after(tree, &project, after))
                } else {
                    Box::new(models::promotions_after(tree, &project, after))
                };
            let mut list = Vec::new();
            for p in candidates {
                let p = p?;
                if !(stage.is_empty() || p.stage == stage) || status.is_some_and(|s| s != p.status)
                {
                    continue;
                }
                if list.len() == size {
                    return Ok((list, true));
                }
                let f = projections.freight(&project, &p.freight)?;
                let need = projections.approvals_required(&project, &p);
                list.push(convert::promotion(&p, f.as_ref(), need));
            }
            Ok((list, false))
        })
        .await?;
        let next_page_token = match (more, list.last()) {
            (true, Some(last)) => format!("after-{}", last.requested_position),
            _ => String::new(),
        };
        Ok(pb::ListPromotionsReply {
            promotions: list,
            next_page_token,
            position,
        })
    }
}

/// The promotions of `freight` requested after `after`, in order of request:
/// through the history index of the freight (a request names its freight),
/// not a scan of every promotion. Each is read as the iterator reaches it,
/// so a page reads only what it shows. Blocking.
fn freight_promotions<'a>(
    projections: &'a Projections,
    project: &'a str,
    freight: &str,
    after: Position,
) -> Result<impl Iterator<Item = Result<Promotion, ProjectionError>> + 'a, ProjectionError> {
    let filter = HistoryFilter {
        project: Some(project.to_string()),
        freight: Some(freight.to_string()),
        event_type: Some("PromotionRequested".to_string()),
        ..Default::default()
    };
    let mut ids = Vec::new();
    projections
        .store()
        .history_each(&filter, after.next(), MAX_HISTORY, |h| {
            ids.push(h.promotion);
            true
        })?;
    Ok(ids
        .into_iter()
        .filter_map(move |id| projections.promotion(project, &id).transpose()))
}
