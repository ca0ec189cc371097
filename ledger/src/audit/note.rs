//! C2SP signed notes (<https://c2sp.org/signed-note>), as Go's
//! `golang.org/x/mod/sumdb/note` writes them:
//!
//! ```text
//! <text, ending in a newline, possibly with blank lines>
//!
//! — <key name> <base64(4-byte key id || signature)>
//! — <another key name> <base64(...)>
//! ```
//!
//! The text and the signatures are separated by the note's last blank line;
//! the signature covers the text including its final newline. A note is valid
//! UTF-8 with no control character other than newline, and has at least one
//! and at most 100 signature lines.
//!
//! Verification follows the spec: signatures by other keys are ignored; a key
//! must have signed the note, and every signature carrying its name and key id
//! must verify (one that does not rejects the note).

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};

use super::keys::{check_name, key_label, VerifierKey};

/// The most signature lines a note may have (as in Go's implementation; the
/// spec requires accepting at least 16).
const MAX_SIGNATURES: usize = 100;
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// What is wrong with a key, note or checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    /// A key name is not allowed.
    #[error("invalid key name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is not allowed.
        reason: &'static str,
    },
    /// A key's text form is malformed.
    #[error("malformed {kind}: {reason}")]
    MalformedKey {
        /// `signer key` or `verifier key`.
        kind: &'static str,
        /// What is wrong (never quoting secret key material).
        reason: String,
    },
    /// A key uses a signature type other than Ed25519.
    #[error("{kind} has signature type {algorithm:#04x}; only Ed25519 (0x01) is supported")]
    UnknownAlgorithm {
        /// `signer key` or `verifier key`.
        kind: &'static str,
        /// The signature type byte.
        algorithm: u8,
    },
    /// A key's stated id is not the id of its key material.
    #[error("{kind} {name:?} states key id {stated}, but its key has id {computed}")]
    KeyIdMismatch {
        /// `signer key` or `verifier key`.
        kind: &'static str,
        /// The key name.
        name: String,
        /// The id in the text, hex.
        stated: String,
        /// The id computed from the name and public key, hex.
        computed: String,
    },
    /// The operating system's random number generator failed.
    #[error("cannot generate a key: the system random number generator failed: {0}")]
    Randomness(String),
    /// The text given to sign cannot be a note text.
    #[error("cannot sign: {0}")]
    InvalidText(String),
    /// A signed note is malformed.
    #[error("malformed signed note: {0}")]
    MalformedNote(String),
    /// The note carries no signature by this key (name and key id).
    #[error("the note has no signature by {key}; it is signed by {}", present.join(", "))]
    NoSignatureByKey {
        /// The key looked for, `<name>+<hex key id>`.
        key: String,
        /// The keys that did sign, `<name>+<hex key id>`.
        present: Vec<String>,
    },
    /// The note carries a signature by this key that does not verify.
    #[error("the signature by {key} does not verify: the note was altered or forged")]
    InvalidSignature {
        /// The key, `<name>+<hex key id>`.
        key: String,
    },
    /// A checkpoint body is malformed.
    #[error("checkpoint line {line}: {reason}")]
    MalformedCheckpoint {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// A parsed signed note. Parsing checks the syntax only; [`SignedNote::verify`]
/// checks signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text, including its final newline.
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id (the first 4 signature bytes).
    pub key_id: [u8; 4],
    /// The signature proper (the bytes after the key id).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// `name+keyid`, as keys are named in messages.
    pub fn label(&self) -> String {
        key_label(&self.name, self.key_id)
    }
}

impl SignedNote {
    /// Whether a signature line carries `key`'s name and id (not whether it
    /// verifies: [`SignedNote::verify`]).
    pub fn signed_by(&self, key: &VerifierKey) -> bool {
        self.signatures
            .iter()
            .any(|s| s.name == key.name() && s.key_id == key.key_id())
    }

