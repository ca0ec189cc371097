//! A file of an export as it is written: buffered, hashed and sent in
//! chunks, and the sends that end an export when its receiver has gone.

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{ExportError, ExportItem, FileEntry};

/// Bytes buffered per file before a chunk is sent.
const CHUNK_BYTES: usize = 256 * 1024;

/// A file being written: buffered, hashed, sent in chunks.
pub(super) struct FileOut {
    name: &'static str,
    buf: Vec<u8>,
    hasher: Sha256,
    bytes: u64,
}

impl FileOut {
    pub(super) fn new(name: &'static str) -> FileOut {
        FileOut {
            name,
            buf: Vec::with_capacity(CHUNK_BYTES + 1024),
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Appends `data`; returns a chunk to send once enough is buffered.
    pub(super) fn write(&mut self, data: &[u8]) -> Option<ExportItem> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.buf.extend_from_slice(data);
        (self.buf.len() >= CHUNK_BYTES).then(|| self.take())
    }

    /// Appends what `f` writes into the buffer (no copy through a line of
    /// its own); returns a chunk to send once enough is buffered.
    pub(super) fn write_with<E>(
        &mut self,
        f: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Option<ExportItem>, E> {
        let start = self.buf.len();
        if let Err(e) = f(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let added = &self.buf[start..];
        self.hasher.update(added);
        self.bytes += added.len() as u64;
        Ok((self.buf.len() >= CHUNK_BYTES).then(|| self.take()))
    }

    fn take(&mut self) -> ExportItem {
        ExportItem::Data {
            file: self.name,
            bytes: std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + 1024)),
        }
    }

    /// The last chunk, the completion item and the manifest entry.
    pub(super) fn finish(mut self) -> (Vec<ExportItem>, FileEntry) {
        let sha256 = hex::encode(self.hasher.finalize_reset());
        let mut items = Vec::new();
        if !self.buf.is_empty() {
            items.push(self.take());
        }
        items.push(ExportItem::Done {
            file: self.name,
            sha256: sha256.clone(),
            bytes: self.bytes,
        });
        let entry = FileEntry {
            name: self.name.to_string(),
            sha256,
            bytes: self.bytes,
        };
        (items, entry)
    }
}

pub(super) async fn send(
    tx: &mpsc::Sender<ExportItem>,
    item: ExportItem,
) -> Result<(), ExportError> {
    tx.send(item).await.map_err(|_| ExportError::Cancelled)
}

pub(super) async fn send_all(
    tx: &mpsc::Sender<ExportItem>,
    items: Vec<ExportItem>,
) -> Result<(), ExportError> {
    for item in items {
        send(tx, item).await?;
    }
    Ok(())
}
