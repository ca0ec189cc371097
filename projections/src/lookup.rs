//! Finding a freight by what people type: its id, its alias, or the start of
//! its id as the tables print it (`waybill status` shows 12 characters).

use std::collections::BTreeSet;

use waybill_ledger::domain::{is_id_prefix, Freight};

use crate::error::ProjectionError;
use crate::keys::{self, model};
use crate::runner::{read, Projections};

/// How many ids an ambiguous start lists at most.
const SHOWN: usize = 5;

/// What a freight reference names.
#[derive(Debug)]
pub enum FreightLookup {
    /// One freight: by id, by alias, or the only id starting so.
    Found(Box<Freight>),
    /// Several ids start so (at most five of them, sorted).
    Ambiguous(Vec<String>),
    /// Nothing.
    Missing,
}

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
            return Ok(FreightLookup::Found(Box::new(f)));
        }
        if !is_id_prefix(reference) {
            return Ok(FreightLookup::Missing);
        }
        // Freight may be in memory before it is stored, and stored without
        // being in memory: look in both.
        let mut ids = BTreeSet::new();
        if let Some(shared) = self.shared(project) {
            let state = read(&shared);
            ids.extend(
                state
                    .freight
                    .range(reference.to_string()..)
                    .take_while(|(id, _)| id.starts_with(reference))
                    .take(SHOWN)
                    .map(|(id, _)| id.clone()),
            );
        }
        let scope = keys::model_prefix(model::FREIGHT, project).len();
        let stored = keys::model(model::FREIGHT, project, reference.as_bytes());
        for key in self.store().views().scan_prefix(stored).keys().take(SHOWN) {
            ids.insert(String::from_utf8_lossy(&key?[scope..]).into_owned());
        }
        let mut ids: Vec<String> = ids.into_iter().collect();
        match ids.len() {
            0 => Ok(FreightLookup::Missing),
            1 => Ok(self
                .freight(project, &ids[0])?
                .map_or(FreightLookup::Missing, |f| {
                    FreightLookup::Found(Box::new(f))
                })),
            _ => {
                ids.truncate(SHOWN);
                Ok(FreightLookup::Ambiguous(ids))
            }
        }
    }
}
