//! A project's working set: a [`ProjectState`] that holds only part of its
//! freight and promotions in memory, the rest being kept elsewhere ([`Cold`]:
//! the projections' read models, or the command service's own store).
//!
//! Deciding and applying need only a few records at a time. Before an event
//! is applied ([`load_for_event`]) or a command decided, what it reads is
//! loaded; afterwards the owner may move what is not needed back out. The
//! records that must stay in memory are the freight a stage runs and the
//! active promotions: [`ProjectState::in_flight`] and the stages read them
//! without a lookup.
//!
//! "The newest freight that ..." scans freight newest first
//! ([`load_newest_available`]) and loads the answer, so that
//! [`ProjectState::newest_where`] finds it.

use chrono::{DateTime, Utc};

use super::availability::available_to;
use super::pipeline::{AutoSelection, PolicyMode, StageDef};
use super::state::{Freight, ProjectState, Promotion};
use crate::envelope::StoredEvent;
use crate::event::EventPayload;

/// Where the records a working set leaves out are kept: each with the value
/// it had when it left memory.
pub trait Cold {
    type Error;
    /// Freight `id`, if it is kept here.
    fn freight(&self, id: &str) -> Result<Option<Freight>, Self::Error>;
    /// Promotion `id`, if it is kept here.
    fn promotion(&self, id: &str) -> Result<Option<Promotion>, Self::Error>;
    /// The ids of the freight kept here, newest discovery first (discovery
    /// time, then id, as [`ProjectState::by_discovery`] orders them), when
    /// looking for the newest available to `stage`. It may leave out freight
    /// it knows to be unavailable to `stage` (see [`Cold::scanned`]).
    fn newest_first(
        &self,
        stage: &StageDef,
    ) -> Box<dyn Iterator<Item = Result<String, Self::Error>> + '_>;

    /// Told after a [`load_newest_available`] scan: every freight kept here
    /// and newer than `until` (discovery time and id; `None`: every freight)
    /// was loaded and found unavailable to `stage`. A freight kept here runs
    /// in no stage, so its availability does not change with time, only
    /// when it is loaded and changed, which it leaves here again.
    fn scanned(&self, stage: &StageDef, until: Option<(DateTime<Utc>, &str)>) {
        let _ = (stage, until);
    }
}

/// What loading for an event found: what it reads and may change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventReads {
    /// Freight the event may change.
    pub freight: Vec<String>,
    /// Freight the event discovers for the first time.
    pub discovered: Option<String>,
    /// The promotion the event names.
    pub promotion: Option<String>,
    /// The event requests that promotion.
    pub requested: bool,
    /// The promotion was active before the event.
    pub was_active: bool,
}

/// The freight an event names.
pub fn freight_of(payload: &EventPayload) -> Option<&str> {
    match payload {
        EventPayload::FreightDiscovered(e) => Some(&e.freight_id),
        EventPayload::VerificationRecorded(e) => Some(&e.freight_id),
        EventPayload::FreightApproved(e) => Some(&e.freight_id),
        EventPayload::PromotionRequested(e) => Some(&e.freight_id),
        _ => None,
    }
}

/// The promotion an event names.
pub fn promotion_of(payload: &EventPayload) -> Option<&str> {
    match payload {
        EventPayload::PromotionRequested(e) => Some(&e.promotion_id),
        EventPayload::PromotionApproved(e) => Some(&e.promotion_id),
        EventPayload::PromotionRejected(e) => Some(&e.promotion_id),
        EventPayload::PromotionStarted(e) => Some(&e.promotion_id),
        EventPayload::PromotionSucceeded(e) => Some(&e.promotion_id),
        EventPayload::PromotionFailed(e) => Some(&e.promotion_id),
        EventPayload::PromotionAborted(e) => Some(&e.promotion_id),
        _ => None,
    }
}

/// Puts freight `id` in memory from `cold` unless it is there; false when
/// it is in neither.
pub fn load_freight<C: Cold>(
    cold: &C,
    state: &mut ProjectState,
    id: &str,
) -> Result<bool, C::Error> {
    if state.freight.contains_key(id) {
        return Ok(true);
    }
    let Some(f) = cold.freight(id)? else {
        return Ok(false);
    };
    state.by_discovery.insert((f.discovered_at, f.id.clone()));
    state.freight.insert(f.id.clone(), Box::new(f));
    Ok(true)
}

/// Puts promotion `id` in memory from `cold` unless it is there; false when
/// it is in neither.
pub fn load_promotion<C: Cold>(
    cold: &C,
    state: &mut ProjectState,
    id: &str,
) -> Result<bool, C::Error> {
    if state.promotions.contains_key(id) {
        return Ok(true);
    }
    let Some(p) = cold.promotion(id)? else {
        return Ok(false);
    };
    state.promotions.insert(p.id.clone(), Box::new(p));
    state.track(id);
    Ok(true)
}

