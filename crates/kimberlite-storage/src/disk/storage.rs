//! [`Storage`]: opening a store, flush and sync, and the [`StorageBackend`] implementation
//! (the write steps of an append and rotation are in `append`). See the `disk` module docs for
//! layout and durability.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

use super::config::StorageConfig;
use super::fs::{FileSystem, OsFileSystem};
use super::meta::write_index;
use super::resume::resume_head;
use super::stream::{io_error, StreamState, Unopened};
use super::stream_dirs::open_streams;
use crate::backend::{
    assert_offset_advanced, batch_ends, check_append_lens, SegmentSync, StorageBackend,
    StoreBackend,
};
use crate::error::StorageError;
use crate::parallel::{Encoder, VerifyPool};
use crate::recovery_report::RecoveryReport;
use crate::stream_stats::StreamStats;
use crate::transform::PayloadTransform;
use crate::verify::{VerifyResume, VerifyStep};

/// Bytes an active segment is mapped past its rotation size ([`Storage::active_map_capacity`]).
const ACTIVE_MAP_SLACK: u64 = 64 << 20;

/// The lock file in a store's directory.
pub const LOCK_FILE: &str = "LOCK";
/// The directory of stream directories.
pub const STREAMS_DIR: &str = "streams";

/// The on-disk storage backend: hash-chained streams in segment files under one directory.
///
/// Generic over the [`FileSystem`] it runs on; [`OsFileSystem`] (the default) is the real
/// one. `Send + Sync`; methods that change state take `&mut self`, so callers share it behind
/// their own lock. Only one `Storage` may have a directory open at a time (an advisory lock
/// file enforces it).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use kimberlite_storage::{Storage, StorageBackend, StoreBackend};
/// use kimberlite_types::{Offset, StreamId};
///
/// let dir = tempfile::tempdir().unwrap();
/// let stream = StreamId::new(1);
/// let head = {
///     let mut storage = Storage::open(dir.path()).unwrap();
///     let events = vec![Bytes::from_static(b"admitted"), Bytes::from_static(b"discharged")];
///     let (next, head) = storage.append_batch(stream, events, Offset::ZERO, None, true).unwrap();
///     assert_eq!(next, Offset::new(2));
///     head
/// };
/// let mut storage = Storage::open(dir.path()).unwrap();
/// assert!(storage.recovery_report().is_clean());
/// assert_eq!(storage.latest_chain_hash(stream).unwrap(), Some(head));
/// let read = storage.read_from(stream, Offset::new(1), u64::MAX).unwrap();
/// assert_eq!(read, vec![Bytes::from_static(b"discharged")]);
/// ```
pub struct Storage<F: FileSystem = OsFileSystem> {
    pub(super) fs: F,
    pub(super) dir: PathBuf,
    pub(super) config: StorageConfig,
    pub(super) streams: BTreeMap<StreamId, StreamState<F>>,
    /// Streams whose files `open` could not reconcile (`StorageError::Unrecoverable`): left
    /// as they are on disk, and every call on them returns that error, so that one damaged
    /// stream does not keep the others from being read and verified.
    pub(super) unopened: BTreeMap<StreamId, Unopened>,
    pub(super) report: RecoveryReport,
    pub(super) poisoned: Option<String>,
    /// The batch encoding buffer, reused by every append.
    pub(super) buffer: Vec<u8>,
    /// Encodes batches, with the shared encode helper for large ones (`config.hash_ahead`).
    pub(super) encoder: Encoder,
    /// Helper threads for verified reads (`config.verify_threads`), started at first use.
    pub(super) verify_pool: Mutex<VerifyPool>,
    /// This handle's number in the pause points of its verifications (`verify::pieces`).
    pub(super) handle: u64,
    _lock: F::Lock,
}

impl Storage<OsFileSystem> {
    /// Opens (creating if missing) the store in `dir` with the default [`StorageConfig`],
    /// recovering it as `recovery` describes; see [`StoreBackend::recovery_report`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(dir, StorageConfig::default())
    }

    /// Opens (creating if missing) the store in `dir` with `config`.
    pub fn open_with(dir: impl AsRef<Path>, config: StorageConfig) -> Result<Self, StorageError> {
        Self::open_on(OsFileSystem, dir, config)
    }
}

