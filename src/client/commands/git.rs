//! Where a pipeline file came from, when it lives in a git work tree: the
//! commit it was applied at, so that `PipelineConfigured` records it without
//! anyone typing `--revision`.

use std::path::Path;
use std::process::Command;

/// The revision of `file`: `HEAD`'s commit id, with `-dirty` when the file
/// differs from it (changed or not committed). `None` when the file is not
/// in a git work tree, the tree has no commit, or git is not installed.
pub fn revision_of(file: &Path) -> Option<String> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = file.file_name()?;
    let git = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse".as_ref(), "--verify".as_ref(), "HEAD".as_ref()])?;
    // Any output names the file: modified, staged, or not tracked at all.
    let status = git(&[
        "status".as_ref(),
        "--porcelain".as_ref(),
        "--untracked-files=all".as_ref(),
        "--".as_ref(),
        name,
    ])?;
    Some(if status.is_empty() {
        commit
    } else {
        format!("{commit}-dirty")
    })
}
