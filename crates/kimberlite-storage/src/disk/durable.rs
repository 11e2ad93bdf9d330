//! Making appended bytes durable, the bodies of `Storage`'s [`StoreBackend`] methods:
//! `flush` (segments, manifests and indexes), `sync` (segment data only, as an append with
//! `fsync = true` does), and the two halves of a sync that runs outside the store's lock
//! (`sync_begin`, [`SegmentSync::run`], `sync_finished`) for group commit.
//!
//! A failed sync poisons the store (fail-stop; after a failed [`SegmentSync`] that is the
//! caller's to do): a retried `fsync` can report success for data the kernel already dropped,
//! so nothing after it is trusted until a reopen recovers.

use kimberlite_types::StreamId;

use super::fs::{FileHandle, FileSystem};
use super::meta::write_manifest;
use super::storage::Storage;
use super::stream::io_error;
#[cfg(doc)]
use crate::backend::StoreBackend;
use crate::backend::{SegmentSync, StorageBackend};
use crate::error::StorageError;

impl<F: FileSystem> Storage<F> {
    /// [`StoreBackend::flush`]: syncs every active segment written since its last sync,
    /// writes dirty indexes, and updates manifests whose watermark is behind.
    pub(super) fn flush_files(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            let result = self.flush_stream(id);
            self.poison_on_error(result)?;
        }
        self.flush_indexes()
    }

    /// [`StoreBackend::sync`]: `fdatasync`s each active segment written since its last
    /// sync, and nothing else (no manifest or index writes, which `flush` also does). One
    /// device flush then covers any number of unsynced batches: what group commit needs.
    /// Recovery treats these bytes as it treats any synced batch (see `recovery`).
    pub(super) fn sync_files(&mut self) -> Result<(), StorageError> {
        self.check_poisoned()?;
        let ids: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in ids {
            let result = self.sync_stream(id);
            self.poison_on_error(result)?;
        }
        Ok(())
    }

    /// [`StoreBackend::sync_begin`]: for each active segment written since its last sync, a
    /// handle of its own on the file (shared with the writer's where the file system can,
    /// else opened anew) and the length to record as synced. A `SegmentSync` that
    /// fails leaves the store's durable watermark where it was.
    ///
    /// This is how group commit keeps appenders writing while a sync runs.
    pub(super) fn take_syncs(&mut self) -> Result<Vec<SegmentSync>, StorageError> {
        self.check_poisoned()?;
        let mut syncs = Vec::new();
        for state in self.streams.values() {
            let Some(active) = state.active_files() else {
                continue;
            };
            let len = active.index.summary.len_bytes;
            if state.synced_len >= len {
                continue;
            }
            let file = match state.active.share() {
                Some(file) => file,
                None => Box::new(
                    self.fs
                        .open(&active.path)
                        .map_err(|source| io_error(&active.path, source))?,
                ),
            };
            syncs.push(SegmentSync {
                stream: state.id,
                segment_num: active.num,
                len,
                path: active.path.clone(),
                file,
            });
        }
        Ok(syncs)
    }

    /// [`StoreBackend::sync_finished`]: each segment is durable up to the length it was taken
    /// at (unless it has been completed since, which syncs it anyway).
    pub(super) fn record_syncs(&mut self, done: &[SegmentSync]) {
        for sync in done {
            let Some(state) = self.streams.get_mut(&sync.stream) else {
                continue;
            };
            if state.active_files().map(|files| files.num) == Some(sync.segment_num) {
                state.synced_len = state.synced_len.max(sync.len);
            }
        }
    }

    /// Syncs `id`'s active segment if it was written since its last sync; returns its length.
    fn sync_stream(&mut self, id: StreamId) -> Result<u64, StorageError> {
        let Some(state) = self.streams.get_mut(&id) else {
            return Ok(0);
        };
        let len = state
            .active_files()
            .map_or(0, |files| files.index.summary.len_bytes);
        if state.synced_len < len {
            let path = state
                .active_files()
                .map(|files| files.path.clone())
                .unwrap_or_default();
            state
                .active
                .sync_data()
                .map_err(|source| io_error(&path, source))?;
            state.synced_len = len;
        }
        Ok(len)
    }

    fn flush_stream(&mut self, id: StreamId) -> Result<(), StorageError> {
        let len = self.sync_stream(id)?;
        let Some(state) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if state.manifest_len != len && state.damage.is_none() {
            write_manifest(&self.fs, state).map_err(|source| io_error(&state.dir, source))?;
            state.manifest_len = len;
        }
        Ok(())
    }
}
