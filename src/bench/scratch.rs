//! A temporary directory for the embedded backend, removed when dropped.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context as _};

#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `<tmp>/<name>-<pid>`.
    pub fn create(name: &str) -> anyhow::Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("creating the scratch dir {}", path.display()))?;
        Ok(ScratchDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Refuses, before anything is written, a run that needs about `needed`
/// bytes in the temporary directory (where the scratch dirs and the spawned
/// nats-server's store go) when it has less free. Asks `df`; when `df`
/// cannot say, the run goes ahead.
pub fn ensure_space(needed: u64, what: &str) -> anyhow::Result<()> {
    let tmp = std::env::temp_dir();
    let Some(free) = free_bytes(&tmp) else {
        tracing::warn!(dir = %tmp.display(), "cannot tell the free space; going ahead");
        return Ok(());
    };
    let gb = |b: u64| b as f64 / 1e9;
    ensure!(
        free >= needed,
        "{what} needs about {:.1} GB in {} and it has {:.1} GB free; use fewer events, \
         or point TMPDIR at a bigger disk",
        gb(needed),
        tmp.display(),
        gb(free)
    );
    Ok(())
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "cannot remove scratch dir");
        }
    }
}
