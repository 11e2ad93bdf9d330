//! The storage backends a store can sit on, behind one small internal interface.
//!
//! [`StorageBackend`] is the seed's trait and holds what every backend shares; the store also
//! needs a few inherent methods of the concrete backends (`streams`, `verify_stream`, `flush`,
//! statistics). An enum keeps those calls static and lets a new backend join with one arm per
//! method.

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_storage::disk::OsFile;
use kimberlite_storage::{
    MemoryStorage, RecoveryReport, SegmentSync, Storage, StorageBackend, StorageConfig,
    StorageError, VerifyResume, VerifyStep,
};
use kimberlite_types::{Offset, StreamId};

/// What the storage layer can tell about one stream's footprint. Fields a backend does not
/// track are `None` (the in-memory backend has no files, no compression, no restart records).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Segments, the active one included.
    pub segments: usize,
    /// Bytes stored (frames as written, compressed where compressed, restart records included).
    pub stored_bytes: Option<u64>,
    /// Bytes the data records would take uncompressed.
    pub logical_bytes: Option<u64>,
    /// Restart records stored.
    pub restart_records: Option<u64>,
    /// Data records stored compressed.
    pub compressed_records: Option<u64>,
}

/// The backend under a store.
pub(crate) enum Backend {
    /// Everything in memory; nothing survives the process.
    Memory(MemoryStorage),
    /// Segment files in a directory (boxed: it is much larger than the memory backend).
    Disk(Box<Storage>),
    /// Memory with injected append and flush failures, for tests of fail-stop and group commit.
    #[cfg(test)]
    Faulty(MemoryStorage, std::sync::Arc<Faults>),
}

/// Switches and counters of [`Backend::Faulty`].
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Appends fail with an I/O error (nothing written).
    pub(crate) fail_appends: std::sync::atomic::AtomicBool,
    /// Flushes fail with an I/O error.
    pub(crate) fail_flushes: std::sync::atomic::AtomicBool,
    /// Flushes run so far.
    pub(crate) flushes: std::sync::atomic::AtomicU64,
    /// Each flush sleeps this long (microseconds), as a disk would.
    pub(crate) flush_micros: std::sync::atomic::AtomicU64,
}

#[cfg(test)]
impl Faults {
    fn injected(what: &str) -> StorageError {
        StorageError::Io {
            context: format!("injected {what} failure"),
            source: std::io::Error::other("injected"),
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Memory(memory) => f.debug_tuple("Memory").field(memory).finish(),
            Backend::Disk(disk) => f.debug_tuple("Disk").field(&disk.dir()).finish(),
            #[cfg(test)]
            Backend::Faulty(memory, _) => f.debug_tuple("Faulty").field(memory).finish(),
        }
    }
}

#[expect(
    clippy::result_large_err,
    reason = "StorageError is the storage layer's type; the store boxes it in its own Error"
)]
impl Backend {
    pub(crate) fn append_batch(
        &mut self,
        stream: StreamId,
        events: Vec<Bytes>,
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash), StorageError> {
        match self {
            Backend::Memory(memory) => {
                memory.append_batch(stream, events, expected_offset, prev_hash, fsync)
            }
            Backend::Disk(disk) => {
                disk.append_batch(stream, events, expected_offset, prev_hash, fsync)
            }
            #[cfg(test)]
            Backend::Faulty(memory, faults) => {
                if faults
                    .fail_appends
                    .load(std::sync::atomic::Ordering::SeqCst)
                {
                    return Err(Faults::injected("append"));
                }
                memory.append_batch(stream, events, expected_offset, prev_hash, fsync)
            }
        }
    }

    /// A verified read through a shared reference: readers holding the store's read lock
    /// run side by side.
    pub(crate) fn read_from(
        &self,
        stream: StreamId,
        from: Offset,
        max_bytes: u64,
    ) -> Result<Vec<Bytes>, StorageError> {
        match self {
            Backend::Memory(memory) => memory.read_shared(stream, from, max_bytes),
            Backend::Disk(disk) => disk.read_shared(stream, from, max_bytes),
            #[cfg(test)]
            Backend::Faulty(memory, _) => memory.read_shared(stream, from, max_bytes),
        }
    }

    pub(crate) fn latest_chain_hash(
        &mut self,
        stream: StreamId,
    ) -> Result<Option<ChainHash>, StorageError> {
        match self {
            Backend::Memory(memory) => memory.latest_chain_hash(stream),
            Backend::Disk(disk) => disk.latest_chain_hash(stream),
            #[cfg(test)]
            Backend::Faulty(memory, _) => memory.latest_chain_hash(stream),
        }
    }

    /// The stream's next offset as stored. `O(n)` for memory, which never needs it on a hot
    /// path: a memory store starts empty, so there is nothing to recover.
    pub(crate) fn next_offset(&mut self, stream: StreamId) -> Result<Offset, StorageError> {
        match self {
            Backend::Memory(memory) => Ok(memory.verify_stream(stream)?.next_offset),
            Backend::Disk(disk) => Ok(disk
                .stream_stats(stream)
                .map_or(Offset::ZERO, |stats| stats.next_offset)),
            #[cfg(test)]
            Backend::Faulty(memory, _) => Ok(memory.verify_stream(stream)?.next_offset),
        }
    }

