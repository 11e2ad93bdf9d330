//! Bugs the simulator found in the engine, each pinned by a deterministic scenario on the
//! simulated file system.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kimberlite_sim::{FaultConfig, SimFileSystem, SimStorage};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, StoreBackend};
use kimberlite_types::{Offset, StreamId};

const STREAM: StreamId = StreamId::new(1);

fn config() -> StorageConfig {
    StorageConfig {
        restart_interval: 0,
        ..StorageConfig::default()
    }
}

fn open(fs: &SimFileSystem) -> SimStorage {
    Storage::open_on(fs.clone(), "/store", config()).expect("open")
}

fn segment0() -> PathBuf {
    Path::new("/store/streams/00000000000000000001/00000000.seg").to_path_buf()
}

fn events(count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(format!("event number {i}")))
        .collect()
}

fn read_all(storage: &mut SimStorage) -> Vec<Bytes> {
    storage
        .read_from(STREAM, Offset::ZERO, u64::MAX)
        .expect("read the whole stream")
}

/// Seed 49: a bit flipped while recovery read the last record made it look torn, and
/// recovery truncated an acknowledged, fsynced record.
#[test]
fn a_flipped_read_of_the_last_record_during_recovery_truncates_nothing() {
    let fs = SimFileSystem::new(0, FaultConfig::NONE);
    let batch = events(3);
    let last_frame_len = 56 + batch[2].len() as u64;
    {
        let mut storage = open(&fs);
        storage
            .append_batch(STREAM, batch.clone(), Offset::ZERO, None, true)
            .unwrap();
    }
    let len = fs.read_raw(&segment0()).unwrap().len() as u64;
    fs.flip_next_read(&segment0(), len - last_frame_len + 20);

    let mut storage = open(&fs);
    assert_eq!(
        fs.counts().read_flips,
        1,
        "the flip was read during recovery"
    );
    assert!(
        storage.recovery_report().truncations().next().is_none(),
        "{:?}",
        storage.recovery_report()
    );
    assert_eq!(read_all(&mut storage), batch);
    assert_eq!(fs.read_raw(&segment0()).unwrap().len() as u64, len);
}

/// A flip read during recovery in the middle of the active segment was remembered as damage:
/// the stream refused reads and appends until the next open.
#[test]
fn a_flipped_read_in_the_middle_during_recovery_is_not_remembered_as_damage() {
    let fs = SimFileSystem::new(0, FaultConfig::NONE);
    let batch = events(5);
    let head = {
        let mut storage = open(&fs);
        storage
            .append_batch(STREAM, batch.clone(), Offset::ZERO, None, true)
            .unwrap()
            .1
    };
    let len = fs.read_raw(&segment0()).unwrap().len() as u64;
    fs.flip_next_read(&segment0(), len / 2);

    let mut storage = open(&fs);
    assert_eq!(fs.counts().read_flips, 1);
    assert!(
        storage.recovery_report().is_clean(),
        "{:?}",
        storage.recovery_report()
    );
    assert_eq!(read_all(&mut storage), batch);
    storage
        .append_batch(STREAM, events(1), Offset::new(5), Some(head), true)
        .expect("the stream still takes appends");
}

/// A batch whose write failed part-way was cut back with an unsynced truncation; after a clean
/// reopen and then a crash, the cut-back bytes came back and the failed events reappeared (or
/// collided with later ones).
#[test]
fn a_failed_batch_does_not_come_back_after_reopen_and_crash() {
    for seed in 0..32 {
        let faults = FaultConfig {
            write_fail_probability: 1.0,
            ..FaultConfig::NONE
        };
        let fs = SimFileSystem::new(seed, faults);
        fs.set_faults_enabled(false);
        let synced = events(2);
        let head = {
            let mut storage = open(&fs);
            let (_, head) = storage
                .append_batch(STREAM, synced.clone(), Offset::ZERO, None, true)
                .unwrap();
            fs.set_faults_enabled(true);
            let failed = storage.append_batch(STREAM, events(4), Offset::new(2), Some(head), false);
            assert!(
                failed.is_err(),
                "seed {seed}: the write failure is reported"
            );
            fs.set_faults_enabled(false);
            head
        };
        {
            let mut storage = open(&fs);
            assert_eq!(
                read_all(&mut storage),
                synced,
                "seed {seed}: after a clean reopen"
            );
            assert_eq!(storage.latest_chain_hash(STREAM).unwrap(), Some(head));
        }
        fs.crash();
        let mut storage = open(&fs);
        assert_eq!(read_all(&mut storage), synced, "seed {seed}: after a crash");
    }
}
