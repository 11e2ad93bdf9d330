//! Fail-stop: after a failed write or fsync, every further append (and flush) is refused with
//! `Poisoned` until the store is reopened; reads keep working; the failed batch is not kept.
//! Runs the engine over a `FileSystem` wrapper that injects failures, which also shows that
//! `Storage` is generic over its file system.

#[macro_use]
mod common;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{append_events, event, read_all, small_config};
use kimberlite_storage::{
    FileHandle, FileSystem, OsFileSystem, Storage, StorageBackend, StorageError, StoreBackend,
};
use kimberlite_types::{Offset, StreamId};

const HEALTHY: u8 = 0;
const FAIL_SYNC: u8 = 1;
const FAIL_WRITE_HALFWAY: u8 = 2;
/// Counts writes, and fails the third one (after two went through).
const FAIL_THIRD_WRITE: u8 = 3;

/// Where each `write` went (file position, length), in order, for every file.
type WriteLog = Arc<Mutex<Vec<(u64, usize)>>>;

#[derive(Clone, Default)]
struct FaultyFs {
    mode: Arc<AtomicU8>,
    writes: Arc<AtomicU32>,
    log: WriteLog,
}

struct FaultyFile {
    inner: <OsFileSystem as FileSystem>::File,
    mode: Arc<AtomicU8>,
    writes: Arc<AtomicU32>,
    log: WriteLog,
}

impl FileHandle for FaultyFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, position)
    }
    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        match self.mode.load(Ordering::SeqCst) {
            FAIL_WRITE_HALFWAY => {
                self.inner.write_all_at(&buf[..buf.len() / 2], position)?;
                return Err(io::Error::other("injected: device full"));
            }
            FAIL_THIRD_WRITE if self.writes.fetch_add(1, Ordering::SeqCst) == 2 => {
                return Err(io::Error::other("injected: third write failed"));
            }
            _ => {}
        }
        self.log.lock().unwrap().push((position, buf.len()));
        self.inner.write_all_at(buf, position)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if self.mode.load(Ordering::SeqCst) == FAIL_SYNC {
            return Err(io::Error::other("injected: fsync failed"));
        }
        self.inner.sync_data()
    }
}

impl FileSystem for FaultyFs {
    type File = FaultyFile;
    type Lock = <OsFileSystem as FileSystem>::Lock;

    fn open(&self, path: &Path) -> io::Result<FaultyFile> {
        let inner = OsFileSystem.open(path)?;
        Ok(FaultyFile {
            inner,
            mode: self.mode.clone(),
            writes: self.writes.clone(),
            log: self.log.clone(),
        })
    }
    fn create(&self, path: &Path) -> io::Result<FaultyFile> {
        let inner = OsFileSystem.create(path)?;
        Ok(FaultyFile {
            inner,
            mode: self.mode.clone(),
            writes: self.writes.clone(),
            log: self.log.clone(),
        })
    }
    os_file_system_passthrough!();
}

const STREAM: StreamId = StreamId::new(3);

fn poisons_then_recovers(mode: u8) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::default();
    let mut storage = Storage::open_on(fs.clone(), dir.path(), small_config()).unwrap();
    let (next, head) = append_events(&mut storage, STREAM, 0, 10, 3, true);

    fs.mode.store(mode, Ordering::SeqCst);
    let batch = vec![event(3, 10), event(3, 11)];
    let error = storage
        .append_batch(STREAM, batch.clone(), next, Some(head), true)
        .unwrap_err();
    assert!(matches!(error, StorageError::Io { .. }), "{error}");

    // Healthy again, but the store stays poisoned: a retried fsync proves nothing.
    fs.mode.store(HEALTHY, Ordering::SeqCst);
    let error = storage
        .append_batch(STREAM, batch.clone(), next, Some(head), true)
        .unwrap_err();
    assert!(matches!(error, StorageError::Poisoned { .. }), "{error}");
    assert!(matches!(
        storage.flush(),
        Err(StorageError::Poisoned { .. })
    ));
    // Reads still work and see nothing of the failed batch.
    assert_eq!(read_all(&mut storage, STREAM, 64).len(), 10);
    assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), Some(head));
    drop(storage);

    let mut storage = Storage::open_on(fs, dir.path(), small_config()).unwrap();
    assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), Some(head));
    let (after, _) = storage
        .append_batch(STREAM, batch, next, Some(head), true)
        .unwrap();
    assert_eq!(after, Offset::new(12));
    storage.verify_stream(STREAM).unwrap();
}

