//! `waybill token create`: a new bearer token and its hashed entry for the
//! tokens file. The token is printed once; only its SHA-256 is stored.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use sha2::{Digest, Sha256};

/// Create a bearer token.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Name of the principal the token stands for.
    #[arg(long)]
    pub name: String,
    /// Groups (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub groups: Vec<String>,
    /// Append the hashed entry to this tokens file (created if absent)
    /// instead of printing it.
    #[arg(long)]
    pub append_to: Option<PathBuf>,
}

/// The tokens-file entry for `token`.
pub fn entry(name: &str, groups: &[String], token: &str) -> String {
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    let groups = groups
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("[[token]]\nname = {name:?}\nsha256 = \"{hash}\"\ngroups = [{groups}]\n\n")
}

pub fn create(args: &TokenArgs) -> anyhow::Result<()> {
    if args.name.is_empty() || args.name.chars().any(|c| c.is_control() || c == '"') {
        anyhow::bail!("--name must be non-empty, without quotes or control characters");
    }
    // 244 random bits from two v4 UUIDs (uuid draws on the OS random source).
    let token = format!(
        "wbt_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let entry = entry(&args.name, &args.groups, &token);
    match &args.append_to {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
            file.write_all(entry.as_bytes())?;
            eprintln!(
                "added {} to {} (the token is shown once)",
                args.name,
                path.display()
            );
        }
        None => {
            eprintln!("add this entry to the tokens file (the token is shown once):\n");
            eprint!("{entry}");
        }
    }
    println!("{token}");
    Ok(())
}