impl<F: FileSystem> Storage<F> {
    /// Opens the store in `dir` on the file system `fs`.
    pub fn open_on(
        fs: F,
        dir: impl AsRef<Path>,
        config: StorageConfig,
    ) -> Result<Self, StorageError> {
        let dir = dir.as_ref();
        let dir = fs.resolve(dir).map_err(|source| io_error(dir, source))?;
        let streams_dir = dir.join(STREAMS_DIR);
        fs.create_dir_all(&dir)
            .map_err(|source| io_error(&dir, source))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs
            .try_lock(&lock_path)
            .map_err(|source| io_error(&lock_path, source))?
            .ok_or(StorageError::Locked { path: lock_path })?;
        let entries = fs.list_dir(&dir).map_err(|source| io_error(&dir, source))?;
        if !entries.iter().any(|name| name == STREAMS_DIR) {
            fs.create_dir_all(&streams_dir)
                .map_err(|source| io_error(&streams_dir, source))?;
            fs.sync_dir(&dir).map_err(|source| io_error(&dir, source))?;
        }
        let mut report = RecoveryReport::default();
        let (streams, unopened) = open_streams(&fs, &streams_dir, &config, &mut report)?;
        let mut storage = Self {
            fs,
            dir,
            config,
            streams,
            unopened,
            report,
            poisoned: None,
            buffer: Vec::new(),
            encoder: Encoder::default(),
            verify_pool: Mutex::new(VerifyPool::new(config.verify_threads)),
            handle: crate::verify::new_handle_id(),
            _lock: lock,
        };
        storage.complete_interrupted_rotations()?;
        Ok(storage)
    }

    /// The store's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the store was opened with.
    #[must_use]
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// Changes [`StorageConfig::verify_threads`] of the open store (the only setting that
    /// does not shape the files): reads and verifications from now on use up to `threads`
    /// threads; 1 keeps them on the calling thread.
    pub fn set_verify_threads(&mut self, threads: usize) {
        self.config.verify_threads = threads;
        self.verify_pool = Mutex::new(VerifyPool::new(threads));
    }

    /// `stream`, ready for a verified walk (its active segment mapped for reads); `None` for
    /// an unknown stream, the error of a stream `open` left unopened.
    pub(super) fn readable(
        &self,
        stream: StreamId,
    ) -> Result<Option<&StreamState<F>>, StorageError> {
        self.refuse_unopened(stream)?;
        let state = self.streams.get(&stream);
        if let Some(state) = state {
            state.map_active(&self.fs, self.active_map_capacity());
        }
        Ok(state)
    }

    /// How far ahead of its end an active segment is mapped for reads: its rotation size plus
    /// room for the batch that crosses it. A segment longer than that is read through the file.
    fn active_map_capacity(&self) -> u64 {
        self.config
            .max_segment_size
            .saturating_add(ACTIVE_MAP_SLACK)
    }

    /// The error of a stream `open` left unopened ([`Storage::unopened`]), if it is one.
    fn refuse_unopened(&self, stream: StreamId) -> Result<(), StorageError> {
        match self.unopened.get(&stream) {
            Some(unopened) => Err(unopened.to_error(stream)),
            None => Ok(()),
        }
    }