#[test]
fn a_failed_fsync_poisons_the_store() {
    poisons_then_recovers(FAIL_SYNC);
}

#[test]
fn a_failed_write_poisons_the_store() {
    poisons_then_recovers(FAIL_WRITE_HALFWAY);
}

#[test]
fn a_rotation_stopped_by_a_failure_is_completed_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::default();
    let config = kimberlite_storage::StorageConfig {
        max_segment_size: 0,
        ..small_config()
    };
    let mut memory = kimberlite_storage::MemoryStorage::with_max_segment_size(0);
    let mut storage = Storage::open_on(fs.clone(), dir.path(), config).unwrap();
    append_events(&mut storage, STREAM, 0, 3, 3, false);
    append_events(&mut memory, STREAM, 0, 6, 3, false);

    // The batch is written (no fsync asked); the rotation after it fails to sync.
    fs.mode.store(FAIL_SYNC, Ordering::SeqCst);
    let head = storage.latest_chain_hash(STREAM).unwrap();
    let batch: Vec<Bytes> = (3..6).map(|i| event(3, i)).collect();
    let (next, _) = storage
        .append_batch(STREAM, batch, Offset::new(3), head, false)
        .unwrap();
    assert_eq!(next, Offset::new(6));
    let error = storage
        .append_batch(STREAM, vec![event(3, 6)], next, None, false)
        .unwrap_err();
    assert!(matches!(error, StorageError::Poisoned { .. }), "{error}");
    fs.mode.store(HEALTHY, Ordering::SeqCst);
    drop(storage);

    let mut storage = Storage::open_on(fs, dir.path(), config).unwrap();
    assert!(
        storage
            .recovery_report()
            .actions
            .iter()
            .any(|action| matches!(
                action,
                kimberlite_storage::RecoveryAction::RotationCompleted { .. }
            )),
        "{}",
        storage.recovery_report()
    );
    assert_eq!(storage.segment_count(STREAM), memory.segment_count(STREAM));
    assert_eq!(
        storage.completed_segments(STREAM),
        memory.completed_segments(STREAM)
    );
    assert_eq!(
        storage.latest_chain_hash(STREAM).unwrap(),
        memory.latest_chain_hash(STREAM).unwrap()
    );
    storage.verify_stream(STREAM).unwrap();
    drop(storage);
    let storage = Storage::open_on(FaultyFs::default(), dir.path(), config).unwrap();
    assert!(
        storage.recovery_report().is_clean(),
        "{}",
        storage.recovery_report()
    );
}

/// A large batch (3,000 events, restart records inside, hashed on the helper thread) fails in its
/// write: halfway through its first `write`, or at its third (two 64 KiB chunks already in
/// the file). Nothing of it stays, in memory or on disk, and the same batch appended after a
/// reopen gives `MemoryStorage`'s chain.
#[test]
fn a_large_batch_failing_in_its_write_leaves_the_log_as_before() {
    for mode in [FAIL_WRITE_HALFWAY, FAIL_THIRD_WRITE] {
        large_batch_fails_cleanly(mode);
    }
}

