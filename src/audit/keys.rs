//! `waybill keygen` and loading the signing key for `waybill serve`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use waybill_ledger::audit::{SignerKey, VerifierKey};

/// `waybill keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the signing key (the public key goes to FILE.pub).
    #[arg(long, default_value = "waybill-signing.key")]
    pub out: PathBuf,
    /// Key name, shown in every signature line (default: waybill-HOSTNAME).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace an existing key file.
    #[arg(long)]
    pub force: bool,
}

/// The default key name.
pub fn default_name() -> String {
    format!("waybill-{}", crate::serve::hostname())
}

/// Creates a key, writes it (owner-only) and its public key; prints the public key.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} exists; refusing to replace a signing key (give --force to do it anyway)",
            args.out.display()
        );
    }
    let name = args.name.clone().unwrap_or_else(default_name);
    let key = SignerKey::generate(&name).with_context(|| format!("key name {name:?}"))?;
    write_secret(&args.out, &key)?;
    let public = pub_path(&args.out);
    std::fs::write(&public, format!("{}\n", key.verifier().encode()))
        .with_context(|| format!("cannot write {}", public.display()))?;
    eprintln!(
        "signing key written to {} (keep it secret), public key to {}",
        args.out.display(),
        public.display()
    );
    outln!("{}", key.verifier().encode());
    Ok(())
}

fn pub_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Writes the key readable by its owner only, atomically (temp file + rename).
fn write_secret(path: &Path, key: &SignerKey) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(format!("{}\n", key.encode()).as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    // A crash must not lose the key that signed checkpoints already appended.
    crate::durable::sync_parent(path)
        .with_context(|| format!("cannot sync the directory of {}", path.display()))?;
    Ok(())
}

/// Warns when the signing key at `path` can be read by others than its
/// owner (as `waybill keygen` and `serve` write it, 0600): anyone who can
/// read it can sign checkpoints in the server's name.
#[cfg(unix)]
fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the checkpoint signing key can be read by others than its owner: chmod 600 it"
            );
        }
    }
}

/// Loads the signing key at `path`; when `create` and it does not exist, makes one.
pub fn load_signer(path: &Path, create: bool) -> anyhow::Result<SignerKey> {
    if !path.exists() && create {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "cannot create {} for the checkpoint signing key",
                    dir.display()
                )
            })?;
        }
        let key = SignerKey::generate(&default_name())?;
        write_secret(path, &key)?;
        let public = pub_path(path);
        std::fs::write(&public, format!("{}\n", key.verifier().encode()))
            .with_context(|| format!("cannot write the public key {}", public.display()))?;
        tracing::warn!(
            path = %path.display(),
            public_key = %key.verifier().encode(),
            "created a checkpoint signing key; give auditors the public key"
        );
        return Ok(key);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the signing key {}", path.display()))?;
    #[cfg(unix)]
    warn_if_exposed(path);
    SignerKey::parse(&text).with_context(|| format!("invalid signing key in {}", path.display()))
}

/// A verifier key given on the command line: the key itself or a file holding it.
pub fn load_verifier(arg: &str) -> anyhow::Result<VerifierKey> {
    let path = Path::new(arg);
    let text = if path.exists() {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public key {}", path.display()))?
    } else {
        arg.to_string()
    };
    VerifierKey::parse(text.trim()).with_context(|| {
        format!("{arg:?} is neither a public key (name+id+key) nor a file holding one")
    })
}
