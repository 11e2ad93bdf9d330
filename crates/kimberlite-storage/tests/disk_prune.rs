//! Retention (`Storage::prune`): whole segments below a cut dropped, the cut recorded in
//! `pruned.json`; reads below it refused as pruned, verification from the cut, appends and
//! reopens as before; a prune stopped at any step of its writes is either done or not after
//! the next open; a cut record that does not fit the files is never trusted.

#[macro_use]
mod common;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use common::{append_events, event, read_all, segment_file, small_config, stream_dir};
use kimberlite_storage::{
    FileHandle, FileSystem, OsFileSystem, ReadOnlyFs, RecoveryAction, Storage, StorageBackend,
    StorageError, StoreBackend, PRUNED_FILE,
};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(4);
const EVENTS: u64 = 120;

/// A store of `EVENTS` events over several segments; returns its head.
fn filled<F: FileSystem>(storage: &mut Storage<F>) -> kimberlite_crypto::ChainHash {
    append_events(storage, STREAM, 0, EVENTS, 5, true).1
}

/// The cut at the start of the third segment.
fn third_segment_start<F: FileSystem>(storage: &Storage<F>) -> Offset {
    let before = Offset::new(EVENTS / 2);
    let cut = storage.prune_boundary(STREAM, before).unwrap();
    assert!(cut <= before && cut > Offset::ZERO, "{cut}");
    cut
}

#[test]
fn a_pruned_stream_reads_from_the_cut_verifies_and_keeps_appending() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    let head = filled(&mut storage);
    let all = read_all(&mut storage, STREAM, 64);
    let segments = storage.segment_count(STREAM);
    let cut = third_segment_start(&storage);
    let point = storage.prune(STREAM, cut, vec![[9; 32]], 100).unwrap();
    assert_eq!(point.first_offset, cut);
    assert_eq!(storage.prune_point(STREAM), Some(point.clone()));
    assert!(!segment_file(dir.path(), STREAM, 0).exists());
    assert!(!segment_file(dir.path(), STREAM, point.first_segment - 1).exists());
    assert!(segment_file(dir.path(), STREAM, point.first_segment).exists());
    assert_eq!(
        storage.segment_count(STREAM),
        segments,
        "segment numbers stay"
    );

    check_pruned(&mut storage, cut, &all, head);
    drop(storage);
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    assert!(
        storage.recovery_report().is_clean(),
        "{:?}",
        storage.recovery_report()
    );
    assert_eq!(storage.prune_point(STREAM), Some(point));
    check_pruned(&mut storage, cut, &all, head);
    let (next, head) = storage
        .append_batch(
            STREAM,
            vec![event(4, EVENTS)],
            Offset::new(EVENTS),
            Some(head),
            true,
        )
        .unwrap();
    assert_eq!(next, Offset::new(EVENTS + 1));
    storage.verify_stream(STREAM).unwrap();
    drop(storage);
    // The manifest lost: rebuilt from the cut record and the kept segments.
    std::fs::remove_file(stream_dir(dir.path(), STREAM).join("manifest.json")).unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), Some(head));
    storage.verify_stream(STREAM).unwrap();
}

fn check_pruned<F: FileSystem>(
    storage: &mut Storage<F>,
    cut: Offset,
    all: &[Bytes],
    head: kimberlite_crypto::ChainHash,
) {
    let below = storage.read_from(STREAM, Offset::new(cut.as_u64() - 1), u64::MAX);
    assert!(
        matches!(below, Err(StorageError::Pruned { first_offset, .. }) if first_offset == cut),
        "{below:?}"
    );
    let message = below.unwrap_err().to_string();
    assert!(
        message.contains(&format!("pruned before offset {cut}")),
        "{message}"
    );
    for from in [cut.as_u64(), cut.as_u64() + 1, EVENTS - 1] {
        let read = storage
            .read_from(STREAM, Offset::new(from), u64::MAX)
            .unwrap();
        assert_eq!(read.as_slice(), &all[from as usize..], "from {from}");
    }
    let report = storage.verify_stream(STREAM).unwrap();
    assert_eq!(report.head, Some(head));
    assert_eq!(report.records_checked, EVENTS - cut.as_u64());
    assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), Some(head));
}

