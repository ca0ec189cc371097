//! Bearer tokens, stored as SHA-256 hashes in a TOML file:
//!
//! ```toml
//! [[token]]
//! name = "ci-bot"
//! sha256 = "<hex of SHA-256 of the token>"   # see `hash_token`
//! groups = ["ci"]
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::read_toml;
use super::{AuthError, AuthMethod, Principal, SERVICE_PREFIX};

/// The hex SHA-256 of a plain token: what the tokens file stores.
pub fn hash_token(plain: &str) -> String {
    hex::encode(Sha256::digest(plain.as_bytes()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default, rename = "token")]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    #[serde(default)]
    groups: Vec<String>,
}

struct StoredToken {
    name: String,
    groups: Vec<String>,
    hash: [u8; 32],
}

/// The known tokens, by hash. `Debug` shows names only.
pub(crate) struct TokenStore {
    tokens: Vec<StoredToken>,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenStore")
            .field(
                "names",
                &self.tokens.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What is wrong with `name` as the name of a token, if anything.
pub fn token_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.trim() != name {
        return Some("name must be non-empty and unpadded".to_string());
    }
    if name.starts_with(SERVICE_PREFIX) {
        return Some(format!(
            "names starting with {SERVICE_PREFIX:?} are reserved for services"
        ));
    }
    None
}

/// Reads and checks a tokens file as the server does; returns how many
/// tokens it holds.
pub fn check_tokens_file(path: &Path) -> Result<usize, AuthError> {
    TokenStore::load(path).map(|store| store.len())
}

impl TokenStore {
    /// Reads a tokens file; errors name the file and the offending entry.
    pub(crate) fn load(path: &Path) -> Result<TokenStore, AuthError> {
        let file: TokensFile = read_toml(path, "tokens file")?;
        let fail =
            |what: String| AuthError::config(format!("tokens file {}: {what}", path.display()));
        let mut names = HashSet::new();
        let mut tokens: Vec<StoredToken> = Vec::with_capacity(file.tokens.len());
        for (index, entry) in file.tokens.into_iter().enumerate() {
            let which = format!("token #{} ({:?})", index + 1, entry.name);
            if let Some(problem) = token_name_problem(&entry.name) {
                return Err(fail(format!("{which}: {problem}")));
            }
            if !names.insert(entry.name.clone()) {
                return Err(fail(format!("{which}: the name is used twice")));
            }
            let hash = parse_hash(&entry.sha256)
                .ok_or_else(|| fail(format!("{which}: sha256 must be 64 hex digits")))?;
            if let Some(other) = tokens.iter().find(|t| t.hash == hash) {
                return Err(fail(format!(
                    "{which}: same token hash as {:?}",
                    other.name
                )));
            }
            tokens.push(StoredToken {
                name: entry.name,
                groups: entry.groups,
                hash,
            });
        }
        Ok(TokenStore { tokens })
    }

    /// The principal of `credential`, if it is a known token. Every stored hash
    /// is compared, in constant time, whatever matches.
    pub(crate) fn authenticate(&self, credential: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.hash.ct_eq(&digest)) && found.is_none() {
                found = Some(token);
            }
        }
        found.map(|token| {
            Principal::new(token.name.clone(), token.groups.clone(), AuthMethod::Token)
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_lowercase_hex_sha256() {
        // SHA-256("abc") from FIPS 180-2.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_hash_wants_64_hex_digits() {
        assert!(parse_hash(&hash_token("x")).is_some());
        assert!(parse_hash(&hash_token("x").to_uppercase()).is_some());
        assert!(parse_hash("abcd").is_none());
        assert!(parse_hash(&"g".repeat(64)).is_none());
    }
}