/// Looks at freight newest first until one is available to `stage` at
/// `now`, and loads that one, so that [`ProjectState::newest_where`] on the
/// state finds what it would find with every freight in memory.
pub fn load_newest_available<C: Cold>(
    cold: &C,
    state: &mut ProjectState,
    stage: &StageDef,
    now: DateTime<Utc>,
) -> Result<(), C::Error> {
    let found = scan_newest_available(cold, state, stage, now)?;
    // Only the answer needs to be in memory: the freight newer than it are
    // unavailable, so `newest_where` passes them by anyway.
    let seen = found.map(|Found { at, id, stored }| {
        if let Some(f) = stored {
            state.by_discovery.insert((f.discovered_at, f.id.clone()));
            state.freight.insert(f.id.clone(), Box::new(f));
        }
        (at, id)
    });
    cold.scanned(stage, seen.as_ref().map(|(at, id)| (*at, id.as_str())));
    Ok(())
}

/// The freight [`load_newest_available`] would load, without loading it (a
/// copy; `None`: none is available).
pub fn newest_available<C: Cold>(
    cold: &C,
    state: &ProjectState,
    stage: &StageDef,
    now: DateTime<Utc>,
) -> Result<Option<Freight>, C::Error> {
    Ok(
        scan_newest_available(cold, state, stage, now)?.and_then(|found| {
            found
                .stored
                .or_else(|| state.freight.get(&found.id).map(|f| Freight::clone(f)))
        }),
    )
}

/// The newest freight available to a stage: its discovery time and id, and
/// the freight itself when it came from the store rather than memory.
struct Found {
    at: DateTime<Utc>,
    id: String,
    stored: Option<Freight>,
}

fn scan_newest_available<C: Cold>(
    cold: &C,
    state: &ProjectState,
    stage: &StageDef,
    now: DateTime<Utc>,
) -> Result<Option<Found>, C::Error> {
    // What memory holds already ends the scan: nothing older can be the answer.
    let mut found = state
        .newest_where(|f| available_to(f, stage, now).is_ok())
        .map(|f| Found {
            at: f.discovered_at,
            id: f.id.clone(),
            stored: None,
        });
    for id in cold.newest_first(stage) {
        let id = id?;
        let stored = match state.freight.contains_key(&id) {
            true => None,
            false => match cold.freight(&id)? {
                Some(f) => Some(f),
                None => continue,
            },
        };
        let Some(f) = stored
            .as_ref()
            .or_else(|| state.freight.get(&id).map(|f| &**f))
        else {
            continue;
        };
        if found
            .as_ref()
            .is_some_and(|n| (f.discovered_at, &f.id) <= (n.at, &n.id))
        {
            break;
        }
        if available_to(f, stage, now).is_ok() {
            let at = f.discovered_at;
            found = Some(Found { at, id, stored });
            break;
        }
    }
    Ok(found)
}

/// Loads into `state` what applying `ev` reads, and says what it may change.
pub fn load_for_event<C: Cold>(
    cold: &C,
    state: &mut ProjectState,
    ev: &StoredEvent,
) -> Result<EventReads, C::Error> {
    let payload = &ev.event.payload;
    let mut reads = EventReads::default();
    if let Some(id) = freight_of(payload) {
        let known = load_freight(cold, state, id)?;
        if !known && matches!(payload, EventPayload::FreightDiscovered(_)) {
            reads.discovered = Some(id.to_string());
        }
        reads.freight.push(id.to_string());
    }
    let Some(id) = promotion_of(payload) else {
        return Ok(reads);
    };
    reads.promotion = Some(id.to_string());
    // The promotion (a new one is its request), its freight, and what a
    // success changes: the freight the stage ran until then.
    let (stage, freight, requester) = match payload {
        EventPayload::PromotionRequested(r) => {
            reads.requested = true;
            (
                r.stage.clone(),
                r.freight_id.clone(),
                ev.event.actor.auth_method.clone(),
            )
        }
        _ => {
            load_promotion(cold, state, id)?;
            match state.promotions.get(id) {
                Some(p) => {
                    reads.was_active = p.status.is_active();
                    (
                        p.stage.clone(),
                        p.freight.clone(),
                        p.requested_by.auth_method.clone(),
                    )
                }
                None => return Ok(reads),
            }
        }
    };
    load_freight(cold, state, &freight)?;
    let warehouse = state.freight.get(&freight).map(|f| f.warehouse.clone());
    reads.freight.push(freight);
    let current = warehouse
        .as_deref()
        .and_then(|w| state.stages.get(&stage)?.current_for(w));
    if let Some(current) = current {
        reads.freight.push(current.freight.clone());
    }
    // A person's promotion into an auto stage compares what it promotes
    // with the freight auto-promotion would pick: the newest available of
    // its warehouse.
    let may_succeed = matches!(
        payload,
        EventPayload::PromotionRequested(_)
            | EventPayload::PromotionApproved(_)
            | EventPayload::PromotionSucceeded(_)
    );
    let def = state
        .definition()
        .and_then(|d| d.stage(&stage))
        .filter(|d| may_succeed && requester != "service" && picks_newest(d))
        .and_then(|d| d.for_warehouse(warehouse.as_deref()?));
    if let Some(def) = def {
        load_newest_available(cold, state, &def, ev.event.time)?;
    }
    Ok(reads)
}

/// Auto-promotion runs in `stage` and picks the newest available freight.
pub fn picks_newest(stage: &StageDef) -> bool {
    stage.policy.mode != PolicyMode::Manual && stage.auto_selection == AutoSelection::NewestFreight
}
