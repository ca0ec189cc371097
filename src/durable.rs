//! Files that must survive a crash once a command said it wrote them.

use std::path::Path;

/// Makes the names in directory `dir` durable (files created or renamed
/// into it): a file's `sync_all` keeps its bytes, its directory's its name.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// [`sync_dir`] of the directory `path` is in.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        // A bare name: the current directory.
        _ => sync_dir(Path::new(".")),
    }
}
