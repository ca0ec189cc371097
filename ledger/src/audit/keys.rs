//! Ed25519 note keys, in the text formats of C2SP signed-note
//! (<https://c2sp.org/signed-note>) and Go's `golang.org/x/mod/sumdb/note`:
//!
//! - verifier key: `<name>+<hex key id>+<base64(0x01 || 32-byte public key)>`;
//! - signer key: `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>`;
//! - key id: the first 4 bytes of `SHA-256(name || 0x0A || 0x01 || public key)`.
//!
//! Key names are non-empty and contain no `+`, no Unicode white space and no
//! control character. Signatures are checked with Ed25519's strict
//! verification (no small-order keys or non-canonical encodings), which every
//! honestly made signature passes.

use std::fmt;

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use super::note::{check_text, NoteError};

/// The signature type byte of Ed25519 in note keys and key ids.
const ED25519: u8 = 0x01;
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";
const SIGNER: &str = "signer key";
const VERIFIER: &str = "verifier key";

/// A note signing key: a key name and an Ed25519 private key.
///
/// `Debug` shows the name and key id, never the secret; [`SignerKey::encode`]
/// gives the secret text form, to be stored as a secret.
pub struct SignerKey {
    key: SigningKey,
    verifier: VerifierKey,
}

impl SignerKey {
    /// Generates a new key from the operating system's random number generator.
    pub fn generate(name: &str) -> Result<SignerKey, NoteError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|err| NoteError::Randomness(err.to_string()))?;
        Ok(SignerKey::from_seed(name, &seed))
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`, with
    /// surrounding white space ignored, and checks that the key id is this key's.
    /// Errors never quote the key material.
    pub fn parse(text: &str) -> Result<SignerKey, NoteError> {
        let rest = text
            .trim()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or_else(|| malformed(SIGNER, format!("does not start with {PRIVATE_PREFIX:?}")))?;
        let (name, stated, seed) = split_key(SIGNER, rest)?;
        let key = SignerKey::from_seed(name, &seed);
        check_id(SIGNER, name, stated, key.verifier.id)?;
        Ok(key)
    }

    /// The text form [`SignerKey::parse`] reads. It contains the secret.
    pub fn encode(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{PRIVATE_PREFIX}{}+{}+{}",
            self.verifier.name,
            hex::encode(self.verifier.id),
            BASE64.encode(key)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.verifier.name
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> VerifierKey {
        self.verifier.clone()
    }

    /// Signs note `text` and returns the signed note:
    /// `text + "\n" + "— <name> <base64(key id || signature)>\n"`.
    ///
    /// The text must be non-empty, end with a newline and contain no control
    /// character other than newline; it may contain blank lines (the signed
    /// note splits at its last blank line).
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut bytes = self.verifier.id.to_vec();
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.verifier.name,
            BASE64.encode(bytes)
        ))
    }

    fn from_seed(name: &str, seed: &[u8; 32]) -> SignerKey {
        let key = SigningKey::from_bytes(seed);
        let verifier = VerifierKey::from_key(name, key.verifying_key());
        SignerKey { key, verifier }
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.verifier.name)
            .field("key_id", &hex::encode(self.verifier.id))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A note verifier key: a key name and an Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key: VerifyingKey,
    id: [u8; 4],
}

impl VerifierKey {
    /// Parses `<name>+<hex key id>+<base64(0x01 || public key)>`, with
    /// surrounding white space ignored, and checks that the key id is this key's.
    pub fn parse(text: &str) -> Result<VerifierKey, NoteError> {
        let (name, stated, key) = split_key(VERIFIER, text.trim())?;
        let key = VerifyingKey::from_bytes(&key)
            .map_err(|_| malformed(VERIFIER, "the public key is not a valid Ed25519 point"))?;
        if key.is_weak() {
            return Err(malformed(
                VERIFIER,
                "the public key is a small-order (weak) point",
            ));
        }
        let verifier = VerifierKey::from_key(name, key);
        check_id(VERIFIER, name, stated, verifier.id)?;
        Ok(verifier)
    }

    /// The text form [`VerifierKey::parse`] reads (also its `Display`).
    pub fn encode(&self) -> String {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            BASE64.encode(key)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id: the first 4 bytes of `SHA-256(name || 0x0A || 0x01 || public key)`.
    pub fn key_id(&self) -> [u8; 4] {
        self.id
    }

    /// `<name>+<hex key id>`, how errors name a key.
    pub(crate) fn label(&self) -> String {
        key_label(&self.name, self.id)
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .is_ok_and(|signature| self.key.verify_strict(message, &signature).is_ok())
    }

    fn from_key(name: &str, key: VerifyingKey) -> VerifierKey {
        let mut hasher = Sha256::new();
        hasher.update(name.as_bytes());
        hasher.update([b'\n', ED25519]);
        hasher.update(key.as_bytes());
        let digest = hasher.finalize();
        let id = [digest[0], digest[1], digest[2], digest[3]];
        VerifierKey {
            name: name.to_string(),
            key,
            id,
        }
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({})", self.encode())
    }
}

/// `<name>+<hex key id>`.
pub(crate) fn key_label(name: &str, id: [u8; 4]) -> String {
    format!("{name}+{}", hex::encode(id))
}

/// Checks a key name: non-empty, no `+`, no white space, no control character.
pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.contains('+') {
        "it contains '+'"
    } else if name.chars().any(char::is_whitespace) {
        "it contains white space"
    } else if name.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(NoteError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// Splits `<name>+<hex id>+<base64(0x01 || 32 bytes)>` and checks each part.
fn split_key<'a>(
    kind: &'static str,
    text: &'a str,
) -> Result<(&'a str, [u8; 4], [u8; 32]), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(kind, "expected <name>+<key id>+<key>"));
    };
    check_name(name)?;
    let mut stated = [0u8; 4];
    if id.len() != 8 || hex::decode_to_slice(id, &mut stated).is_err() {
        return Err(malformed(
            kind,
            format!("key id {id:?} is not 8 hex digits"),
        ));
    }
    let bytes = BASE64
        .decode(key)
        .map_err(|_| malformed(kind, "the key is not valid base64"))?;
    match bytes.split_first() {
        Some((&ED25519, rest)) => {
            let key = <[u8; 32]>::try_from(rest).map_err(|_| {
                malformed(
                    kind,
                    format!("an Ed25519 key has 32 bytes, not {}", rest.len()),
                )
            })?;
            Ok((name, stated, key))
        }
        Some((&algorithm, _)) => Err(NoteError::UnknownAlgorithm { kind, algorithm }),
        None => Err(malformed(kind, "the key is empty")),
    }
}

fn check_id(
    kind: &'static str,
    name: &str,
    stated: [u8; 4],
    actual: [u8; 4],
) -> Result<(), NoteError> {
    if stated == actual {
        return Ok(());
    }
    Err(NoteError::KeyIdMismatch {
        kind,
        name: name.to_string(),
        stated: hex::encode(stated),
        computed: hex::encode(actual),
    })
}

fn malformed(kind: &'static str, reason: impl Into<String>) -> NoteError {
    NoteError::MalformedKey {
        kind,
        reason: reason.into(),
    }
}
