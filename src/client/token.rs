//! `waybill token create`: a new bearer token and its hashed entry for the
//! tokens file. The token is printed once; only its SHA-256 is stored.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use sha2::{Digest, Sha256};
use waybill_commands::auth::{check_tokens_file, token_name_problem};

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
    /// Give the token of this name in the --append-to file a new value
    /// (rotation); its groups stay unless --groups is given.
    #[arg(long, requires = "append_to")]
    pub replace: bool,
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
    if let Some(problem) = token_name_problem(&args.name) {
        anyhow::bail!("--name {:?}: {problem}", args.name);
    }
    if args.name.chars().any(|c| c.is_control() || c == '"') {
        anyhow::bail!("--name must be without quotes or control characters");
    }
    // 244 random bits from two v4 UUIDs (uuid draws on the OS random source).
    let token = format!(
        "wbt_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    match &args.append_to {
        Some(path) => {
            let replaced = write_entry(path, args, &token)?;
            if replaced {
                eprintln!(
                    "replaced the token of {} in {} (the new token is shown once; the old one \
                     stops working when the server reloads: SIGHUP, or within \
                     --reload-check-secs)",
                    args.name,
                    path.display()
                );
            } else {
                eprintln!(
                    "added {} to {} (the token is shown once)",
                    args.name,
                    path.display()
                );
            }
        }
        None => {
            eprintln!("add this entry to the tokens file (the token is shown once):\n");
            eprint!("{}", entry(&args.name, &args.groups, &token));
        }
    }
    outln!("{token}");
    Ok(())
}

/// Adds the entry of `token` to the tokens file at `path` (created if
/// absent), or with `--replace` swaps the hash of the entry of that name
/// (and its groups, if given), keeping the rest of the file as written.
/// The result is checked as the server reads it, then put in place by a
/// rename: a name used twice, a reserved name or a broken file is refused
/// and the file stays as it was. Returns whether an entry was replaced.
fn write_entry(path: &Path, args: &TokenArgs, token: &str) -> anyhow::Result<bool> {
    let shown = path.display();
    let old = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => anyhow::bail!("cannot read {shown}: {e}"),
    };
    let exists = old.is_some();
    let mut text = old.unwrap_or_default();
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| anyhow::anyhow!("{shown} is not a TOML tokens file: {e}"))?;
    let named = doc
        .get_mut("token")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
        .and_then(|entries| {
            entries
                .iter_mut()
                .find(|t| t.get("name").and_then(toml_edit::Item::as_str) == Some(&args.name))
        });
    let replaced = match (named, args.replace) {
        (Some(_), false) => anyhow::bail!(
            "{shown} already has a token named {:?}: `--replace` gives it a new one (the old \
             one then stops working when the server reloads)",
            args.name
        ),
        (None, true) => anyhow::bail!("{shown} has no token named {:?} to replace", args.name),
        (Some(named), true) => {
            named["sha256"] = toml_edit::value(hex::encode(Sha256::digest(token.as_bytes())));
            if !args.groups.is_empty() {
                named["groups"] = toml_edit::value(toml_edit::Array::from_iter(&args.groups));
            }
            text = doc.to_string();
            true
        }
        (None, false) => {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&entry(&args.name, &args.groups, token));
            false
        }
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("--append-to {shown}: not a file name"))?;
    let mut temporary = file_name.to_os_string();
    temporary.push(format!(".new-{}", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let written = write_checked(&temporary, path, &text, exists);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    std::fs::rename(&temporary, path)
        .map_err(|e| anyhow::anyhow!("cannot replace {shown}: {e}"))?;
    crate::durable::sync_parent(path)
        .map_err(|e| anyhow::anyhow!("cannot sync the directory of {shown}: {e}"))?;
    Ok(replaced)
}

/// Writes `text` to `temporary`, the next version of `path` (durably, with
/// the permissions of `path` if it `exists`), and checks it as the server
/// would read it.
fn write_checked(temporary: &Path, path: &Path, text: &str, exists: bool) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(temporary)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", temporary.display()))?;
    file.write_all(text.as_bytes())?;
    if exists {
        file.set_permissions(std::fs::metadata(path)?.permissions())?;
    }
    file.sync_all()?;
    check_tokens_file(temporary).map_err(|e| {
        let said = e.to_string().replace(
            &temporary.display().to_string(),
            &path.display().to_string(),
        );
        anyhow::anyhow!("{said}; the file was left as it was")
    })?;
    Ok(())
}
