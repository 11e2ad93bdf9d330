//! A read-only open writes nothing (issue 22 point 4; SPEC.md section 7): over a file system
//! whose every change fails (and is counted), `Kimberlite::open_with_fs(ReadOnlyFs::new(..))`
//! opens, recovers (in memory), verifies, reads and computes tree heads; and
//! `Kimberlite::open_read_only` opens beside a live writer, which keeps appending.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kimberlite::{Config, ExpectedOffset, Kimberlite, Offset};
use kimberlite_storage::{EntryKind, FileHandle, FileSystem, OsFileSystem, ReadOnlyFs};

/// The real file system, with every change refused and counted.
#[derive(Debug, Clone, Default)]
struct NoWrites {
    attempts: Arc<AtomicUsize>,
    /// Lists a `manifest.json.tmp` in every stream directory that is gone when looked at: a
    /// writer beside the reader renamed it into place in between.
    vanishing_temp: bool,
}

impl NoWrites {
    fn refuse(&self, what: &str, path: &Path) -> io::Error {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        io::Error::other(format!(
            "{what} {}: refused, read-only test",
            path.display()
        ))
    }
}

/// A real file whose every change is refused and counted.
struct NoWritesFile {
    file: kimberlite_storage::disk::OsFile,
    fs: NoWrites,
    path: PathBuf,
}

impl FileHandle for NoWritesFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.file.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, position)
    }
    fn write_all_at(&mut self, _buf: &[u8], _position: u64) -> io::Result<()> {
        Err(self.fs.refuse("writing", &self.path))
    }
    fn set_len(&mut self, _len: u64) -> io::Result<()> {
        Err(self.fs.refuse("truncating", &self.path))
    }
    fn sync_data(&mut self) -> io::Result<()> {
        Err(self.fs.refuse("syncing", &self.path))
    }
}

impl FileSystem for NoWrites {
    type File = NoWritesFile;
    type Lock = ();

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        Err(self.refuse("creating", path))
    }
    fn open(&self, path: &Path) -> io::Result<NoWritesFile> {
        Err(self.refuse("opening for writing", path))
    }
    fn open_readonly(&self, path: &Path) -> io::Result<NoWritesFile> {
        Ok(NoWritesFile {
            file: OsFileSystem.open_readonly(path)?,
            fs: self.clone(),
            path: path.to_path_buf(),
        })
    }
    fn create(&self, path: &Path) -> io::Result<NoWritesFile> {
        Err(self.refuse("creating", path))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsFileSystem.read(path)
    }
    fn rename(&self, from: &Path, _to: &Path) -> io::Result<()> {
        Err(self.refuse("renaming", from))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        Err(self.refuse("removing", path))
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = OsFileSystem.list_dir(path)?;
        let in_streams = path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|name| name == "streams");
        if self.vanishing_temp && in_streams {
            names.push("manifest.json.tmp".to_owned());
        }
        Ok(names)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        Err(self.refuse("syncing", path))
    }
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        OsFileSystem.resolve(path)
    }
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        OsFileSystem.entry_kind(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<()>> {
        Err(self.refuse("locking", path))
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        OsFileSystem.map_readonly(path)
    }
}

/// A store with two streams in small segments, the last one torn and the indexes gone, so that
/// a writable open would cut, rebuild and rewrite.
fn damaged_store() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    {
        let store = Kimberlite::open_with(&dir, Config::default().max_segment_size(1024)).unwrap();
        for name in ["a", "b"] {
            let id = store.create_stream(name).unwrap();
            let events: Vec<String> = (0..100).map(|i| format!("{name}-{i}")).collect();
            store.append(id, events, ExpectedOffset::NoStream).unwrap();
        }
        store.sync().unwrap();
    }
    let stream = dir.join("streams").join(format!("{:020}", 2));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&stream)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    segments.sort();
    for path in &segments {
        if path.extension().is_some_and(|ext| ext == "idx") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let active = segments
        .iter()
        .rfind(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .unwrap();
    // The start of a frame whose bytes never arrived: an unfinished write.
    let mut bytes = std::fs::read(active).unwrap();
    bytes.extend_from_slice(&[60, 0, 0, 0, 1, 2]);
    std::fs::write(active, &bytes).unwrap();
    std::fs::remove_dir_all(dir.join("merkle")).unwrap();
    (temp, dir)
}

#[test]
fn a_read_only_open_verifies_reads_and_proves_without_one_write() {
    let (_temp, dir) = damaged_store();
    let fs = NoWrites::default();
    let config = Config::default().create_if_missing(false);
    let store = Kimberlite::open_with_fs(ReadOnlyFs::new(fs.clone()), &dir, config).unwrap();
    let report = store.recovery_report();
    assert!(!report.is_clean(), "recovery had work to do");
    let verified = store.verify_all().unwrap();
    assert!(verified.is_intact(), "{verified:?}");
    for name in ["a", "b"] {
        let id = store.stream(name).unwrap();
        let events = store.read(id, Offset::new(0), 1 << 20).unwrap();
        assert!(events.len() >= 99, "{name}: {}", events.len());
        let head = store.tree_head(id).unwrap();
        assert_eq!(head.tree_size, events.len() as u64);
    }
    drop(store);
    assert_eq!(
        fs.attempts.load(Ordering::SeqCst),
        0,
        "a read-only open tried to write"
    );
}

#[test]
fn a_temporary_file_a_writer_renamed_away_mid_open_is_no_error() {
    let (_temp, dir) = damaged_store();
    let fs = NoWrites {
        vanishing_temp: true,
        ..NoWrites::default()
    };
    let config = Config::default().create_if_missing(false);
    let store = Kimberlite::open_with_fs(ReadOnlyFs::new(fs.clone()), &dir, config).unwrap();
    let report = store.recovery_report().to_string();
    assert!(!report.contains("manifest.json.tmp"), "{report}");
    assert!(store.verify_all().unwrap().is_intact());
    drop(store);
    assert_eq!(fs.attempts.load(Ordering::SeqCst), 0);
}

#[test]
fn a_read_only_open_runs_beside_a_writer() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let writer = Kimberlite::open(&dir).unwrap();
    let id = writer.create_stream("live").unwrap();
    for i in 0..20u64 {
        writer
            .append(id, [format!("e{i}")], ExpectedOffset::Exact(Offset::new(i)))
            .unwrap();
        writer.sync().unwrap();
        let reader = Kimberlite::open_read_only(&dir, Config::default()).unwrap();
        assert!(reader.is_read_only());
        let seen = reader.read(id, Offset::new(0), 1 << 20).unwrap();
        assert_eq!(
            seen.len() as u64,
            i + 1,
            "the reader sees every synced event"
        );
        assert!(reader.verify_all().unwrap().is_intact());
        let refused = reader.append(id, ["no"], ExpectedOffset::Any);
        assert!(
            matches!(refused, Err(kimberlite::Error::ReadOnly)),
            "{refused:?}"
        );
        let refused = reader.create_stream("new");
        assert!(
            matches!(refused, Err(kimberlite::Error::ReadOnly)),
            "{refused:?}"
        );
    }
}
