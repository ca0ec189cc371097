//! Whether a store of read models was built from the log it is opened
//! with. Read models follow the log by position; opened beside another log
//! (a stream deleted and created again, a restore from an older backup,
//! another ledger under the same stream name) they would show a history the
//! log does not have, and wait for positions it reached long ago, without a
//! word. So before a store is used its furthest position must be in the log,
//! and the last record its Merkle tree took must be the log's record there.

use std::path::Path;

use futures::StreamExt;
use waybill_ledger::audit::{leaf_hash, Nodes};
use waybill_ledger::{EventLog, LedgerError, Position};

use crate::audit::MerkleStore;
use crate::error::ProjectionError;

/// Checks that the read models (at `applied`) and the Merkle tree in
/// `merkle`, both stored in `dir`, were built from `log`; the error says
/// what to do when they were not.
pub async fn check_built_from(
    log: &dyn EventLog,
    applied: Position,
    merkle: &MerkleStore,
    dir: &Path,
) -> Result<(), ProjectionError> {
    let store = merkle.clone();
    let leaf = tokio::task::spawn_blocking(move || {
        let size = store.size()?;
        let leaf = match size {
            0 => None,
            size => Some(store.node(0, size - 1)?),
        };
        Ok::<_, ProjectionError>((size, leaf))
    })
    .await
    .map_err(|e| ProjectionError::Storage(e.to_string()))??;
    let (size, leaf) = leaf;
    let furthest = applied.max(Position(size));
    if furthest == Position::ZERO {
        return Ok(());
    }
    let head = log.head().await?;
    let what_to_do = format!(
        "it is not the log they were built from, or it lost records since (a stream deleted \
         and created again, a restore from an older backup, another ledger under the same \
         stream name). If this log is the right one, build them again from it: `waybill \
         projections rebuild` with the same --data-dir and log options (or remove {}); \
         otherwise point the server at the log they were built from",
        dir.display()
    );
    if head < furthest {
        return Err(ProjectionError::OtherLog(format!(
            "the read models in {} reflect position {furthest} of the log, which ends at \
             position {head}: {what_to_do}",
            dir.display()
        )));
    }
    if let Some(leaf) = leaf {
        let at = Position(size);
        // A message Waybill did not write is a leaf too.
        let record = match log.read_all(at).await?.next().await {
            Some(Ok(r)) => Some((r.position, r.bytes)),
            Some(Err(LedgerError::Foreign(f))) => Some((f.position, f.bytes)),
            Some(Err(e)) => return Err(e.into()),
            None => None,
        };
        let same = record.is_some_and(|(p, bytes)| p == at && leaf_hash(&bytes) == leaf);
        if !same {
            return Err(ProjectionError::OtherLog(format!(
                "the log's record at position {at} is not the one the read models in {} \
                 were built from: {what_to_do}",
                dir.display()
            )));
        }
    }
    Ok(())
}
