//! `waybill verify-export DIR --pubkey KEY`: checks an export offline, with
//! nothing but the files and the public key the auditor trusts
//! (docs/ledger-format.md §14): the manifest's signature, every file's
//! digest, the signed checkpoint, each record's chain link and its agreement
//! with the manifest, the inclusion of every record under the checkpoint,
//! that no record is missing from the stated range, the promotions and the
//! policies.

mod policies;
mod promotions;
mod records;

use std::io::BufRead;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use waybill_ledger::audit::{multi_root, Checkpoint, Hash, SignedNote, VerifierKey};
use waybill_ledger::ChainHash;
use waybill_projections::audit::export::{
    manifest_note, EventsSummary, Manifest, CHECKPOINT_FILE, EVENTS_FILE, FORMAT, FORMAT_1,
    MANIFEST_FILE, MANIFEST_SIG_FILE, PROOF_FILE, PROOF_KIND,
};

use crate::audit::keys::load_verifier;

/// Exit code when the export fails verification (2 is reserved for errors).
const FAILED: u8 = 1;
/// Problems printed at most (the count is always given).
const SHOWN: usize = 50;

/// `waybill verify-export`.
#[derive(Debug, clap::Args)]
pub struct VerifyExportArgs {
    /// The export directory.
    pub dir: PathBuf,
    /// The public key you trust (`name+id+key`, or a file holding it).
    #[arg(long)]
    pub pubkey: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = crate::client::Output::Text)]
    pub output: crate::client::Output,
}

/// What the checks found.
#[derive(Debug, Default)]
pub struct Findings {
    problems: Vec<String>,
    facts: Vec<(&'static str, String)>,
}

impl Findings {
    fn problem(&mut self, what: String) {
        self.problems.push(what);
    }

