//! Recovery reads a metadata structure that fails to decode again before it acts: a manifest,
//! a completed segment's index, and the headers of completed and active segments, each read
//! with a flipped bit (a transient read error; the stored bytes are fine) fewer times than
//! recovery's attempts (3, `METADATA_READ_ATTEMPTS` in `disk/recovery.rs`) opens clean; as
//! many times as its attempts, recovery acts on what it read.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kimberlite_sim::{FaultConfig, SimFileSystem, SimStorage};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, StoreBackend};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(1);
const ATTEMPTS: usize = 3;
const EVENTS: u64 = 40;

fn config() -> StorageConfig {
    StorageConfig {
        max_segment_size: 512,
        restart_interval: 0,
        ..StorageConfig::default()
    }
}

fn open(fs: &SimFileSystem) -> Result<SimStorage, kimberlite_storage::StorageError> {
    Storage::open_on(fs.clone(), "/store", config())
}

fn stream_file(name: &str) -> PathBuf {
    Path::new("/store/streams/00000000000000000001").join(name)
}

fn event(i: u64) -> Bytes {
    Bytes::from(format!("event number {i:04}"))
}

/// A store with completed segments and an active one, its manifest and indexes flushed.
fn store() -> (SimFileSystem, u32) {
    let fs = SimFileSystem::new(0, FaultConfig::NONE);
    let mut storage = open(&fs).unwrap();
    let mut head = None;
    for i in (0..EVENTS).step_by(4) {
        let events: Vec<Bytes> = (i..i + 4).map(event).collect();
        head = Some(
            storage
                .append_batch(STREAM, events, Offset::new(i), head, true)
                .unwrap()
                .1,
        );
    }
    storage.flush().unwrap();
    let active = storage.segment_count(STREAM) as u32 - 1;
    assert!(active >= 2, "needs completed segments");
    (fs, active)
}

/// The metadata files recovery reads through its re-read loop.
fn targets(active: u32) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("manifest", stream_file("manifest.json")),
        ("completed index", stream_file("00000000.idx")),
        ("completed header", stream_file("00000001.seg")),
        ("active header", stream_file(&format!("{active:08}.seg"))),
    ]
}

#[test]
fn transient_bad_reads_of_metadata_are_read_again() {
    let (_, active) = store();
    for (what, path) in targets(active) {
        let (fs, _) = store();
        let before = fs.read_raw(&path).unwrap();
        for _ in 0..ATTEMPTS - 1 {
            fs.flip_next_read(&path, 0);
        }
        let storage = open(&fs).unwrap_or_else(|error| panic!("{what}: {error}"));
        assert_eq!(
            fs.counts().read_flips,
            (ATTEMPTS - 1) as u64,
            "{what}: every flip was read"
        );
        assert!(
            storage.recovery_report().is_clean(),
            "{what}: {:?}",
            storage.recovery_report()
        );
        let all = storage.read_from(STREAM, Offset::ZERO, u64::MAX).unwrap();
        assert_eq!(all, (0..EVENTS).map(event).collect::<Vec<_>>(), "{what}");
        assert_eq!(fs.read_raw(&path).unwrap(), before, "{what}: rewritten");
    }
}

#[test]
fn a_bad_read_every_attempt_is_acted_on() {
    let (_, active) = store();
    for (what, path) in targets(active) {
        let (fs, _) = store();
        for _ in 0..ATTEMPTS {
            fs.flip_next_read(&path, 0);
        }
        let acted = match open(&fs) {
            Ok(storage) => !storage.recovery_report().is_clean(),
            Err(_) => true,
        };
        assert_eq!(fs.counts().read_flips, ATTEMPTS as u64, "{what}");
        assert!(acted, "{what}: {ATTEMPTS} bad reads were not acted on");
    }
}
