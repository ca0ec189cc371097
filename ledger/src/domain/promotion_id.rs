//! Promotion ids as people type them: `prm-` and 16 hex digits, or the
//! start of one (`prm-2c0cc3`), as freight ids may be given by their start;
//! and what a start that several ids share is told.

use super::freight_id::{is_lower_hex, MIN_ID_PREFIX};

/// What every promotion id starts with.
pub const PROMOTION_ID_PREFIX: &str = "prm-";

/// Hex digits after [`PROMOTION_ID_PREFIX`] in a whole promotion id.
pub const PROMOTION_ID_HEX: usize = 16;

/// Whether `text` may be the start of a promotion id: `prm-` and
/// [`MIN_ID_PREFIX`] or more lowercase hex digits, fewer than a whole id.
pub fn is_promotion_id_prefix(text: &str) -> bool {
    text.strip_prefix(PROMOTION_ID_PREFIX).is_some_and(|hex| {
        (MIN_ID_PREFIX..PROMOTION_ID_HEX).contains(&hex.len()) && is_lower_hex(hex)
    })
}

/// Why `reference`, `prm-` and hex digits too few to be taken for the
/// start of an id, named no promotion, to follow a "not found"; empty for
/// any other reference.
pub fn short_promotion_start_note(reference: &str) -> String {
    match reference.strip_prefix(PROMOTION_ID_PREFIX) {
        Some(hex) if (1..MIN_ID_PREFIX).contains(&hex.len()) && is_lower_hex(hex) => format!(
            " (the start of a promotion id needs {MIN_ID_PREFIX} hex digits or more after \
             {PROMOTION_ID_PREFIX})"
        ),
        _ => String::new(),
    }
}

/// The refusal of `reference`, the start of more than one `kind` id in
/// `project` (`ids`: some of them), for commands and queries alike.
pub fn ambiguous_start(kind: &str, reference: &str, project: &str, ids: &[String]) -> String {
    format!(
        "{reference:?} is the start of more than one {kind} id in {project} ({}): give more of \
         the id",
        ids.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_of_a_promotion_id() {
        assert!(is_promotion_id_prefix("prm-2c0cc3"));
        assert!(is_promotion_id_prefix("prm-2c0cc382e027ccb"));
        assert!(
            !is_promotion_id_prefix("prm-2c0cc382e027ccb9"),
            "a whole id"
        );
        assert!(!is_promotion_id_prefix("prm-2c0cc"), "too short");
        assert!(!is_promotion_id_prefix("2c0cc382"), "no prm-");
        assert!(!is_promotion_id_prefix("prm-2C0CC3"), "upper case");
        assert!(short_promotion_start_note("prm-2c0c").contains("6 hex digits"));
        assert_eq!(short_promotion_start_note("prm-2c0cc3"), "");
        assert_eq!(short_promotion_start_note("v1.2"), "");
    }
}
