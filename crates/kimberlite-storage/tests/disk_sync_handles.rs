//! A group commit's sync (`sync_begin`, `SegmentSync::run`, `sync_finished`) takes its handle
//! on the active segment from the writer's own where the file system can share it: no path
//! is opened per sync (an open walks every component of the path, two system calls each).
//! A file system that cannot share a handle is still synced, through a file opened anew.

#[macro_use]
mod common;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::{append_events, read_all, small_config};
use kimberlite_storage::{
    FileHandle, FileSystem, OsFileSystem, Storage, StorageConfig, StoreBackend,
};
use kimberlite_types::StreamId;

/// The OS file system, counting the files opened by path; its files share or not as asked.
#[derive(Clone, Default)]
struct CountingFs {
    opens: Arc<AtomicU32>,
    syncs: Arc<AtomicU32>,
    unshared: bool,
}

/// A file of a [`CountingFs`], counting its syncs: one the writer opened, or a handle shared
/// from one (which shares no further, as the OS file system's shared handles do not).
struct CountedFile {
    inner: Box<dyn FileHandle>,
    syncs: Arc<AtomicU32>,
    shareable: bool,
}

impl FileHandle for CountedFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, position)
    }
    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, position)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_data()
    }
    fn share(&self) -> Option<Box<dyn FileHandle>> {
        if !self.shareable {
            return None;
        }
        Some(Box::new(CountedFile {
            inner: self.inner.share()?,
            syncs: Arc::clone(&self.syncs),
            shareable: false,
        }))
    }
}

impl FileSystem for CountingFs {
    type File = CountedFile;
    type Lock = <OsFileSystem as FileSystem>::Lock;

    fn open(&self, path: &Path) -> io::Result<CountedFile> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        Ok(self.counted(OsFileSystem.open(path)?))
    }
    fn create(&self, path: &Path) -> io::Result<CountedFile> {
        Ok(self.counted(OsFileSystem.create(path)?))
    }
    os_file_system_passthrough!();
}

impl CountingFs {
    fn counted(&self, inner: <OsFileSystem as FileSystem>::File) -> CountedFile {
        CountedFile {
            inner: Box::new(inner),
            syncs: Arc::clone(&self.syncs),
            shareable: !self.unshared,
        }
    }
}

fn config() -> StorageConfig {
    StorageConfig {
        max_segment_size: 1 << 20,
        ..small_config()
    }
}

const STREAMS: [StreamId; 2] = [StreamId::new(1), StreamId::new(2)];

/// Appends unsynced batches to both streams, then a group commit's sync, `rounds` times
/// (in segments large enough that the active ones stay); returns the files opened by path
/// during the rounds, and the segment syncs the rounds took and ran.
fn group_commits(fs: &CountingFs, dir: &Path, rounds: u64) -> (u32, u32) {
    let mut storage = Storage::open_on(fs.clone(), dir, config()).unwrap();
    for stream in STREAMS {
        append_events(&mut storage, stream, 0, 1, 1, true);
    }
    let opens = fs.opens.load(Ordering::SeqCst);
    let mut taken = 0;
    for round in 0..rounds {
        for stream in STREAMS {
            append_events(&mut storage, stream, 1 + round * 5, 5, 5, false);
        }
        let mut segment_syncs = storage.sync_begin().unwrap();
        assert_eq!(segment_syncs.len(), 2, "one sync per written stream");
        taken += segment_syncs.len() as u32;
        let before = fs.syncs.load(Ordering::SeqCst);
        for sync in &mut segment_syncs {
            sync.run().unwrap();
        }
        assert_eq!(
            fs.syncs.load(Ordering::SeqCst) - before,
            segment_syncs.len() as u32,
            "each segment sync runs an fdatasync"
        );
        storage.sync_finished(&segment_syncs);
    }
    let counts = (fs.opens.load(Ordering::SeqCst) - opens, taken);
    drop(storage);
    let mut reopened = Storage::open_on(OsFileSystem, dir, config()).unwrap();
    for stream in STREAMS {
        let events = read_all(&mut reopened, stream, 256);
        assert_eq!(events.len() as u64, 1 + rounds * 5);
    }
    counts
}

#[test]
fn group_commit_syncs_open_no_file_when_the_handle_can_be_shared() {
    let dir = tempfile::tempdir().unwrap();
    let fs = CountingFs::default();
    let (opens, syncs) = group_commits(&fs, dir.path(), 20);
    assert_eq!(syncs, 40);
    assert_eq!(opens, 0, "a sync shares the writer's handle");
}

#[test]
fn group_commit_syncs_open_the_segment_when_the_handle_cannot_be_shared() {
    let dir = tempfile::tempdir().unwrap();
    let fs = CountingFs {
        unshared: true,
        ..CountingFs::default()
    };
    let (opens, syncs) = group_commits(&fs, dir.path(), 20);
    assert_eq!(syncs, 40);
    assert!(
        opens >= syncs,
        "a handle opened per sync: {opens} for {syncs}"
    );
}
