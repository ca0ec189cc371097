//! Key layout of the projection store: one sled tree `views`, so that every
//! batch of read models, indexes and the checkpoint is atomic.
//!
//! | key                               | value                                   |
//! |-----------------------------------|-----------------------------------------|
//! | `c`                               | last applied position (8, big-endian)   |
//! | `k` project 0x00                  | the project: position, seq, latest time |
//! |                                   | and its stages (JSON, see `models`)     |
//! | `l` project 0x00                  | the pipeline in force (JSON)            |
//! | `f` project 0x00 freight id       | a freight and its status (JSON)         |
//! | `a` project 0x00 alias            | the freight id the alias names          |
//! | `d` project 0x00 time(8) id       | empty: freight in order of discovery    |
//! | `r` project 0x00 pos(8)           | the promotion requested at pos (JSON)   |
//! | `i` project 0x00 promotion id     | its request position (8)                |
//! | `q` project 0x00 pos(8)           | empty: the promotion is active          |
//! | `h` bucket(8)                     | the positions of a bucket of 4,096, and |
//! |                                   | their projects (see `postings`)         |
//! | `x` `p` project 0x00 pos(8)       | latest event time of the project up to  |
//! |                                   | pos and the event's time (8 each:       |
//! |                                   | nanoseconds, sign bit flipped), then    |
//! |                                   | the history entry (protobuf)            |
//! | `x` `a`/`t` value 0x00 bucket(8)  | actor / event type index: positions     |
//! |                                   | and their projects (see `postings`)     |
//! | `x` `s`/`f` value 0x00 bucket(8)  | project/stage, project/freight index:   |
//! |                                   | positions (see `postings`)              |
//! | `g` project 0x00 pos(8)           | stage list in force from pos (protobuf   |
//! |                                   | `ListStagesReply`, stage names only)     |
//! | `w` project 0x00 stage 0x00 pos(8)| the stage as `ListStages` showed it from |
//! |                                   | pos (protobuf `Stage`)                   |
//! | `V`                               | store format version (8, big-endian)     |
//!
//! Index kinds: `a` actor, `p` project, `s` project/stage, `f` project/freight,
//! `t` event type.

use waybill_ledger::Position;

pub const CHECKPOINT: &[u8] = b"c";
pub const FORMAT: &[u8] = b"V";

/// The layout written by this version; a store written by an older one is
/// rebuilt from the log.
pub const FORMAT_VERSION: u64 = 12;

pub fn pos(p: Position) -> [u8; 8] {
    p.0.to_be_bytes()
}

pub fn decode_pos(v: &[u8]) -> Option<Position> {
    Some(Position(u64::from_be_bytes(v.get(..8)?.try_into().ok()?)))
}

/// Prefix of the posting lists of the whole log.
pub const HISTORY: &[u8] = b"h";

/// Index kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Actor,
    Project,
    Stage,
    Freight,
    Type,
}

impl Index {
    fn byte(self) -> u8 {
        match self {
            Index::Actor => b'a',
            Index::Project => b'p',
            Index::Stage => b's',
            Index::Freight => b'f',
            Index::Type => b't',
        }
    }
}

/// The prefix of index `kind` for `value` (ends with the 0x00 separator).
pub fn index_prefix(kind: Index, value: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(value.len() + 3);
    k.push(b'x');
    k.push(kind.byte());
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k
}

pub fn index(kind: Index, value: &str, p: Position) -> Vec<u8> {
    let mut k = index_prefix(kind, value);
    k.extend_from_slice(&pos(p));
    k
}

/// The position at the end of an index key.
pub fn index_pos(key: &[u8]) -> Option<Position> {
    decode_pos(key.get(key.len().checked_sub(8)?..)?)
}

fn scoped(tag: u8, project: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(project.len() + 26);
    k.push(tag);
    k.extend_from_slice(project.as_bytes());
    k.push(0);
    k
}

/// A time as 8 bytes that sort in time order (nanoseconds since the epoch,
/// sign bit flipped; clamped to what 64 bits hold).
pub fn time(t: chrono::DateTime<chrono::Utc>) -> [u8; 8] {
    let nanos = t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    });
    ((nanos as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time [`time`] encoded.
pub fn decode_time(v: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    let raw = u64::from_be_bytes(v.get(..8)?.try_into().ok()?) ^ (1 << 63);
    Some(chrono::DateTime::from_timestamp_nanos(raw as i64))
}

pub fn layout_prefix(project: &str) -> Vec<u8> {
    scoped(b'g', project)
}

/// The stage list in force from `p`.
pub fn layout(project: &str, p: Position) -> Vec<u8> {
    let mut k = layout_prefix(project);
    k.extend_from_slice(&pos(p));
    k
}

pub fn stage_version_prefix(project: &str, stage: &str) -> Vec<u8> {
    let mut k = scoped(b'w', project);
    k.extend_from_slice(stage.as_bytes());
    k.push(0);
    k
}

/// A stage's view from `p`.
pub fn stage_version(project: &str, stage: &str, p: Position) -> Vec<u8> {
    let mut k = stage_version_prefix(project, stage);
    k.extend_from_slice(&pos(p));
    k
}

/// Tags of the read-model keys.
pub mod model {
    pub const PROJECT: u8 = b'k';
    pub const PIPELINE: u8 = b'l';
    pub const FREIGHT: u8 = b'f';
    pub const ALIAS: u8 = b'a';
    pub const DISCOVERY: u8 = b'd';
    pub const PROMOTION: u8 = b'r';
    pub const PROMOTION_ID: u8 = b'i';
    pub const ACTIVE: u8 = b'q';
}

/// `tag` project 0x00: a project's keys of one read model.
pub fn model_prefix(tag: u8, project: &str) -> Vec<u8> {
    scoped(tag, project)
}

/// `tag` project 0x00 `name`.
pub fn model(tag: u8, project: &str, name: &[u8]) -> Vec<u8> {
    let mut k = scoped(tag, project);
    k.extend_from_slice(name);
    k
}

/// A freight's discovery key: its time, then its id.
pub fn discovery(project: &str, time: chrono::DateTime<chrono::Utc>, id: &str) -> Vec<u8> {
    let mut k = scoped(model::DISCOVERY, project);
    k.extend_from_slice(&self::time(time));
    k.extend_from_slice(id.as_bytes());
    k
}

/// The project and freight id of a discovery key.
pub fn discovery_parts(key: &[u8]) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(&[model::DISCOVERY])?;
    let end = rest.iter().position(|&b| b == 0)?;
    let project = std::str::from_utf8(&rest[..end]).ok()?;
    let id = std::str::from_utf8(rest.get(end + 1 + 8..)?).ok()?;
    Some((project, id))
}

/// The project a `k` key names.
pub fn project_of(key: &[u8]) -> Option<&str> {
    let rest = key.strip_prefix(&[model::PROJECT])?;
    std::str::from_utf8(rest.strip_suffix(&[0])?).ok()
}
