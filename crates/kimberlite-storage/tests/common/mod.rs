//! Helpers shared by the on-disk storage tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_storage::{StorageBackend, StorageConfig, StoreBackend};
use kimberlite_types::{CompressionKind, Offset, StreamId};

/// A config that rotates and writes restart records often.
pub fn small_config() -> StorageConfig {
    StorageConfig {
        max_segment_size: 1024,
        restart_interval: 4,
        compression: CompressionKind::None,
        index_interval: 2,
        // More than a small machine has: long reads in tests split into 4 shares.
        verify_threads: 4,
        // Batches of 128 events or more hashed on the helper thread, whatever the machine.
        hash_ahead: true,
    }
}

/// Event `i` of a test stream: varied lengths, some compressible.
pub fn event(stream: u64, i: u64) -> Bytes {
    let len = (i * 7 + stream) % 90 + 1;
    if i.is_multiple_of(3) {
        Bytes::from(vec![b'a' + (i % 26) as u8; len as usize])
    } else {
        let text: Vec<u8> = (0..len)
            .map(|j| ((i * 31 + j * 17 + stream) % 251) as u8)
            .collect();
        Bytes::from(text)
    }
}

/// Appends `count` events to `stream` in batches of `batch`; returns the new head.
pub fn append_events<B: StorageBackend>(
    backend: &mut B,
    stream: StreamId,
    start: u64,
    count: u64,
    batch: u64,
    fsync: bool,
) -> (Offset, ChainHash) {
    let mut next = Offset::new(start);
    let mut head = backend.latest_chain_hash(stream).unwrap();
    let mut i = start;
    while i < start + count {
        let n = batch.min(start + count - i);
        let events: Vec<Bytes> = (i..i + n).map(|j| event(stream.as_u64(), j)).collect();
        let (new_next, new_head) = backend
            .append_batch(stream, events, next, head, fsync)
            .unwrap();
        next = new_next;
        head = Some(new_head);
        i += n;
    }
    (next, head.unwrap())
}

/// Every event of `stream` from 0, read in pages of `page_bytes`.
pub fn read_all<B: StorageBackend>(
    backend: &mut B,
    stream: StreamId,
    page_bytes: u64,
) -> Vec<Bytes> {
    let mut out = Vec::new();
    loop {
        let page = backend
            .read_from(stream, Offset::new(out.len() as u64), page_bytes)
            .unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The directory of `stream` in a store at `dir`.
pub fn stream_dir(dir: &Path, stream: StreamId) -> PathBuf {
    dir.join("streams").join(format!("{:020}", stream.as_u64()))
}

/// Segment file `num` of `stream`.
pub fn segment_file(dir: &Path, stream: StreamId, num: u32) -> PathBuf {
    stream_dir(dir, stream).join(format!("{num:08}.seg"))
}

/// Index file `num` of `stream`.
pub fn index_file(dir: &Path, stream: StreamId, num: u32) -> PathBuf {
    stream_dir(dir, stream).join(format!("{num:08}.idx"))
}

/// Every file under `dir` with its bytes, sorted by path (for byte-identical comparisons).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Every frame of a segment file: (byte position, decoded record, frame length).
pub fn frames(path: &Path) -> Vec<(usize, kimberlite_storage::Record, usize)> {
    let bytes = Bytes::from(std::fs::read(path).unwrap());
    let mut out = Vec::new();
    let mut position = 40;
    while position < bytes.len() {
        let (record, len) =
            kimberlite_storage::Record::from_bytes(&bytes.slice(position..)).unwrap();
        out.push((position, record, len));
        position += len;
    }
    out
}

/// Replaces the frame at `position` with `record` encoded (valid CRC), in place; the new frame
/// must have the old one's length.
pub fn rewrite_frame(path: &Path, position: usize, record: &kimberlite_storage::Record) {
    let mut bytes = std::fs::read(path).unwrap();
    let frame = record.to_bytes();
    let old_len = u32::from_le_bytes(bytes[position..position + 4].try_into().unwrap()) as usize;
    assert_eq!(
        frame.len(),
        old_len,
        "a rewritten frame must keep its length"
    );
    bytes[position..position + frame.len()].copy_from_slice(&frame);
    std::fs::write(path, bytes).unwrap();
}

/// `record` with its payload's first byte changed (same length, valid CRC once encoded).
pub fn altered(record: &kimberlite_storage::Record) -> kimberlite_storage::Record {
    let mut payload = record.payload().to_vec();
    payload[0] ^= 0x20;
    kimberlite_storage::Record::with_compression(
        record.offset(),
        record.prev_hash(),
        record.kind(),
        CompressionKind::None,
        Bytes::from(payload),
    )
    .with_batch_continues(record.continues_batch())
}

/// A temp dir for tests that open a store thousands of times or rotate on every batch: on
/// tmpfs (`/dev/shm`) when the machine has one, so that the fsyncs the engine does at every
/// open and rotation cost nothing and the test measures logic, not the disk; elsewhere the
/// default temp dir. These tests check what the engine decides from file contents; that
/// synced data survives crashes is the simulator's job (`kimberlite-sim`).
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Whether `storage`'s recovery report holds an action matching `wanted`.
pub fn reported<F: kimberlite_storage::disk::FileSystem>(
    storage: &kimberlite_storage::Storage<F>,
    wanted: impl Fn(&kimberlite_storage::RecoveryAction) -> bool,
) -> bool {
    storage.recovery_report().actions.iter().any(wanted)
}

/// The [`kimberlite_storage::FileSystem`] methods a test file system takes unchanged from
/// `OsFileSystem`: everything but `open` and `create` (and `map_growing`, whose default maps
/// nothing). Use inside the `impl FileSystem`, with `OsFileSystem` and `Bytes` in scope.
#[allow(unused_macros)]
macro_rules! os_file_system_passthrough {
    () => {
        fn create_dir_all(&self, path: &Path) -> io::Result<()> {
            OsFileSystem.create_dir_all(path)
        }
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            OsFileSystem.read(path)
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            OsFileSystem.rename(from, to)
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            OsFileSystem.remove_file(path)
        }
        fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
            OsFileSystem.list_dir(path)
        }
        fn sync_dir(&self, path: &Path) -> io::Result<()> {
            OsFileSystem.sync_dir(path)
        }
        fn entry_kind(&self, path: &Path) -> io::Result<Option<kimberlite_storage::EntryKind>> {
            OsFileSystem.entry_kind(path)
        }
        fn try_lock(&self, path: &Path) -> io::Result<Option<Self::Lock>> {
            OsFileSystem.try_lock(path)
        }
        fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
            OsFileSystem.map_readonly(path)
        }
    };
}
