//! The paged lists: `ListFreight` (newest first) and `ListPromotions` (in
//! order of request, through the narrowest index that holds every match).

use tonic::Status;
use waybill_ledger::domain::{Promotion, PromotionStatus};
use waybill_ledger::Position;
use waybill_proto::v1 as pb;

use super::support::{blocking, no_stage, page_size};
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
                        .ok_or_else(|| no_stage(&r.project, state.definition(), s))?,
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
        let status = super::support::promotion_status(&r.status)?;
        let shared = self.state(&r.project)?;
        if !r.stage.is_empty() {
            self.known_stage(&shared, &r.project, &r.stage).await?;
        }
        let page = Page::of(&r.page_token, r.newest_first)?;
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
            let active = status.is_some_and(PromotionStatus::is_active);
            // The narrowest index that holds every match, in request order
            // or backwards.
            type Candidates<'a> = Box<dyn Iterator<Item = Result<Promotion, ProjectionError>> + 'a>;
            let candidates: Candidates = match (page, &freight) {
                (_, Some(freight)) => {
                    Box::new(freight_promotions(&projections, &project, freight, page)?)
                }
                (Page::After(after), None) if !stage.is_empty() => Box::new(
                    models::stage_promotions_after(tree, &project, &stage, after),
                ),
                (Page::Before(before), None) if !stage.is_empty() => Box::new(
                    models::stage_promotions_before(tree, &project, &stage, before),
                ),
                (Page::After(after), None) if active => {
                    Box::new(models::active_promotions_after(tree, &project, after))
                }
                (Page::Before(before), None) if active => {
                    Box::new(models::active_promotions_before(tree, &project, before))
                }
                (Page::After(after), None) => {
                    Box::new(models::promotions_after(tree, &project, after))
                }
                (Page::Before(before), None) => {
                    Box::new(models::promotions_before(tree, &project, before))
                }
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
            (true, Some(last)) => page.next_token(last.requested_position),
            _ => String::new(),
        };
        Ok(pb::ListPromotionsReply {
            promotions: list,
            next_page_token,
            position,
        })
    }
}

/// Where a page of promotions starts: after a position, in order of
/// request, or before one, newest first. Its token names it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Page {
    After(Position),
    Before(Position),
}

impl Page {
    /// The page `token` (empty: the first) names, in the order asked for.
    fn of(token: &str, newest_first: bool) -> Result<Page, Status> {
        let (prefix, first) = if newest_first {
            ("before-", Page::Before(Position(u64::MAX)))
        } else {
            ("after-", Page::After(Position::ZERO))
        };
        if token.is_empty() {
            return Ok(first);
        }
        let at = token
            .strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
            .map(Position)
            .ok_or_else(|| {
                Status::invalid_argument(
                    "page_token is not one this server gave for this order (newest_first)",
                )
            })?;
        Ok(if newest_first {
            Page::Before(at)
        } else {
            Page::After(at)
        })
    }

    /// The token of the page that follows one ending at `last`.
    fn next_token(self, last: u64) -> String {
        match self {
            Page::After(_) => format!("after-{last}"),
            Page::Before(_) => format!("before-{last}"),
        }
    }
}

/// The promotions of `freight` on `page`: through the history index of the
/// freight (a request names its freight), not a scan of every promotion.
/// Each is read as the iterator reaches it, so a page reads only what it
/// shows. Blocking.
fn freight_promotions<'a>(
    projections: &'a Projections,
    project: &'a str,
    freight: &str,
    page: Page,
) -> Result<impl Iterator<Item = Result<Promotion, ProjectionError>> + 'a, ProjectionError> {
    let filter = HistoryFilter {
        project: Some(project.to_string()),
        freight: Some(freight.to_string()),
        event_type: Some("PromotionRequested".to_string()),
        ..Default::default()
    };
    let mut ids = Vec::new();
    let each = |h: pb::HistoryEntry| {
        ids.push(h.promotion);
        true
    };
    let store = projections.store();
    match page {
        Page::After(after) => store.history_each(&filter, after.next(), MAX_HISTORY, each)?,
        Page::Before(before) => store.history_back(&filter, before, MAX_HISTORY, each)?,
    }
    Ok(ids
        .into_iter()
        .filter_map(move |id| projections.promotion(project, &id).transpose()))
}
