//! Test-only backend: [`FaultyStorage`], a [`MemoryStorage`] whose appends and syncs fail on
//! command ([`Faults`]), for the tests of fail-stop and group commit (`fault_tests.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_storage::{
    MemoryStorage, RecoveryReport, SegmentSync, StorageBackend, StorageError, StoreBackend,
    StreamStats, VerifyResume, VerifyStep,
};
use kimberlite_types::{Offset, StreamId};

use crate::config::Config;
use crate::store::Kimberlite;

/// Switches and counters of a [`FaultyStorage`].
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Appends fail with an I/O error (nothing written).
    pub(crate) fail_appends: AtomicBool,
    /// Flushes fail with an I/O error.
    pub(crate) fail_flushes: AtomicBool,
    /// Flushes run so far.
    pub(crate) flushes: AtomicU64,
    /// Each flush sleeps this long (microseconds), as a disk would.
    pub(crate) flush_micros: AtomicU64,
}

impl Faults {
    fn injected(what: &str) -> StorageError {
        StorageError::Io {
            context: format!("injected {what} failure"),
            source: std::io::Error::other("injected"),
        }
    }
}

/// Memory with injected append and flush failures.
#[derive(Debug)]
pub(crate) struct FaultyStorage {
    memory: MemoryStorage,
    faults: Arc<Faults>,
}

impl StorageBackend for FaultyStorage {
    fn append_batch(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash), StorageError> {
        if self.faults.fail_appends.load(Ordering::SeqCst) {
            return Err(Faults::injected("append"));
        }
        self.memory
            .append_batch(stream_id, events, expected_offset, prev_hash, fsync)
    }

    fn read_from(
        &self,
        stream_id: StreamId,
        from_offset: Offset,
        max_bytes: u64,
    ) -> Result<Vec<Bytes>, StorageError> {
        self.memory.read_from(stream_id, from_offset, max_bytes)
    }

    fn latest_chain_hash(&self, stream_id: StreamId) -> Result<Option<ChainHash>, StorageError> {
        self.memory.latest_chain_hash(stream_id)
    }

    fn segment_count(&self, stream_id: StreamId) -> usize {
        self.memory.segment_count(stream_id)
    }

    fn completed_segments(&self, stream_id: StreamId) -> Vec<u32> {
        self.memory.completed_segments(stream_id)
    }

    fn flush_indexes(&mut self) -> Result<(), StorageError> {
        self.memory.flush_indexes()
    }
}

/// Every sync (whole, or begun for group commit) and every flush is one injected flush.
impl StoreBackend for FaultyStorage {
    fn append_batches(
        &mut self,
        stream_id: StreamId,
        events: Vec<Bytes>,
        batch_lens: &[usize],
        expected_offset: Offset,
        prev_hash: Option<ChainHash>,
        fsync: bool,
    ) -> Result<(Offset, ChainHash), StorageError> {
        if self.faults.fail_appends.load(Ordering::SeqCst) {
            return Err(Faults::injected("append"));
        }
        self.memory.append_batches(
            stream_id,
            events,
            batch_lens,
            expected_offset,
            prev_hash,
            fsync,
        )
    }

    fn streams(&self) -> Vec<StreamId> {
        self.memory.streams()
    }

    fn holds(&self, stream: StreamId) -> bool {
        self.memory.holds(stream)
    }

    fn next_offset(&self, stream: StreamId) -> Result<Offset, StorageError> {
        StoreBackend::next_offset(&self.memory, stream)
    }

    fn verify_stream_piece(
        &self,
        stream: StreamId,
        from: Option<VerifyResume>,
        max_records: u64,
        on_event: &mut dyn FnMut(Offset, &Bytes),
    ) -> Result<VerifyStep, StorageError> {
        self.memory
            .verify_stream_piece(stream, from, max_records, on_event)
    }

    fn flush(&mut self) -> Result<(), StorageError> {
        self.sync()
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.faults.flushes.fetch_add(1, Ordering::SeqCst);
        let micros = self.faults.flush_micros.load(Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_micros(micros));
        if self.faults.fail_flushes.load(Ordering::SeqCst) {
            return Err(Faults::injected("flush"));
        }
        Ok(())
    }

    fn sync_begin(&mut self) -> Result<Vec<SegmentSync>, StorageError> {
        self.sync().map(|()| Vec::new())
    }

    fn sync_finished(&mut self, _done: &[SegmentSync]) {}

    fn recovery_report(&self) -> &RecoveryReport {
        self.memory.recovery_report()
    }

    fn stream_stats(&self, stream: StreamId) -> Option<StreamStats> {
        self.memory.stream_stats(stream)
    }
}

impl Kimberlite {
    /// An in-memory store whose backend fails on command.
    pub(crate) fn faulty(config: Config) -> (Self, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        let backend = FaultyStorage {
            memory: MemoryStorage::new(),
            faults: Arc::clone(&faults),
        };
        (Self::over_memory(Box::new(backend), config), faults)
    }
}