    fn fact(&mut self, topic: &'static str, what: String) {
        self.facts.push((topic, what));
    }
}

fn sha256_of(path: &Path, bar: &ProgressBar) -> std::io::Result<(String, u64)> {
    let mut file = bar.wrap_read(std::fs::File::open(path)?);
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// Runs every check on `dir` with the trusted `key`.
pub fn verify(dir: &Path, key: &VerifierKey) -> anyhow::Result<Findings> {
    let mut f = Findings::default();
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest_bytes = std::fs::read(&manifest_path).map_err(|e| {
        anyhow::anyhow!(
            "{} cannot be read: {e}; is this an export?",
            manifest_path.display()
        )
    })?;
    let manifest_sha = hex::encode(Sha256::digest(&manifest_bytes));

    // 1. The manifest is what the trusted key signed.
    match std::fs::read_to_string(dir.join(MANIFEST_SIG_FILE)) {
        Err(e) => f.problem(format!("{MANIFEST_SIG_FILE}: cannot be read: {e}")),
        Ok(text) => match SignedNote::parse(&text).and_then(|n| n.verify(key).map(|()| n)) {
            Err(e) => f.problem(format!("{MANIFEST_SIG_FILE}: {e}")),
            Ok(note) if note.text != manifest_note(&manifest_sha) => f.problem(format!(
                "{MANIFEST_FILE} was changed after it was signed: its SHA-256 is {manifest_sha}, \
                 {MANIFEST_SIG_FILE} signs {:?}",
                note.text.lines().nth(1).unwrap_or_default()
            )),
            Ok(_) => f.fact("manifest", format!("signed by {}", key.encode())),
        },
    }
    let manifest: Manifest = match serde_json::from_slice(&manifest_bytes) {
        Ok(m) => m,
        Err(e) => {
            f.problem(format!("{MANIFEST_FILE}: not a manifest: {e}"));
            return Ok(f);
        }
    };
    if manifest.format != FORMAT && manifest.format != FORMAT_1 {
        f.problem(format!(
            "{MANIFEST_FILE}: format {:?}, this verifier reads {FORMAT:?} and {FORMAT_1:?}",
            manifest.format
        ));
    }
    if manifest.public_key != key.encode() {
        f.problem(format!(
            "the export names the signing key {}, not the key you trust ({})",
            manifest.public_key,
            key.encode()
        ));
    }

    // 2. Every file is the one the manifest lists, and nothing else is there.
    check_files(dir, &manifest, &mut f);

    // 3. The checkpoint is signed by the trusted key and is the one the manifest states.
    let checkpoint = check_checkpoint(dir, &manifest, key, &mut f);

    // 4. Every record: chain, agreement, range; 5. all of them under the checkpoint.
    let events_len = std::fs::metadata(dir.join(EVENTS_FILE)).map_or(0, |m| m.len());
    let walk = crate::progress::terminal_bar(
        events_len,
        "checking records {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    );
    let events = std::fs::File::open(dir.join(EVENTS_FILE)).map(|e| walk.wrap_read(e));
    let proof = std::fs::File::open(dir.join(PROOF_FILE));
    let (events, proof) = match (events, proof) {
        (Ok(e), Ok(p)) => (e, p),
        (Err(e), _) | (_, Err(e)) => {
            f.problem(format!("{EVENTS_FILE} or {PROOF_FILE} cannot be read: {e}"));
            return Ok(f);
        }
    };
    let mut proof_problem = None;
    let mut proof_nodes = 0u64;
    let nodes = std::io::BufReader::new(proof)
        .lines()
        .enumerate()
        .map_while(|(i, line)| {
            let hash = line
                .ok()
                .and_then(|l| hex::decode(l.trim()).ok())
                .and_then(|b| Hash::try_from(b.as_slice()).ok());
            if hash.is_none() {
                proof_problem = Some(format!(
                    "{PROOF_FILE} line {}: not a 32-byte hex hash",
                    i + 1
                ));
            }
            proof_nodes += 1;
            hash
        });
    // 6. Promotions, matched against the records as they are walked.
    let promotions = promotions::Matcher::open(dir, &manifest, &mut f);
    let mut records = records::Records::new(
        std::io::BufReader::new(events),
        &manifest,
        &mut f,
        promotions,
    );
    let size = manifest.checkpoint.size;
    let computed = multi_root(size, &mut records, nodes);
    // Check the rest of the records even when the proof stopped early.
    for _ in &mut records {}
    walk.finish_and_clear();
    let seen = std::mem::take(&mut records.seen);
    let promotions = records.promotions.take();
    let applied = std::mem::take(&mut records.policies);
    drop(records);
    if let Some(p) = proof_problem {
        f.problem(p);
    }
    check_summary(&manifest, &seen, &mut f);
    match (computed, checkpoint) {
        _ if seen.count == 0 => {
            if proof_nodes > 0 {
                f.problem(format!("{PROOF_FILE}: {proof_nodes} nodes for no records"));
            }
        }
        (Err(e), _) => f.problem(format!(
            "the records are not proven to be in the checkpointed log: {e}"
        )),
        (Ok(root), Some(c)) if root != c.root => f.problem(format!(
            "the records are not all in the checkpointed log: with {PROOF_FILE} they lead to \
             root {}, the checkpoint of tree size {} has root {}",
            hex::encode(root),
            c.size,
            hex::encode(c.root)
        )),
        (Ok(_), Some(c)) => f.fact(
            "inclusion",
            format!(
                "all {} records are in the tree of size {} ({PROOF_KIND}, {} proof nodes)",
                seen.count, c.size, manifest.proof.nodes
            ),
        ),
        (Ok(_), None) => {}
    }

    if let Some(m) = promotions {
        m.finish(&manifest, &mut f);
    }
    // 7. Policies, against the pipelines applied among the records.
    policies::check(dir, &manifest, &applied, seen.first_seq == 1, &mut f);
    Ok(f)
}

fn check_files(dir: &Path, manifest: &Manifest, f: &mut Findings) {
    let required = [
        EVENTS_FILE,
        PROOF_FILE,
        CHECKPOINT_FILE,
        manifest.promotions.file.as_str(),
    ];
    let policies = manifest.policies.as_ref().map(|p| p.file.as_str());
    for name in required.into_iter().chain(policies) {
        if !manifest.files.iter().any(|e| e.name == name) {
            f.problem(format!("{MANIFEST_FILE} does not list {name}"));
        }
    }
    let total: u64 = manifest.files.iter().map(|e| e.bytes).sum();
    let bar = crate::progress::terminal_bar(
        total,
        "checking digests {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    );
    let mut ok = 0;
    for entry in &manifest.files {
        if entry.name.contains('/') || entry.name.contains('\\') || entry.name.starts_with('.') {
            f.problem(format!(
                "{MANIFEST_FILE} lists a file outside the export: {:?}",
                entry.name
            ));
            continue;
        }
        match sha256_of(&dir.join(&entry.name), &bar) {
            Err(e) => f.problem(format!("{}: missing or unreadable: {e}", entry.name)),
            Ok((sha, bytes)) if sha != entry.sha256 || bytes != entry.bytes => f.problem(format!(
                "{} was changed: {bytes} bytes with SHA-256 {sha}; the manifest states {} bytes \
                 with {}",
                entry.name, entry.bytes, entry.sha256
            )),
            Ok(_) => ok += 1,
        }
    }
    bar.finish_and_clear();
    if let Ok(listing) = std::fs::read_dir(dir) {
        for item in listing.flatten() {
            let name = item.file_name().to_string_lossy().to_string();
            let known = name == MANIFEST_FILE
                || name == MANIFEST_SIG_FILE
                || manifest.files.iter().any(|e| e.name == name);
            if !known {
                f.problem(format!("{name}: a file the manifest does not list"));
            }
        }
    }
    if ok == manifest.files.len() {
        f.fact("files", format!("{ok} files match their SHA-256 digests"));
    }
}

fn check_checkpoint(
    dir: &Path,
    manifest: &Manifest,
    key: &VerifierKey,
    f: &mut Findings,
) -> Option<Checkpoint> {
    let text = match std::fs::read_to_string(dir.join(CHECKPOINT_FILE)) {
        Ok(t) => t,
        Err(e) => {
            f.problem(format!("{CHECKPOINT_FILE}: cannot be read: {e}"));
            return None;
        }
    };
    let c = match Checkpoint::open(&text, key) {
        Ok(c) => c,
        Err(e) => {
            f.problem(format!("{CHECKPOINT_FILE}: {e}"));
            return None;
        }
    };
    let stated = &manifest.checkpoint;
    if c.size != stated.size || hex::encode(c.root) != stated.root || c.origin != stated.origin {
        f.problem(format!(
            "{CHECKPOINT_FILE} is the checkpoint of tree size {} (root {}), but the manifest \
             states tree size {} (root {}): {}",
            c.size,
            hex::encode(c.root),
            stated.size,
            stated.root,
            if c.size < stated.size {
                "an older checkpoint passed off as the export's"
            } else {
                "not the export's checkpoint"
            }
        ));
    }
    if manifest.events.last_position > c.size {
        f.problem(format!(
            "the checkpoint covers {} records, but the export holds records up to position {}: \
             the checkpoint is older than the records",
            c.size, manifest.events.last_position
        ));
    }
    f.fact(
        "checkpoint",
        format!(
            "{} tree size {} root {}",
            c.origin,
            c.size,
            hex::encode(c.root)
        ),
    );
    Some(c)
}

fn check_summary(manifest: &Manifest, seen: &records::Seen, f: &mut Findings) {
    let m = &manifest.events;
    let stated = (
        m.count,
        m.first_position,
        m.last_position,
        m.first_seq,
        m.last_seq,
    );
    let found = (
        seen.count,
        seen.first_position,
        seen.last_position,
        seen.first_seq,
        seen.last_seq,
    );
    if stated != found {
        f.problem(format!(
            "{EVENTS_FILE} holds {} records, positions {}..{}, sequence {}..{}; the manifest \
             states {} records, positions {}..{}, sequence {}..{}: records were dropped or added",
            found.0,
            found.1,
            found.2,
            found.3,
            found.4,
            stated.0,
            stated.1,
            stated.2,
            stated.3,
            stated.4
        ));
    }
    if m.count > 0 && m.last_seq + 1 - m.first_seq != m.count {
        f.problem(format!(
            "the manifest states {} records for sequence {}..{}",
            m.count, m.first_seq, m.last_seq
        ));
    }
    let head = seen
        .head
        .or_else(|| ChainHash::from_hex(&m.prev_hash))
        .map(|h| h.to_hex())
        .unwrap_or_default();
    if head != m.head_hash {
        f.problem(format!(
            "the last record hashes to {head}, the manifest states {}",
            m.head_hash
        ));
    } else if stated == found {
        let records = if m.count == 0 {
            format!(
                "no records of {} in the range exported; the chain stood at {}",
                manifest.project,
                short(&m.prev_hash)
            )
        } else {
            format!(
                "{} records of {}, sequence {}..{} without a gap, chain intact from {} to {}",
                m.count,
                manifest.project,
                m.first_seq,
                m.last_seq,
                short(&m.prev_hash),
                short(&m.head_hash)
            )
        };
        f.fact("records", records);
    }
    if let Some(range) = range_fact(m) {
        f.fact("range", range);
    }
}

/// What part of the project the export holds, when it is not the whole of
/// it: records left out before the range are as much a fact for an auditor
/// as records after it.
fn range_fact(m: &EventsSummary) -> Option<String> {
    let total = m.project_head_seq;
    if m.count >= total {
        return None;
    }
    Some(if m.count == 0 {
        format!("the project had {total} records when exported; none is in the range")
    } else {
        format!(
            "the project had {total} records when exported; this export holds sequence {}..{}",
            m.first_seq, m.last_seq
        )
    })
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Prints the report; exit 0 when the export verifies, 1 when it does not.
/// Checks the export and reports: for people, or as one JSON object
/// (`--output json`: every problem, not only the first few).
pub fn run(args: &VerifyExportArgs) -> anyhow::Result<ExitCode> {
    let output = args.output;
    let key = load_verifier(&args.pubkey)?;
    let findings = verify(&args.dir, &key)?;
    let ok = findings.problems.is_empty();
    // Written, not printed: a reader that goes away ends it quietly.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        crate::client::Output::Json => {
            let facts: serde_json::Map<String, serde_json::Value> = findings
                .facts
                .iter()
                .map(|(topic, what)| (topic.to_string(), what.clone().into()))
                .collect();
            let line = serde_json::json!({
                "ok": ok,
                "dir": args.dir.display().to_string(),
                "signed_by": key.encode(),
                "facts": facts,
                "problems": findings.problems,
            });
            writeln!(out, "{line}")?;
        }
        crate::client::Output::Text => {
            writeln!(out, "export {}", args.dir.display())?;
            for (topic, what) in &findings.facts {
                writeln!(out, "  {topic:<11} {what}")?;
            }
            if ok {
                writeln!(
                    out,
                    "OK: the export is complete and unaltered, signed by {}",
                    key.encode()
                )?;
            } else {
                writeln!(out, "FAILED: {} problem(s)", findings.problems.len())?;
                for p in findings.problems.iter().take(SHOWN) {
                    writeln!(out, "  - {p}")?;
                }
                if findings.problems.len() > SHOWN {
                    writeln!(out, "  ... and {} more", findings.problems.len() - SHOWN)?;
                }
            }
        }
    }
    out.flush()?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    })
}
