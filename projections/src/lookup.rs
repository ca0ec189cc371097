//! Finding a freight or a promotion by what people type: a freight's id,
//! its alias, or the start of its id as the tables print it (`waybill
//! status` shows 12 characters); a promotion's id or its start
//! (`prm-2c0cc3`).

use std::collections::{BTreeMap, BTreeSet};

use waybill_ledger::domain::{is_id_prefix, is_promotion_id_prefix, Freight, Promotion};

use crate::error::ProjectionError;
use crate::keys::{self, model};
use crate::runner::{read, Projections};

/// How many ids an ambiguous start lists at most.
const SHOWN: usize = 5;

/// What a reference names.
#[derive(Debug)]
pub enum Lookup<T> {
    /// One: by id (or a freight's alias), or the only id starting so.
    Found(Box<T>),
    /// Several ids start so (at most five of them, sorted).
    Ambiguous(Vec<String>),
    /// Nothing.
    Missing,
}

/// What a freight reference names.
pub type FreightLookup = Lookup<Freight>;

/// What a promotion reference names.
pub type PromotionLookup = Lookup<Promotion>;

impl Projections {
    /// The freight `reference` names in `project`: an id or an alias (as
    /// [`Projections::freight`]), else the one id that starts with it.
    /// Blocking.
    pub fn find_freight(
        &self,
        project: &str,
        reference: &str,
    ) -> Result<FreightLookup, ProjectionError> {
        if let Some(f) = self.freight(project, reference)? {
            return Ok(Lookup::Found(Box::new(f)));
        }
        if !is_id_prefix(reference) {
            return Ok(Lookup::Missing);
        }
        let in_memory = self.shared(project).map(|shared| {
            let state = read(&shared);
            starting(&state.freight, reference)
        });
        let ids = self.ids_starting(model::FREIGHT, project, reference, in_memory)?;
        settle(ids, |id| self.freight(project, id))
    }

    /// The promotion `reference` names in `project`: its id, else the one
    /// id that starts with it. Blocking.
    pub fn find_promotion(
        &self,
        project: &str,
        reference: &str,
    ) -> Result<PromotionLookup, ProjectionError> {
        if let Some(p) = self.promotion(project, reference)? {
            return Ok(Lookup::Found(Box::new(p)));
        }
        if !is_promotion_id_prefix(reference) {
            return Ok(Lookup::Missing);
        }
        let in_memory = self.shared(project).map(|shared| {
            let state = read(&shared);
            starting(&state.promotions, reference)
        });
        let ids = self.ids_starting(model::PROMOTION_ID, project, reference, in_memory)?;
        settle(ids, |id| self.promotion(project, id))
    }

    /// The ids starting with `start`: those `in_memory` (a record may be in
    /// memory before it is stored) and those stored under model `kind`.
    fn ids_starting(
        &self,
        kind: u8,
        project: &str,
        start: &str,
        in_memory: Option<Vec<String>>,
    ) -> Result<Vec<String>, ProjectionError> {
        let mut ids: BTreeSet<String> = in_memory.unwrap_or_default().into_iter().collect();
        let scope = keys::model_prefix(kind, project).len();
        let stored = keys::model(kind, project, start.as_bytes());
        for key in self.store().views().scan_prefix(stored).keys().take(SHOWN) {
            ids.insert(String::from_utf8_lossy(&key?[scope..]).into_owned());
        }
        Ok(ids.into_iter().collect())
    }
}

/// The first keys of `map` that start with `start`.
fn starting<V>(map: &BTreeMap<String, V>, start: &str) -> Vec<String> {
    map.range(start.to_string()..)
        .take_while(|(id, _)| id.starts_with(start))
        .take(SHOWN)
        .map(|(id, _)| id.clone())
        .collect()
}

/// What `ids` (sorted) name: the one of them, read with `get`, or several.
fn settle<T>(
    mut ids: Vec<String>,
    get: impl FnOnce(&str) -> Result<Option<T>, ProjectionError>,
) -> Result<Lookup<T>, ProjectionError> {
    match ids.len() {
        0 => Ok(Lookup::Missing),
        1 => Ok(get(&ids[0])?.map_or(Lookup::Missing, |x| Lookup::Found(Box::new(x)))),
        _ => {
            ids.truncate(SHOWN);
            Ok(Lookup::Ambiguous(ids))
        }
    }
}