#[test]
fn prunes_are_refused_where_they_cannot_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    filled(&mut storage);
    let past = storage.prune_boundary(STREAM, Offset::new(EVENTS + 1));
    assert!(
        matches!(past, Err(StorageError::PruneRefused { .. })),
        "{past:?}"
    );
    let unknown = storage.prune_boundary(StreamId::new(99), Offset::ZERO);
    assert!(
        matches!(unknown, Err(StorageError::PruneRefused { .. })),
        "{unknown:?}"
    );
    // Not a segment boundary, and nothing below the first segment.
    let cut = third_segment_start(&storage);
    for bad in [Offset::new(cut.as_u64() + 1), Offset::ZERO] {
        let refused = storage.prune(STREAM, bad, Vec::new(), 0);
        assert!(
            matches!(refused, Err(StorageError::PruneRefused { .. })),
            "{refused:?}"
        );
    }
    assert!(!stream_dir(dir.path(), STREAM).join(PRUNED_FILE).exists());
    // Before the head the boundary rounds down; at the head it is the active segment's start.
    let at_head = storage.prune_boundary(STREAM, Offset::new(EVENTS)).unwrap();
    assert!(at_head >= cut && at_head <= Offset::new(EVENTS));
    // A second prune goes further, one at the same cut is refused.
    storage.prune(STREAM, cut, Vec::new(), 0).unwrap();
    assert_eq!(storage.prune_boundary(STREAM, Offset::new(1)).unwrap(), cut);
    let again = storage.prune(STREAM, cut, Vec::new(), 0);
    assert!(
        matches!(again, Err(StorageError::PruneRefused { .. })),
        "{again:?}"
    );
    storage.prune(STREAM, at_head, Vec::new(), 0).unwrap();
    assert_eq!(
        storage.verify_stream(STREAM).unwrap().records_checked,
        EVENTS - at_head.as_u64()
    );
}

/// Allows `budget` changes (file writes, syncs, renames, removals, creations), then fails
/// every later one: the process stopped there.
#[derive(Clone)]
struct StopAfter {
    budget: Arc<AtomicU32>,
}

impl StopAfter {
    fn spend(&self) -> io::Result<()> {
        let left = self.budget.load(Ordering::SeqCst);
        if left == 0 {
            return Err(io::Error::other("injected: the process stopped here"));
        }
        self.budget.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

struct StopFile {
    inner: <OsFileSystem as FileSystem>::File,
    fs: StopAfter,
}

impl FileHandle for StopFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, position)
    }
    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        self.fs.spend()?;
        self.inner.write_all_at(buf, position)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.fs.spend()?;
        self.inner.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.spend()?;
        self.inner.sync_data()
    }
}

impl FileSystem for StopAfter {
    type File = StopFile;
    type Lock = <OsFileSystem as FileSystem>::Lock;