    /// Parses a signed note: splits it at its last blank line and reads every
    /// signature line as `— <name> <base64(key id || signature)>`.
    pub fn parse(note: &str) -> Result<SignedNote, NoteError> {
        let malformed = |reason: String| NoteError::MalformedNote(reason);
        if let Some((line, c)) = control_character(note) {
            return Err(malformed(format!(
                "line {line} contains control character {c:?}"
            )));
        }
        let split = note.rfind("\n\n").ok_or_else(|| {
            malformed("no blank line separates the text from the signatures".into())
        })?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        let Some(signatures) = signatures.strip_suffix('\n') else {
            return Err(malformed(if signatures.is_empty() {
                "no signature lines follow the last blank line".into()
            } else {
                "the last signature line does not end with a newline".into()
            }));
        };
        // Text lines, then the blank line, then the signatures.
        let first = text.matches('\n').count() + 2;
        let mut parsed = Vec::new();
        for (n, line) in signatures.split('\n').enumerate() {
            let line_no = first + n;
            if n == MAX_SIGNATURES {
                return Err(malformed(format!("more than {MAX_SIGNATURES} signatures")));
            }
            parsed.push(
                parse_signature(line)
                    .map_err(|reason| malformed(format!("line {line_no}: {reason}")))?,
            );
        }
        Ok(SignedNote {
            text: text.to_string(),
            signatures: parsed,
        })
    }

    /// Checks that `key` (name and key id) signed this note.
    ///
    /// Fails with [`NoteError::NoSignatureByKey`] (listing the keys that did
    /// sign) if no signature carries this key's name and id, and with
    /// [`NoteError::InvalidSignature`] if one does but does not verify.
    pub fn verify(&self, key: &VerifierKey) -> Result<(), NoteError> {
        let mut found = false;
        for signature in &self.signatures {
            if signature.name == key.name() && signature.key_id == key.key_id() {
                if !key.verifies(self.text.as_bytes(), &signature.signature) {
                    return Err(NoteError::InvalidSignature { key: key.label() });
                }
                found = true;
            }
        }
        if found {
            return Ok(());
        }
        Err(NoteError::NoSignatureByKey {
            key: key.label(),
            present: self
                .signatures
                .iter()
                .map(|s| key_label(&s.name, s.key_id))
                .collect(),
        })
    }
}

fn parse_signature(line: &str) -> Result<NoteSignature, String> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or("a signature line starts with an em dash (U+2014) and a space")?;
    let (name, encoded) = rest
        .split_once(' ')
        .ok_or("a signature line has a key name, a space and a signature")?;
    check_name(name).map_err(|err| err.to_string())?;
    let bytes = BASE64
        .decode(encoded)
        .map_err(|_| format!("the signature by {name:?} is not valid base64"))?;
    match bytes.split_first_chunk::<4>() {
        Some((&key_id, signature)) if !signature.is_empty() => Ok(NoteSignature {
            name: name.to_string(),
            key_id,
            signature: signature.to_vec(),
        }),
        _ => Err(format!(
            "the signature by {name:?} has {} bytes, too few for a key id and a signature",
            bytes.len()
        )),
    }
}

/// Checks that `text` can be signed: non-empty, ending in a newline, with no
/// control character but newline.
pub(crate) fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() {
        return Err(NoteError::InvalidText("the note text is empty".into()));
    }
    if !text.ends_with('\n') {
        return Err(NoteError::InvalidText(
            "the note text does not end with a newline".into(),
        ));
    }
    if let Some((line, c)) = control_character(text) {
        return Err(NoteError::InvalidText(format!(
            "line {line} of the note text contains control character {c:?}"
        )));
    }
    Ok(())
}

/// The first character below U+0020 other than newline, with its 1-based line.
pub(crate) fn control_character(text: &str) -> Option<(usize, char)> {
    let mut line = 1;
    for c in text.chars() {
        match c {
            '\n' => line += 1,
            c if c < ' ' => return Some((line, c)),
            _ => {}
        }
    }
    None
}
