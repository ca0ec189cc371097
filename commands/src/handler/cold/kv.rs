//! The records, in one redb table, and the ways they are read and written.

use super::*;

/// A redb error as a command error.
pub(super) fn store_error(e: impl Into<redb::Error>) -> CommandError {
    CommandError::Internal(format!("command state store: {}", e.into()))
}

/// The store's database, removed with its directory when dropped (it only
/// caches the log).
pub(super) struct Kv {
    pub(super) db: redb::Database,
    pub(super) dir: std::path::PathBuf,
    /// When the last durable commit was made.
    pub(super) durable: Mutex<std::time::Instant>,
    /// Sealed by a clean shutdown: the directory stays when dropped.
    pub(super) keep: std::sync::atomic::AtomicBool,
    /// Held locked while the store is open.
    pub(super) _lock: std::fs::File,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv").field("dir", &self.dir).finish()
    }
}

impl Drop for Kv {
    fn drop(&mut self) {
        if !self.keep.load(std::sync::atomic::Ordering::Acquire) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Kv {
    /// The table as of now, for reading.
    pub(super) fn table(
        &self,
    ) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, CommandError> {
        use redb::ReadableDatabase;
        self.db
            .begin_read()
            .map_err(store_error)?
            .open_table(RECORDS)
            .map_err(store_error)
    }

    pub(super) fn get(&self, k: &[u8]) -> Result<Option<Vec<u8>>, CommandError> {
        Ok(self
            .table()?
            .get(k)
            .map_err(store_error)?
            .map(|v| v.value().to_vec()))
    }

    /// Up to `limit` entries in `start..end`, from the last, keys and values.
    pub(super) fn last(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Entry>, CommandError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for kv in self
            .table()?
            .range(start..end)
            .map_err(store_error)?
            .rev()
            .take(limit)
        {
            let (k, v) = kv.map_err(store_error)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) each key, atomically.
    pub(super) fn write(&self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), CommandError> {
        self.write_if(batch, || true).map(|_| ())
    }

    /// [`Kv::write`], durable (fsynced with everything written before it)
    /// when it returns.
    pub(super) fn write_durably(
        &self,
        batch: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<(), CommandError> {
        let tx = self.db.begin_write().map_err(store_error)?;
        put(&tx, batch)?;
        tx.commit().map_err(store_error)?;
        *self.durable.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
        Ok(())
    }

    /// [`Kv::write`], if `still` holds once no other write can start;
    /// whether it wrote.
    pub(super) fn write_if(
        &self,
        batch: &[(Vec<u8>, Option<Vec<u8>>)],
        still: impl FnOnce() -> bool,
    ) -> Result<bool, CommandError> {
        if batch.is_empty() {
            return Ok(true);
        }
        let mut tx = self.db.begin_write().map_err(store_error)?;
        if !still() {
            tx.abort().map_err(store_error)?;
            return Ok(false);
        }
        // One writer at a time (the write transaction), so this is not racy.
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if now.duration_since(*durable) < DURABLE_EVERY {
            tx.set_durability(redb::Durability::None)
                .map_err(|e| CommandError::Internal(format!("command state store: {e}")))?;
        }
        put(&tx, batch)?;
        let was_durable = now.duration_since(*durable) >= DURABLE_EVERY;
        tx.commit().map_err(store_error)?;
        if was_durable {
            *durable = now;
        }
        Ok(true)
    }
}

/// Sets (`Some`) or removes (`None`) each key in `tx`.
fn put(
    tx: &redb::WriteTransaction,
    batch: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Result<(), CommandError> {
    let mut table = tx.open_table(RECORDS).map_err(store_error)?;
    for (k, v) in batch {
        match v {
            Some(v) => table
                .insert(k.as_slice(), v.as_slice())
                .map_err(store_error)?,
            None => table.remove(k.as_slice()).map_err(store_error)?,
        };
    }
    Ok(())
}

/// The database a clean shutdown left in `dir`, unmarked (durably) so that
/// it is wiped if this process does not end cleanly too; `None` if there is
/// none, or it is not clean, or it cannot be read.
pub(super) fn reopen_clean(dir: &Path) -> Option<redb::Database> {
    use redb::ReadableDatabase;
    let path = dir.join(FILE);
    if !path.exists() {
        return None;
    }
    let attempt = || -> Result<Option<redb::Database>, redb::Error> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .open(&path)?;
        let clean = db.begin_read()?.open_table(RECORDS)?.get(CLEAN)?.is_some();
        if !clean {
            return Ok(None);
        }
        let tx = db.begin_write()?;
        tx.open_table(RECORDS)?.remove(CLEAN)?;
        tx.commit()?;
        Ok(Some(db))
    };
    match attempt() {
        Ok(db) => db,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot reuse the command state store; starting it empty");
            None
        }
    }
}

/// Every entry of a key range, from the last, read a page at a time (a read
/// transaction is not held across the caller's work).
pub(super) fn backwards<'a>(
    kv: &'a Kv,
    start: Vec<u8>,
    end: Vec<u8>,
) -> impl Iterator<Item = Result<Entry, CommandError>> + 'a {
    const PAGE: usize = 256;
    let mut end = Some(end);
    let mut page = std::collections::VecDeque::new();
    std::iter::from_fn(move || {
        if page.is_empty() {
            let upto = end.take()?;
            match kv.last(&start, &upto, PAGE) {
                Ok(entries) => {
                    if entries.len() == PAGE {
                        end = entries.last().map(|(k, _)| k.clone());
                    }
                    page.extend(entries);
                }
                Err(e) => return Some(Err(e)),
            }
        }
        page.pop_front().map(Ok)
    })
}