    fn open(&self, path: &Path) -> io::Result<StopFile> {
        Ok(StopFile {
            inner: OsFileSystem.open(path)?,
            fs: self.clone(),
        })
    }
    fn create(&self, path: &Path) -> io::Result<StopFile> {
        self.spend()?;
        Ok(StopFile {
            inner: OsFileSystem.create(path)?,
            fs: self.clone(),
        })
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsFileSystem.create_dir_all(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsFileSystem.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.spend()?;
        OsFileSystem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.spend()?;
        OsFileSystem.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        OsFileSystem.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.spend()?;
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
}

#[test]
fn a_prune_stopped_at_any_step_is_done_or_not_after_the_next_open() {
    let (mut done, mut undone) = (0, 0);
    for budget in 0..64 {
        let dir = tempfile::tempdir().unwrap();
        let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
        let head = filled(&mut storage);
        let all = read_all(&mut storage, STREAM, 64);
        let cut = third_segment_start(&storage);
        drop(storage);
        let fs = StopAfter {
            budget: Arc::new(AtomicU32::new(u32::MAX)),
        };
        let mut storage = Storage::open_on(fs.clone(), dir.path(), small_config()).unwrap();
        fs.budget.store(budget, Ordering::SeqCst);
        let finished = storage.prune(STREAM, cut, Vec::new(), 0).is_ok();
        drop(storage);

        let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
        let report = storage.verify_stream(STREAM).unwrap();
        assert_eq!(report.head, Some(head), "budget {budget}");
        match storage.prune_point(STREAM) {
            Some(point) => {
                assert_eq!(point.first_offset, cut);
                assert!(
                    !segment_file(dir.path(), STREAM, 0).exists(),
                    "budget {budget}"
                );
                check_pruned(&mut storage, cut, &all, head);
                done += 1;
            }
            None => {
                assert!(!finished, "budget {budget}: a finished prune is kept");
                assert_eq!(read_all(&mut storage, STREAM, 64), all, "budget {budget}");
                undone += 1;
            }
        }
        if finished {
            assert!(storage.recovery_report().is_clean(), "budget {budget}");
            break;
        }
    }
    assert!(done > 1 && undone > 1, "done {done}, undone {undone}");
}

#[test]
fn open_completes_a_prune_only_when_its_cut_record_fits_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    let head = filled(&mut storage);
    let cut = third_segment_start(&storage);
    let stream = stream_dir(dir.path(), STREAM);
    // Keep every file, prune, then put the dropped files back: a crash before the deletes.
    let kept: Vec<_> = std::fs::read_dir(&stream)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| (path.clone(), std::fs::read(&path).unwrap()))
        .collect();
    storage.prune(STREAM, cut, Vec::new(), 0).unwrap();
    drop(storage);
    let record = std::fs::read(stream.join(PRUNED_FILE)).unwrap();
    for (path, bytes) in &kept {
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::write(stream.join(PRUNED_FILE), &record).unwrap();
    // A read-only open completes it in its view only: every file stays on disk.
    let read_only = Storage::open_on(ReadOnlyFs::new(OsFileSystem), dir.path(), small_config());
    let mut read_only = read_only.unwrap();
    assert_eq!(read_only.verify_stream(STREAM).unwrap().head, Some(head));
    drop(read_only);
    assert!(
        segment_file(dir.path(), STREAM, 0).exists(),
        "a read-only open deletes nothing"
    );
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    let completed = storage
        .recovery_report()
        .actions
        .iter()
        .any(|action| matches!(action, RecoveryAction::PruneCompleted { .. }));
    assert!(completed, "{:?}", storage.recovery_report());
    assert_eq!(storage.verify_stream(STREAM).unwrap().head, Some(head));
    drop(storage);

    // The same with a forged chain hash: not completed, the stream left unopened.
    for (path, bytes) in &kept {
        std::fs::write(path, bytes).unwrap();
    }
    let text = String::from_utf8(record).unwrap();
    let point_hash = text
        .lines()
        .find(|line| line.contains("\"chain_hash\""))
        .unwrap()
        .to_owned();
    let forged_line = format!("  \"chain_hash\": \"{}\",", "ab".repeat(32));
    let forged = text.replace(&point_hash, &forged_line);
    let forged = reseal(&forged);
    std::fs::write(stream.join(PRUNED_FILE), forged).unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    let error = storage.verify_stream(STREAM).unwrap_err();
    assert!(
        matches!(error, StorageError::Unrecoverable { .. }),
        "{error}"
    );
    assert!(
        segment_file(dir.path(), STREAM, 0).exists(),
        "nothing deleted"
    );
    drop(storage);

    // Forged after the files are gone: the first kept record's link catches it.
    std::fs::remove_file(stream.join(PRUNED_FILE)).unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    storage.prune(STREAM, cut, Vec::new(), 0).unwrap();
    drop(storage);
    let text = std::fs::read_to_string(stream.join(PRUNED_FILE)).unwrap();
    let forged = reseal(&text.replace(&point_hash, &forged_line));
    std::fs::write(stream.join(PRUNED_FILE), forged).unwrap();
    let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
    let error = storage.verify_stream(STREAM).unwrap_err();
    assert!(error.is_corruption(), "{error}");
}

/// A cut record with its checksum recomputed, as an attacker with write access would: the
/// checksum covers the compact encoding, the pretty text without whitespace (no value of the
/// record holds any).
fn reseal(text: &str) -> String {
    let crc_line = text
        .lines()
        .find(|line| line.contains("\"crc32c\""))
        .unwrap();
    let zeroed = text.replace(crc_line, "  \"crc32c\": 0");
    let compact: String = zeroed.chars().filter(|c| !c.is_whitespace()).collect();
    let crc = crc32c::crc32c(compact.as_bytes());
    zeroed.replace("\"crc32c\": 0", &format!("\"crc32c\": {crc}"))
}