fn large_batch_fails_cleanly(mode: u8) {
    let (dir, fs, config, mut storage, next, head, segment) = ten_events_on_faulty_fs();
    let before = std::fs::read(&segment).unwrap();

    fs.mode.store(mode, Ordering::SeqCst);
    let batch: Vec<Bytes> = (10..3_010).map(|i| event(3, i)).collect();
    let error = storage
        .append_batch(STREAM, batch.clone(), next, Some(head), false)
        .unwrap_err();
    assert!(matches!(error, StorageError::Io { .. }), "{error}");
    if mode == FAIL_THIRD_WRITE {
        assert_eq!(
            fs.writes.load(Ordering::SeqCst),
            3,
            "two writes went through"
        );
    }
    assert_eq!(std::fs::read(&segment).unwrap(), before);
    assert_eq!(read_all(&mut storage, STREAM, 1 << 20).len(), 10);
    drop(storage);

    fs.mode.store(HEALTHY, Ordering::SeqCst);
    let mut storage = Storage::open_on(fs, dir.path(), config).unwrap();
    assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), Some(head));
    let (after, _) = storage
        .append_batch(STREAM, batch.clone(), next, Some(head), false)
        .unwrap();
    assert_eq!(after, Offset::new(3_010));
    storage.verify_stream(STREAM).unwrap();
    let mut expected: Vec<Bytes> = (0..10).map(|i| event(3, i)).collect();
    expected.extend(batch);
    assert_eq!(read_all(&mut storage, STREAM, 1 << 20), expected);
    let mut memory = kimberlite_storage::MemoryStorage::new();
    memory
        .append_batch(STREAM, expected, Offset::ZERO, None, false)
        .unwrap();
    assert_eq!(
        storage.latest_chain_hash(STREAM).unwrap(),
        memory.latest_chain_hash(STREAM).unwrap()
    );
}

/// A large batch reaches the file in writes back to back, each but the last ending at a
/// multiple of `WRITE_CHUNK_BYTES` in the file (where the page cache can take it in large
/// folios), the first starting where the log ended; the bytes are the batch's, whatever the
/// split (it reads back and verifies).
#[test]
fn a_large_batch_is_written_in_writes_that_end_at_chunk_boundaries() {
    let (_dir, fs, _config, mut storage, next, head, segment) = ten_events_on_faulty_fs();
    let log_end = std::fs::metadata(&segment).unwrap().len();
    fs.log.lock().unwrap().clear();

    let batch: Vec<Bytes> = (10..3_010).map(|i| event(3, i)).collect();
    storage
        .append_batch(STREAM, batch, next, Some(head), false)
        .unwrap();
    let writes = fs.log.lock().unwrap().clone();
    let chunk = kimberlite_storage::disk::WRITE_CHUNK_BYTES as u64;
    assert!(
        writes.len() >= 3,
        "a batch this large takes several writes: {writes:?}"
    );
    assert_eq!(
        writes[0].0, log_end,
        "the first write starts where the log ended"
    );
    for pair in writes.windows(2) {
        let ((position, len), (next_position, _)) = (pair[0], pair[1]);
        assert_eq!(
            position + len as u64,
            next_position,
            "back to back: {writes:?}"
        );
        assert_eq!(
            next_position % chunk,
            0,
            "ends at a chunk boundary: {writes:?}"
        );
    }
    let (last_position, last_len) = *writes.last().unwrap();
    assert_eq!(
        last_position + last_len as u64,
        std::fs::metadata(&segment).unwrap().len(),
        "the last write ends the file"
    );
    storage.verify_stream(STREAM).unwrap();
    assert_eq!(read_all(&mut storage, STREAM, 1 << 20).len(), 3_010);
}

/// A store on a [`FaultyFs`] with one 64 MiB-segment stream of 10 synced events: the temp
/// dir, the file system, the config, the store, the stream's next offset and head, and its
/// segment file.
#[allow(clippy::type_complexity)]
fn ten_events_on_faulty_fs() -> (
    tempfile::TempDir,
    FaultyFs,
    kimberlite_storage::StorageConfig,
    Storage<FaultyFs>,
    Offset,
    kimberlite_crypto::ChainHash,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::default();
    let config = kimberlite_storage::StorageConfig {
        max_segment_size: 64 << 20,
        ..small_config()
    };
    let mut storage = Storage::open_on(fs.clone(), dir.path(), config).unwrap();
    let (next, head) = append_events(&mut storage, STREAM, 0, 10, 10, true);
    let segment = common::stream_dir(dir.path(), STREAM).join("00000000.seg");
    (dir, fs, config, storage, next, head, segment)
}
