//! `waybill token`: bearer tokens in the tokens file. `create` makes a new
//! token and its hashed entry (the token is printed once; only its SHA-256
//! is stored), `revoke` takes an entry out, `list` shows who has one. Every
//! file these leave is one the server loads.

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

/// Revoke a bearer token.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Name of the principal whose token is revoked.
    #[arg(long)]
    pub name: String,
    /// The tokens file.
    #[arg(long)]
    pub file: PathBuf,
}

/// List the tokens of a tokens file.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The tokens file.
    #[arg(long)]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: super::Output,
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
    replace_file(path, &text, exists)?;
    Ok(replaced)
}

/// Puts `text` in place as the tokens file `path`: written beside it,
/// checked as the server reads it, then renamed over it. A text the server
/// would refuse leaves the file as it was.
fn replace_file(path: &Path, text: &str, exists: bool) -> anyhow::Result<()> {
    let shown = path.display();
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{shown}: not a file name"))?;
    let mut temporary = file_name.to_os_string();
    temporary.push(format!(".new-{}", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let written = write_checked(&temporary, path, text, exists);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    std::fs::rename(&temporary, path)
        .map_err(|e| anyhow::anyhow!("cannot replace {shown}: {e}"))?;
    crate::durable::sync_parent(path)
        .map_err(|e| anyhow::anyhow!("cannot sync the directory of {shown}: {e}"))?;
    Ok(())
}

/// The tokens file at `path`, as the server would load it, and as a
/// document to edit.
fn read_tokens_file(path: &Path) -> anyhow::Result<(String, toml_edit::DocumentMut)> {
    let shown = path.display();
    check_tokens_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {shown}: {e}"))?;
    let doc = text
        .parse()
        .map_err(|e| anyhow::anyhow!("{shown} is not a TOML tokens file: {e}"))?;
    Ok((text, doc))
}

/// The entries of a tokens file: name and groups, in the file's order.
fn entries(doc: &toml_edit::DocumentMut) -> Vec<(String, Vec<String>)> {
    let Some(tokens) = doc
        .get("token")
        .and_then(toml_edit::Item::as_array_of_tables)
    else {
        return Vec::new();
    };
    tokens
        .iter()
        .map(|t| {
            let name = t.get("name").and_then(toml_edit::Item::as_str);
            let groups = t
                .get("groups")
                .and_then(toml_edit::Item::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (name.unwrap_or_default().to_string(), groups)
        })
        .collect()
}

/// `waybill token revoke`: takes the entry of `--name` out of the tokens
/// file, keeping the rest as written. The token stops working when the
/// server reloads the file.
pub fn revoke(args: &RevokeArgs) -> anyhow::Result<()> {
    let path = &args.file;
    let shown = path.display();
    let (_, mut doc) = read_tokens_file(path)?;
    let names: Vec<String> = entries(&doc).into_iter().map(|(name, _)| name).collect();
    let Some(index) = names.iter().position(|n| *n == args.name) else {
        let like = waybill_ledger::name::did_you_mean(&args.name, names.iter().map(String::as_str));
        anyhow::bail!("{shown} has no token named {:?}{like}", args.name);
    };
    remove_entry(&mut doc, index);
    // The entry after a removed first one would leave its blank line first.
    let text = doc.to_string();
    replace_file(path, text.trim_start_matches('\n'), true)?;
    eprintln!(
        "revoked the token of {} in {shown} (it stops working when the server reloads: SIGHUP, \
         or within --reload-check-secs)",
        args.name
    );
    Ok(())
}

/// Takes entry `index` out of `doc`. Comments above it stay (they go
/// above the next entry, or to the end): revoking a token loses no note
/// that someone wrote.
fn remove_entry(doc: &mut toml_edit::DocumentMut, index: usize) {
    let prefix = |t: &toml_edit::Table| {
        let prefix = t.decor().prefix().and_then(|p| p.as_str());
        prefix.unwrap_or_default().to_string()
    };
    let Some(tokens) = doc
        .get_mut("token")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
    else {
        return;
    };
    let Some(comments) = tokens.get(index).map(prefix) else {
        return;
    };
    tokens.remove(index);
    if !comments.contains('#') {
        return;
    }
    match tokens.get_mut(index) {
        Some(next) => {
            let own = prefix(next);
            let own = if own.trim().is_empty() {
                ""
            } else {
                own.as_str()
            };
            next.decor_mut().set_prefix(format!("{comments}{own}"));
        }
        None => {
            let trailing = doc.trailing().as_str().unwrap_or_default().to_string();
            doc.set_trailing(format!("{comments}{trailing}"));
        }
    }
}

/// `waybill token list`: who has a token in the file, with their groups
/// (never a hash).
pub fn list(args: &ListArgs) -> anyhow::Result<()> {
    let (_, doc) = read_tokens_file(&args.file)?;
    let entries = entries(&doc);
    match args.output {
        super::Output::Json => {
            let list: Vec<_> = entries
                .iter()
                .map(|(name, groups)| serde_json::json!({ "name": name, "groups": groups }))
                .collect();
            outln!("{}", serde_json::json!({ "tokens": list }));
        }
        super::Output::Text if entries.is_empty() => outln!("(no tokens)"),
        super::Output::Text => {
            let width = entries
                .iter()
                .map(|(n, _)| n.len())
                .max()
                .unwrap_or(0)
                .max(4);
            outln!("{:width$}  GROUPS", "NAME");
            for (name, groups) in &entries {
                let groups = if groups.is_empty() {
                    "-".to_string()
                } else {
                    groups.join(", ")
                };
                outln!("{name:width$}  {groups}");
            }
        }
    }
    Ok(())
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
