//! Finding a freight by what people type: its id, its alias, or the start of
//! its id as the tables print it (`waybill status` shows 12 characters).

use std::collections::BTreeSet;

use waybill_ledger::domain::{Freight, FREIGHT_ID_LEN};

use crate::error::ProjectionError;
use crate::keys::{self, model};
use crate::runner::{read, Projections};

/// The shortest start of an id looked up: shorter ones name too much.
pub const MIN_ID_PREFIX: usize = 6;

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

/// Whether `text` may be the start of a freight id: [`MIN_ID_PREFIX`] or
/// more lowercase hex digits, fewer than a whole id.
pub fn is_id_prefix(text: &str) -> bool {
    (MIN_ID_PREFIX..FREIGHT_ID_LEN).contains(&text.len()) && is_lower_hex(text)
}

/// Whether `text` is lowercase hex digits only, as freight ids are.
pub fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lowercase_hex_of_a_useful_length_is_a_prefix() {
        for yes in ["de7f42", "de7f42f3802c", &"a".repeat(39)] {
            assert!(is_id_prefix(yes), "{yes}");
        }
        for no in [
            "de7f4",
            "DE7F42",
            "de7f42-x",
            "v1.4.2",
            "release",
            &"a".repeat(40),
            "",
        ] {
            assert!(!is_id_prefix(no), "{no}");
        }
    }
}
