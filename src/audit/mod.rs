//! The audit verbs: `keygen`, `export`, `verify-export`, and the signing
//! settings of `serve`.
//!
//! - `keys`: creating and loading the Ed25519 checkpoint key;
//! - `export`: a client of the audit service's export stream;
//! - `verify_export`: the offline verifier (no server involved);
//! - `prove`: `checkpoint` and `prove`, which check the server's checkpoints
//!   and proofs against a trusted key.

pub mod export;
pub mod keys;
pub mod prove;
pub mod verify_export;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use waybill_projections::audit::CheckpointPolicy;

/// Records between two checkpoints by default.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 10_000;
/// Longest time a record waits for a checkpoint by default.
pub const DEFAULT_CHECKPOINT_INTERVAL_SECS: u64 = 60;
/// The signing key's file under the data directory when none is configured.
pub const DEFAULT_KEY_FILE: &str = "signing.key";

/// `[audit]` in the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFileConfig {
    pub signing_key: Option<PathBuf>,
    pub checkpoint_every: Option<u64>,
    pub checkpoint_interval_secs: Option<u64>,
    pub origin: Option<String>,
    pub checkpoints: Option<bool>,
}

/// The signing flags of `waybill serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuditArgs {
    /// Ed25519 key that signs checkpoints and exports (`waybill keygen`)
    /// (default: DATA_DIR/signing.key, created on first start).
    #[arg(long, env = "WAYBILL_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Sign a checkpoint after this many records [default: 10000].
    #[arg(long, env = "WAYBILL_CHECKPOINT_EVERY")]
    pub checkpoint_every: Option<u64>,
    /// ...or this many seconds after a record arrives [default: 60].
    #[arg(long, env = "WAYBILL_CHECKPOINT_INTERVAL_SECS")]
    pub checkpoint_interval_secs: Option<u64>,
    /// The log's name in checkpoints [default: the key's name].
    #[arg(long, env = "WAYBILL_CHECKPOINT_ORIGIN")]
    pub checkpoint_origin: Option<String>,
    /// Do not sign checkpoints in this process (another replica does).
    #[arg(long, env = "WAYBILL_NO_CHECKPOINTS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_checkpoints: bool,
}

/// What [`checkpoint_policy`] does when no key is configured and the data
/// directory holds none yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKey {
    /// Make one (`serve`).
    Create,
    /// Sign nothing, write nothing (`serve --check`).
    Leave,
}

/// Merges flags over the file, loads (or creates) the key. A process that
/// does not sign (`signs`: it runs no queries role, which keeps the Merkle
/// tree) loads no key and creates none.
pub fn checkpoint_policy(
    args: &AuditArgs,
    file: &AuditFileConfig,
    data_dir: &std::path::Path,
    signs: bool,
    missing: MissingKey,
) -> anyhow::Result<CheckpointPolicy> {
    let every = args
        .checkpoint_every
        .or(file.checkpoint_every)
        .unwrap_or(DEFAULT_CHECKPOINT_EVERY);
    let secs = args
        .checkpoint_interval_secs
        .or(file.checkpoint_interval_secs)
        .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_SECS);
    if every == 0 || secs == 0 {
        anyhow::bail!("checkpoint_every and checkpoint_interval_secs must be at least 1");
    }
    let enabled = !args.no_checkpoints && file.checkpoints.unwrap_or(true);
    let configured = args
        .signing_key
        .clone()
        .or_else(|| file.signing_key.clone());
    if enabled && !signs && configured.is_some() {
        tracing::warn!(
            "checkpoints are signed by the queries role, which this process does not run: \
             the signing key is unused"
        );
    }
    let signer = if enabled && signs {
        let default = data_dir.join(DEFAULT_KEY_FILE);
        match configured {
            Some(path) => Some(keys::load_signer(&path, false)?),
            None if missing == MissingKey::Leave && !default.exists() => None,
            None => Some(keys::load_signer(&default, missing == MissingKey::Create)?),
        }
        .map(Arc::new)
    } else {
        None
    };
    let origin = args
        .checkpoint_origin
        .clone()
        .or_else(|| file.origin.clone())
        .or_else(|| signer.as_ref().map(|s| s.name().to_string()))
        .unwrap_or_else(|| "waybill".to_string());
    if origin.is_empty() || origin.chars().any(|c| c.is_control()) {
        anyhow::bail!("the checkpoint origin must be one line of text");
    }
    Ok(CheckpointPolicy {
        every,
        interval: Duration::from_secs(secs),
        origin,
        signer,
    })
}

/// The checkpoint settings `serve` would start with, for people, read and
/// checked without creating a key.
pub fn describe_checkpoints(
    args: &AuditArgs,
    file: &AuditFileConfig,
    data_dir: &std::path::Path,
    signs: bool,
) -> anyhow::Result<String> {
    let policy = checkpoint_policy(args, file, data_dir, signs, MissingKey::Leave)?;
    let enabled = !args.no_checkpoints && file.checkpoints.unwrap_or(true);
    let cadence = format!(
        "every {} events or {} s",
        policy.every,
        policy.interval.as_secs()
    );
    Ok(match &policy.signer {
        _ if !enabled => "off (another replica signs)".to_string(),
        _ if !signs => "not signed here (only the queries role signs)".to_string(),
        Some(key) => format!(
            "signed with {} ({cadence}, origin {:?})",
            key.verifier().encode(),
            policy.origin
        ),
        None => format!(
            "signed with a key the first start makes in {} ({cadence})",
            data_dir.join(DEFAULT_KEY_FILE).display()
        ),
    })
}