    pub(super) fn check_poisoned(&self) -> Result<(), StorageError> {
        match &self.poisoned {
            Some(context) => Err(StorageError::Poisoned {
                context: context.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Latches the store as poisoned when `result` is an error (fail-stop).
    pub(super) fn poison_on_error<T>(
        &mut self,
        result: Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if let Err(error) = &result {
            if self.poisoned.is_none() {
                self.poisoned = Some(error.to_string());
            }
        }
        result
    }
}

impl<F: FileSystem> StorageBackend for Storage<F> {
    fn append_batch(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash), StorageError> {
        assert!(!events.is_empty(), "cannot append empty batch");
        let count = events.len();
        self.append_batches(
            stream_id,
            events,
            &[count],
            expected_offset,
            prev_hash,
            fsync,
        )
    }

    /// Readers run side by side (`&self`). The store's verify threads serve one read at a
    /// time; a read that finds them busy verifies on its own thread instead of waiting.
    fn read_from(
        &self,
        stream_id: StreamId,
        from_offset: Offset,
        max_bytes: u64,
    ) -> Result<Vec<Bytes>, StorageError> {
        let Some(state) = self.readable(stream_id)? else {
            return Ok(Vec::new());
        };
        let from = from_offset.as_u64();
        match self.verify_pool.try_lock() {
            Ok(mut pool) => state.read_from(from, max_bytes, &mut pool),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                state.read_from(from, max_bytes, &mut poisoned.into_inner())
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                state.read_from(from, max_bytes, &mut VerifyPool::new(1))
            }
        }
    }

    fn latest_chain_hash(&self, stream_id: StreamId) -> Result<Option<ChainHash>, StorageError> {
        self.refuse_unopened(stream_id)?;
        match self.streams.get(&stream_id) {
            Some(state) => match &state.damage {
                Some(damage) => Err(damage.to_error(stream_id)),
                None => Ok(state.head),
            },
            None => Ok(None),
        }
    }

    fn segment_count(&self, stream_id: StreamId) -> usize {
        self.streams
            .get(&stream_id)
            .map_or(0, |state| state.table.segments().len())
    }

    fn completed_segments(&self, stream_id: StreamId) -> Vec<u32> {
        self.streams
            .get(&stream_id)
            .map_or_else(Vec::new, |state| state.table.completed_segments())
    }

    fn flush_indexes(&mut self) -> Result<(), StorageError> {
        for state in self.streams.values_mut().filter(|state| state.index_dirty) {
            if state.damage.is_some() {
                continue;
            }
            let Some(active) = state.segments.last() else {
                continue;
            };
            // A resume point only over fsynced bytes: open will trust what it covers unread.
            let head = resume_head(
                &active.index,
                state.head,
                state.synced_len,
                state.chain_break,
            );
            write_index(
                &self.fs,
                &state.dir,
                state.id,
                active.num,
                &active.index,
                head,
            )
            .map_err(|source| io_error(&active.path, source))?;
            state.index_dirty = false;
        }
        Ok(())
    }
}

/// The head a caller expects and whether to sync: what every append call passes on.
struct AppendCall {
    expected_offset: Offset,
    prev_hash: Option<ChainHash>,
    fsync: bool,
}

impl<F: FileSystem> Storage<F> {
    /// [`StoreBackend::append_batches`], with each chunk's events first changed by
    /// `transform` (if any) and pushed, as stored, to `stored`.
    fn append_with(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        batch_lens: &[usize],
        call: AppendCall,
        transform: Option<Arc<dyn PayloadTransform>>,
        stored: &mut Vec<Bytes>,
    ) -> Result<(Offset, ChainHash), StorageError> {
        let AppendCall {
            expected_offset,
            prev_hash,
            fsync,
        } = call;
        assert!(!events.is_empty(), "cannot append empty batch");
        let ends = batch_ends(expected_offset, batch_lens, events.len());
        self.check_poisoned()?;
        // Before anything else: an unopened stream must never look new (its files would be
        // created again over the ones open could not read).
        self.refuse_unopened(stream_id)?;
        let (head_offset, head_hash) = match self.streams.get(&stream_id) {
            Some(state) => match &state.damage {
                Some(damage) => return Err(damage.to_error(stream_id)),
                None => (state.next_offset(), state.head),
            },
            None => (Offset::ZERO, None),
        };
        let stored_len = |len: usize| transform.as_ref().map_or(len, |t| t.output_len(len));
        check_append_lens(
            stream_id,
            events.iter().map(|event| stored_len(event.len())),
            expected_offset,
            prev_hash,
            (head_offset, head_hash),
        )?;

        if !self.streams.contains_key(&stream_id) {
            let created = self.create_stream(stream_id);
            self.poison_on_error(created)?;
        }
        let event_count = events.len();
        let written = self.write_batch(stream_id, events, ends, fsync, transform, stored);
        let (seen, last_hash) = self.poison_on_error(written)?;

        // The batch is written (and synced when asked): commit it in memory.
        let interval = self.config.index_interval;
        let max_segment_size = self.config.max_segment_size;
        let Some(state) = self.streams.get_mut(&stream_id) else {
            // Unreachable: the stream was found or created above.
            return Err(StorageError::Poisoned {
                context: format!("stream {stream_id} vanished during append"),
            });
        };
        if let Some(active) = state.segments.last_mut() {
            for record in &seen {
                active.index.push(*record, interval);
                if !record.is_restart {
                    state.table.record_appended(record.payload_len);
                }
            }
        }
        state.head = last_hash;
        state.index_dirty = true;
        let next_offset = state.next_offset();
        assert_offset_advanced(expected_offset, next_offset, event_count);
        let last_hash = last_hash.expect("a non-empty batch has a last hash");
        if let Some(num) = state.table.end_batch(max_segment_size) {
            // The batch itself is committed; a failure here poisons the store, so the next
            // call reports it, but this batch is not reported as failed.
            let rotated = self.rotate(stream_id, num);
            let _ = self.poison_on_error(rotated);
        }
        Ok((next_offset, last_hash))
    }
}

impl<F: FileSystem> StoreBackend for Storage<F> {
    fn append_batches(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        batch_lens: &[usize],
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash), StorageError> {
        let call = AppendCall {
            expected_offset,
            prev_hash,
            fsync,
        };
        self.append_with(stream_id, events, batch_lens, call, None, &mut Vec::new())
    }

    fn append_transformed(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        transform: Arc<dyn PayloadTransform>,
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash, Vec<Bytes>), StorageError> {
        let call = AppendCall {
            expected_offset,
            prev_hash,
            fsync,
        };
        let lens = [events.len()];
        let mut stored = Vec::with_capacity(events.len());
        let (next, hash) =
            self.append_with(stream_id, events, &lens, call, Some(transform), &mut stored)?;
        Ok((next, hash, stored))
    }

    fn holds(&self, stream: StreamId) -> bool {
        self.streams
            .get(&stream)
            .is_some_and(|state| state.table.next_offset() > 0 || state.damage.is_some())
            || self.unopened.contains_key(&stream)
    }

    fn streams(&self) -> Vec<StreamId> {
        let mut ids: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, state)| state.table.next_offset() > 0 || state.damage.is_some())
            .map(|(id, _)| *id)
            .chain(self.unopened.keys().copied())
            .collect();
        ids.sort_unstable();
        ids
    }

    fn stream_stats(&self, stream: StreamId) -> Option<StreamStats> {
        let state = self.streams.get(&stream)?;
        // Segments retention dropped have no file.
        let kept = state.segments.iter().skip(state.walk_start().0);
        let summaries = kept.map(|files| &files.index.summary);
        let mut stats = StreamStats {
            next_offset: state.next_offset(),
            segment_count: state.table.segments().len(),
            stored_bytes: 0,
            logical_bytes: 0,
            restart_record_count: 0,
            compressed_record_count: 0,
        };
        for summary in summaries {
            stats.stored_bytes += summary.len_bytes;
            stats.logical_bytes += summary.logical_size_bytes;
            stats.restart_record_count += summary.restart_record_count;
            stats.compressed_record_count += summary.compressed_count;
        }
        Some(stats)
    }

    fn next_offset(&self, stream: StreamId) -> Result<Offset, StorageError> {
        Ok(self
            .stream_stats(stream)
            .map_or(Offset::ZERO, |stats| stats.next_offset))
    }

    fn verify_stream_piece(
        &self,
        stream: StreamId,
        from: Option<VerifyResume>,
        max_records: u64,
        on_event: &mut dyn FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError> {
        Storage::verify_stream_piece(self, stream, from, max_records, on_event)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.flush_files()
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.sync_files()
    }

    fn sync_begin(&mut self) -> Result<Vec<SegmentSync>, StorageError> {
        self.take_syncs()
    }

    fn sync_finished(&mut self, done: &[SegmentSync]) {
        self.record_syncs(done);
    }

    fn prune_point(&self, stream: StreamId) -> Option<crate::PrunePoint> {
        Storage::prune_point(self, stream)
    }

    fn prune_boundary(&self, stream: StreamId, before: Offset) -> Result<Offset, StorageError> {
        Storage::prune_boundary(self, stream, before)
    }

    fn prune(
        &mut self,
        stream: StreamId,
        cut: Offset,
        tree_frontier: Vec<[u8; 32]>,
        checkpoint_size: u64,
    ) -> Result<crate::PrunePoint, StorageError> {
        Storage::prune(self, stream, cut, tree_frontier, checkpoint_size)
    }

    fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }
}

#[cfg(feature = "fuzz-reset")]
impl<F: FileSystem> crate::backend::ResetStorage for Storage<F> {
    fn reset(&mut self) -> Result<(), StorageError> {
        for state in std::mem::take(&mut self.streams).into_values() {
            let names = self
                .fs
                .list_dir(&state.dir)
                .map_err(|e| io_error(&state.dir, e))?;
            for name in names {
                let path = state.dir.join(name);
                self.fs.remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
        }
        self.poisoned = None;
        Ok(())
    }
}
