//! C2SP tlog checkpoints (<https://c2sp.org/tlog-checkpoint>): the signed note
//! text that states a log's tree size and root.
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeros>
//! <base64 root hash>
//! [<extension line>...]
//! ```
//!
//! Every line ends with a newline and none is empty. Parsing is strict, so a
//! body has exactly one accepted spelling; that the log's key name matches the
//! origin is a recommendation of the spec that is not checked here.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};

use super::keys::VerifierKey;
use super::merkle::Hash;
use super::note::{control_character, NoteError, SignedNote};

/// A C2SP tlog-checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `example.com/log42`.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root of the tree of `size` leaves.
    pub root: Hash,
    /// Opaque extension lines (without newlines); not recommended.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: origin, size, base64 root and each extension, one per
    /// line. Only a checkpoint that passes [`Checkpoint::validate`] gives a
    /// body that parses back to it.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        );
        for extension in &self.extensions {
            body.push_str(extension);
            body.push('\n');
        }
        body
    }

    /// Checks that the origin and the extensions are non-empty single lines
    /// without control characters, so that [`Checkpoint::body`] round-trips.
    pub fn validate(&self) -> Result<(), NoteError> {
        check_line(1, "origin", &self.origin)?;
        for (n, extension) in self.extensions.iter().enumerate() {
            check_line(4 + n, "extension line", extension)?;
        }
        Ok(())
    }

    /// Parses a checkpoint body strictly: a non-empty origin, a decimal tree
    /// size without leading zeros (except `0`), a base64 32-byte root hash and
    /// non-empty extension lines, each ending with a newline.
    pub fn parse(body: &str) -> Result<Checkpoint, NoteError> {
        let error = |line: usize, reason: String| NoteError::MalformedCheckpoint { line, reason };
        if let Some((line, c)) = control_character(body) {
            return Err(error(line, format!("contains control character {c:?}")));
        }
        let Some(body) = body.strip_suffix('\n') else {
            let line = body.matches('\n').count() + 1;
            return Err(error(line, "does not end with a newline".into()));
        };
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        check_line(1, "origin", origin)?;
        let missing = |line, what: &str| error(line, format!("missing: expected the {what}"));
        let size = parse_size(lines.next().ok_or_else(|| missing(2, "tree size"))?)
            .map_err(|reason| error(2, reason))?;
        let root = parse_root(lines.next().ok_or_else(|| missing(3, "root hash"))?)
            .map_err(|reason| error(3, reason))?;
        let mut extensions = Vec::new();
        for (n, line) in lines.enumerate() {
            check_line(4 + n, "extension line", line)?;
            extensions.push(line.to_string());
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// Parses a signed checkpoint note, checks that `key` signed it (see
    /// [`SignedNote::verify`]) and returns the checkpoint.
    pub fn open(note: &str, key: &VerifierKey) -> Result<Checkpoint, NoteError> {
        let note = SignedNote::parse(note)?;
        note.verify(key)?;
        Checkpoint::parse(&note.text)
    }
}

fn check_line(line: usize, what: &str, text: &str) -> Result<(), NoteError> {
    let reason = if text.is_empty() {
        format!("the {what} is empty")
    } else if text.contains('\n') {
        format!("the {what} contains a newline")
    } else if let Some((_, c)) = control_character(text) {
        format!("the {what} contains control character {c:?}")
    } else {
        return Ok(());
    };
    Err(NoteError::MalformedCheckpoint { line, reason })
}

fn parse_size(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("the tree size is empty".into());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("tree size {text:?} is not a decimal number"));
    }
    if text.len() > 1 && text.starts_with('0') {
        return Err(format!("tree size {text:?} has a leading zero"));
    }
    text.parse()
        .map_err(|_| format!("tree size {text:?} does not fit in 64 bits"))
}

fn parse_root(text: &str) -> Result<Hash, String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|_| format!("root hash {text:?} is not valid base64"))?;
    let len = bytes.len();
    Hash::try_from(bytes).map_err(|_| format!("root hash has {len} bytes, not 32"))
}
