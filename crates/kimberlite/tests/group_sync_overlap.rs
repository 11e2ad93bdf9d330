//! A group commit whose sync covers the segments of several files (a server's stream and its
//! access log) flushes them at the same time, not one after the other, and still answers
//! only once every flush has returned: a failed flush of any of them fails the group and
//! latches the store (fail-stop), whichever thread ran it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kimberlite::{Config, Durability, Error, ExpectedOffset, Kimberlite, Offset};
use kimberlite_storage::{EntryKind, FileHandle, FileSystem, OsFileSystem};

/// How long each segment flush lasts: long enough that two in turn never overlap.
const FLUSH: Duration = Duration::from_millis(40);

/// The OS file system whose segment flushes last [`FLUSH`] and are counted while they run;
/// those of the segments under `fail_under` fail.
#[derive(Clone, Default)]
struct SlowFlushes {
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
    flushed: Arc<Mutex<Vec<PathBuf>>>,
    fail_under: Arc<Mutex<Option<PathBuf>>>,
    measuring: Arc<AtomicBool>,
}

struct SlowFile {
    inner: <OsFileSystem as FileSystem>::File,
    path: PathBuf,
    fs: SlowFlushes,
}

impl FileHandle for SlowFile {
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
        let segment = self.path.extension().is_some_and(|ext| ext == "seg");
        if !segment || !self.fs.measuring.load(Ordering::SeqCst) {
            return self.inner.sync_data();
        }
        let now = self.fs.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.fs.most_at_once.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(FLUSH);
        let result = self.inner.sync_data();
        self.fs.running.fetch_sub(1, Ordering::SeqCst);
        self.fs.flushed.lock().unwrap().push(self.path.clone());
        let failing = self.fs.fail_under.lock().unwrap().clone();
        if failing.is_some_and(|dir| self.path.starts_with(dir)) {
            return Err(io::Error::other("injected flush failure"));
        }
        result
    }
}

impl SlowFlushes {
    fn wrap(&self, inner: <OsFileSystem as FileSystem>::File, path: &Path) -> SlowFile {
        SlowFile {
            inner,
            path: path.to_path_buf(),
            fs: self.clone(),
        }
    }
}

impl FileSystem for SlowFlushes {
    type File = SlowFile;
    type Lock = <OsFileSystem as FileSystem>::Lock;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsFileSystem.create_dir_all(path)
    }
    fn open(&self, path: &Path) -> io::Result<SlowFile> {
        Ok(self.wrap(OsFileSystem.open(path)?, path))
    }
    fn open_readonly(&self, path: &Path) -> io::Result<SlowFile> {
        Ok(self.wrap(OsFileSystem.open_readonly(path)?, path))
    }
    fn create(&self, path: &Path) -> io::Result<SlowFile> {
        Ok(self.wrap(OsFileSystem.create(path)?, path))
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
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        OsFileSystem.resolve(path)
    }
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        OsFileSystem.entry_kind(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Self::Lock>> {
        OsFileSystem.try_lock(path)
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        OsFileSystem.map_readonly(path)
    }
}

fn grouped() -> Config {
    Config::default().durability(Durability::GroupCommit)
}

/// A store of two streams with one durable event each, its flushes measured from now on.
fn two_streams(fs: &SlowFlushes, dir: &Path) -> (Kimberlite, [kimberlite::StreamId; 2]) {
    let store = Kimberlite::open_with_fs(fs.clone(), dir, grouped()).unwrap();
    let ids = [
        store.create_stream("orders").unwrap(),
        store.create_stream("_access").unwrap(),
    ];
    for id in ids {
        store.append(id, ["first"], ExpectedOffset::Any).unwrap();
    }
    fs.measuring.store(true, Ordering::SeqCst);
    (store, ids)
}

/// Writes one event to each stream and makes both durable with one group sync.
fn write_both(store: &Kimberlite, ids: [kimberlite::StreamId; 2]) -> kimberlite::Result<()> {
    let requests = ids
        .iter()
        .map(|&id| (id, vec![Bytes::from("second")], ExpectedOffset::Any))
        .collect();
    let (results, written) = store.write_all(requests);
    assert!(results.iter().all(Result::is_ok));
    store.make_durable(written)
}

#[test]
fn one_sync_of_two_files_flushes_them_at_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let fs = SlowFlushes::default();
    let (store, ids) = two_streams(&fs, dir.path());
    for _ in 0..3 {
        write_both(&store, ids).unwrap();
    }
    let flushed = fs.flushed.lock().unwrap().clone();
    assert_eq!(
        flushed.len(),
        6,
        "each group flushes both segments: {flushed:?}"
    );
    assert_eq!(
        fs.most_at_once.load(Ordering::SeqCst),
        2,
        "the two segments' flushes overlap"
    );
    for id in ids {
        assert_eq!(store.head(id).unwrap().next_offset.as_u64(), 4);
    }
    drop(store);
    let store = Kimberlite::open_with(dir.path(), grouped()).unwrap();
    for id in ids {
        assert_eq!(store.read(id, Offset::ZERO, u64::MAX).unwrap().len(), 4);
    }
}

#[test]
fn a_failed_flush_of_either_file_fails_the_group_and_latches_the_store() {
    for failing in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let fs = SlowFlushes::default();
        let (store, ids) = two_streams(&fs, dir.path());
        write_both(&store, ids).unwrap();
        let flushed = fs.flushed.lock().unwrap().clone();
        let mut stream_dirs: Vec<PathBuf> = flushed
            .iter()
            .filter_map(|path| path.parent().map(Path::to_path_buf))
            .collect();
        stream_dirs.sort();
        stream_dirs.dedup();
        assert_eq!(stream_dirs.len(), 2, "{flushed:?}");
        *fs.fail_under.lock().unwrap() = Some(stream_dirs[failing].clone());
        let error = write_both(&store, ids).unwrap_err();
        assert!(matches!(error, Error::Storage { .. }), "{error}");
        // Nothing of the failed group is published, and the store takes no more appends.
        for id in ids {
            assert_eq!(store.head(id).unwrap().next_offset.as_u64(), 2);
        }
        assert!(matches!(
            store.append(ids[0], ["later"], ExpectedOffset::Any),
            Err(Error::Poisoned)
        ));
    }
}
