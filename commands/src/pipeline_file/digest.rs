//! The digest of a pipeline file, recorded with the definition it produced so
//! that an applied policy can be traced to the exact bytes that were reviewed.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of the file's bytes (as read, before any parsing).
pub fn source_digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_the_sha256_of_the_bytes() {
        assert_eq!(
            source_digest(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            source_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(
            source_digest("project: a\n"),
            source_digest("project: a \n")
        );
    }
}
