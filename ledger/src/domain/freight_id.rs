//! Freight ids: a content hash of the origin and the sorted artifacts, so the
//! same inputs always give the same id and any change gives a new one.

use sha2::{Digest, Sha256};

use crate::event::{Artifact, ArtifactKind};

/// Hex digits in a freight id (160 bits of SHA-256).
pub const FREIGHT_ID_LEN: usize = 40;

/// The id of the freight made of `artifacts` from warehouse `origin`.
pub fn freight_id(origin: &str, artifacts: &[Artifact]) -> String {
    let mut sorted: Vec<&Artifact> = artifacts.iter().collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    hasher.update(b"waybill-freight-v1\n");
    hasher.update(origin.as_bytes());
    hasher.update(b"\n");
    for a in sorted {
        let kind = match a.kind {
            ArtifactKind::Image => "image",
            ArtifactKind::Git => "git",
            ArtifactKind::Chart => "chart",
        };
        for part in [kind, &a.name, &a.version, &a.digest] {
            // Length-prefixed, so no choice of strings can collide with another.
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
    }
    let mut id = hex::encode(hasher.finalize());
    id.truncate(FREIGHT_ID_LEN);
    id
}

/// The shortest start of an id taken for the id it starts: shorter ones
/// name too much.
pub const MIN_ID_PREFIX: usize = 6;

/// Whether `text` may be the start of a freight id: [`MIN_ID_PREFIX`] or
/// more lowercase hex digits, fewer than a whole id.
pub fn is_id_prefix(text: &str) -> bool {
    (MIN_ID_PREFIX..FREIGHT_ID_LEN).contains(&text.len()) && is_lower_hex(text)
}

/// Why `reference`, hex digits too few to be taken for the start of an id,
/// named no freight (" (the start of an id needs 6 hex digits or more)"),
/// to follow a "not found"; empty for any other reference.
pub fn short_start_note(reference: &str) -> String {
    if (1..MIN_ID_PREFIX).contains(&reference.len()) && is_lower_hex(reference) {
        format!(" (the start of an id needs {MIN_ID_PREFIX} hex digits or more)")
    } else {
        String::new()
    }
}

/// Whether `text` is lowercase hex digits only, as freight ids are.
pub fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tag: &str) -> Artifact {
        Artifact {
            kind: ArtifactKind::Image,
            name: "ghcr.io/acme/shop".into(),
            version: tag.into(),
            digest: format!("sha256:{tag}"),
        }
    }

    #[test]
    fn same_inputs_same_id_any_change_new_id() {
        let git = Artifact {
            kind: ArtifactKind::Git,
            name: "https://git/acme/shop".into(),
            version: "main".into(),
            digest: "abc123".into(),
        };
        let a = freight_id("images", &[image("1.0"), git.clone()]);
        assert_eq!(
            a,
            freight_id("images", &[git.clone(), image("1.0")]),
            "order-free"
        );
        assert_eq!(a.len(), FREIGHT_ID_LEN);
        assert_ne!(a, freight_id("images", &[image("1.1"), git.clone()]));
        assert_ne!(a, freight_id("other", &[image("1.0"), git]));
    }

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
