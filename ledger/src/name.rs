//! Names of projects, stages, warehouses and checks.
//!
//! They become NATS subject tokens, so they follow one strict rule:
//! `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?` (a DNS label).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::LedgerError;

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 63;

/// A validated project, stage, warehouse or check name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// A project is named like any other entity.
pub type ProjectName = Name;

/// The project of log-wide events (signed checkpoints). It is outside the name
/// rule, so no user project can take it, and only `CheckpointSigned` events go there.
pub const AUDIT_PROJECT: &str = "_audit";

impl Name {
    /// Validates `value` as a name of the given kind (used in the error message).
    pub fn parse(kind: &'static str, value: impl Into<String>) -> Result<Self, LedgerError> {
        let value = value.into();
        match name_problem(&value) {
            None => Ok(Name(value)),
            Some(problem) => Err(LedgerError::Invalid {
                field: kind.to_string(),
                reason: format!("{value:?} is not a valid {kind} name: {problem}"),
            }),
        }
    }

    /// Validates a project name.
    pub fn project(value: impl Into<String>) -> Result<Self, LedgerError> {
        Self::parse("project", value)
    }

    /// The project of log-wide events, [`AUDIT_PROJECT`].
    pub fn audit() -> Self {
        Name(AUDIT_PROJECT.to_string())
    }

    /// A project as it may appear in the log: a valid name or [`AUDIT_PROJECT`].
    pub fn log_project(value: impl Into<String>) -> Result<Self, LedgerError> {
        let value = value.into();
        if value == AUDIT_PROJECT {
            return Ok(Self::audit());
        }
        Self::project(value)
    }

    /// Is this the project of log-wide events?
    pub fn is_audit(&self) -> bool {
        self.0 == AUDIT_PROJECT
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a name without building one; `None` when it is valid.
pub fn name_problem(value: &str) -> Option<&'static str> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Some("it is empty");
    }
    if bytes.len() > MAX_NAME_LEN {
        return Some("it is longer than 63 characters");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Some("only lowercase letters, digits and '-' are allowed");
    }
    if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Some("it must start and end with a letter or digit");
    }
    None
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = LedgerError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Name::parse("entity", value)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

/// The name among `names` most like `given`, a misspelling of it
/// (`dve` → `dev`, `recordonly` → `record_only`, `newest` →
/// `NewestFreight`), if one is close. Case, `_` and `-` aside: a name within
/// one edit (a letter added, dropped, changed or two swapped) per three
/// letters of `given` is close, the fewest edits first; so is one with a
/// Jaro-Winkler similarity of 0.8 or more (a shared beginning), the most
/// similar first.
pub fn closest_name<'a>(given: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let plain = |name: &str| name.to_lowercase().replace(['_', '-'], "");
    let given = plain(given);
    let most_edits = (given.chars().count() / 3).max(1);
    let mut best: Option<(usize, f64, &str)> = None;
    for name in names {
        let name_plain = plain(name);
        let edits = strsim::damerau_levenshtein(&given, &name_plain);
        let similarity = strsim::jaro_winkler(&given, &name_plain);
        if edits > most_edits && similarity < 0.8 {
            continue;
        }
        // Names within the edits rank before the others, by edits.
        let rank = edits.min(most_edits + 1);
        let better = best.is_none_or(|(r, s, _)| rank < r || (rank == r && similarity > s));
        if better {
            best = Some((rank, similarity, name));
        }
    }
    best.map(|(_, _, name)| name)
}

/// ` (did you mean "dev"?)` when a name in `names` is like `given`, else
/// nothing: for the end of a message about an unknown name.
pub fn did_you_mean<'a>(given: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    closest_name(given, names).map_or_else(String::new, |n| format!(" (did you mean {n:?}?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "p1", "my-project", "0", &"a".repeat(63)] {
            assert!(name_problem(ok).is_none(), "{ok}");
        }
    }

    #[test]
    fn rejects_subject_hostile_names() {
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a.b",
            "a*",
            "a>",
            "a b",
            "a_b",
            "é",
            "a\n",
            &"a".repeat(64),
        ] {
            assert!(Name::project(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_misspelled_name_finds_the_one_meant() {
        let stages = ["dev", "staging", "prod"];
        assert_eq!(closest_name("dve", stages), Some("dev"));
        assert_eq!(closest_name("stagign", stages), Some("staging"));
        assert_eq!(closest_name("Prod", stages), Some("prod"));
        assert_eq!(closest_name("qa", stages), None);
        assert_eq!(closest_name("canary", stages), None);
        // Fewer edits win over a shared beginning.
        assert_eq!(
            closest_name("record_onyl", ["record_only", "record"]),
            Some("record_only")
        );
        assert_eq!(
            closest_name("newest", ["NewestFreight", "MatchUpstream"]),
            Some("NewestFreight")
        );
    }
}
