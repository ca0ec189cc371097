//! `waybill token create`: a new bearer token and the entry for the tokens file.

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
}

pub fn create(args: &TokenArgs) -> anyhow::Result<()> {
    if args.name.is_empty() || args.name.chars().any(|c| c.is_control() || c == '"') {
        anyhow::bail!("--name must be non-empty, without quotes or control characters");
    }
    // 256 random bits from two v4 UUIDs (uuid uses the OS random source).
    let token = format!(
        "wbt_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    let groups = args
        .groups
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!(
        "token for {} (shown once; only its hash goes in the tokens file):",
        args.name
    );
    println!("{token}");
    eprintln!("\nadd to the tokens file:\n");
    eprintln!(
        "[[token]]\nname = {:?}\nsha256 = \"{hash}\"\ngroups = [{groups}]",
        args.name
    );
    Ok(())
}