    /// Whether `stream` is one of [`Self::streams`], in O(1).
    pub(crate) fn holds(&self, stream: StreamId) -> bool {
        match self {
            Backend::Memory(memory) => memory.holds(stream),
            Backend::Disk(disk) => disk.holds(stream),
            #[cfg(test)]
            Backend::Faulty(memory, _) => memory.holds(stream),
        }
    }

    /// Streams holding at least one record, ascending.
    pub(crate) fn streams(&self) -> Vec<StreamId> {
        match self {
            Backend::Memory(memory) => memory.streams(),
            Backend::Disk(disk) => disk.streams(),
            #[cfg(test)]
            Backend::Faulty(memory, _) => memory.streams(),
        }
    }

    /// One piece of the verification of every record of `stream`, handing each event to
    /// `on_event` in the same walk (`Storage::verify_stream_piece`).
    pub(crate) fn verify_stream_piece(
        &self,
        stream: StreamId,
        from: Option<VerifyResume>,
        max_records: u64,
        on_event: impl FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError> {
        match self {
            Backend::Memory(memory) => {
                memory.verify_stream_piece(stream, from, max_records, on_event)
            }
            Backend::Disk(disk) => disk.verify_stream_piece(stream, from, max_records, on_event),
            #[cfg(test)]
            Backend::Faulty(memory, _) => {
                memory.verify_stream_piece(stream, from, max_records, on_event)
            }
        }
    }

    /// Makes everything written so far durable: data, manifests and indexes.
    pub(crate) fn flush(&mut self) -> Result<(), StorageError> {
        match self {
            Backend::Disk(disk) => disk.flush(),
            _ => self.sync(),
        }
    }

    /// The first half of group commit's sync: what to sync outside the store's lock
    /// ([`Storage::sync_begin`]). Backends without files sync here and return nothing.
    pub(crate) fn sync_begin(&mut self) -> Result<Vec<SegmentSync<OsFile>>, StorageError> {
        match self {
            Backend::Disk(disk) => disk.sync_begin(),
            _ => self.sync().map(|()| Vec::new()),
        }
    }

    /// Records the syncs of [`Backend::sync_begin`] that ran ([`Storage::sync_finished`]).
    pub(crate) fn sync_finished(&mut self, done: &[SegmentSync<OsFile>]) {
        if let Backend::Disk(disk) = self {
            disk.sync_finished(done);
        }
    }

    /// Makes everything written so far durable with the fewest device flushes: syncs the
    /// segment data only, as an append with `fsync = true` does (group commit's sync).
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        match self {
            Backend::Memory(_) => Ok(()),
            Backend::Disk(disk) => disk.sync(),
            #[cfg(test)]
            Backend::Faulty(_, faults) => {
                use std::sync::atomic::Ordering;
                faults.flushes.fetch_add(1, Ordering::SeqCst);
                let micros = faults.flush_micros.load(Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_micros(micros));
                if faults.fail_flushes.load(Ordering::SeqCst) {
                    return Err(Faults::injected("flush"));
                }
                Ok(())
            }
        }
    }

    /// What opening the backend repaired or found; empty for memory.
    pub(crate) fn recovery_report(&self) -> RecoveryReport {
        match self {
            Backend::Disk(disk) => disk.recovery_report().clone(),
            _ => RecoveryReport::default(),
        }
    }

    pub(crate) fn stats(&self, stream: StreamId) -> StorageStats {
        match self {
            Backend::Memory(memory) => StorageStats {
                segments: memory.segment_count(stream),
                ..StorageStats::default()
            },
            Backend::Disk(disk) => match disk.stream_stats(stream) {
                Some(stats) => StorageStats {
                    segments: stats.segment_count,
                    stored_bytes: Some(stats.stored_bytes),
                    logical_bytes: Some(stats.logical_bytes),
                    restart_records: Some(stats.restart_record_count),
                    compressed_records: Some(stats.compressed_record_count),
                },
                None => StorageStats::default(),
            },
            #[cfg(test)]
            Backend::Faulty(memory, _) => StorageStats {
                segments: memory.segment_count(stream),
                ..StorageStats::default()
            },
        }
    }
}

/// Opens the on-disk backend in `dir` (already checked by the store).
pub(crate) fn open_disk(dir: &std::path::Path, config: &crate::Config) -> crate::Result<Backend> {
    let mut storage_config = StorageConfig {
        compression: config.compression,
        ..StorageConfig::default()
    };
    if let Some(bytes) = config.max_segment_size_bytes {
        storage_config.max_segment_size = bytes;
    }
    match Storage::open_with(dir, storage_config) {
        Ok(storage) => Ok(Backend::Disk(Box::new(storage))),
        Err(StorageError::Locked { .. }) => Err(crate::Error::Locked {
            path: dir.to_path_buf(),
        }),
        Err(source) => Err(crate::Error::storage(None, source)),
    }
}
