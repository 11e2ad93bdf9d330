//! The Raft log file over the simulated file system: after a failed write, sync or rewrite it
//! refuses every append (errors, not panics) until reopened, since its tail is unknown; what
//! was synced survives a crash, and a reopened file goes on.

use std::path::Path;

use kimberlite_sim::fs::{FaultConfig, SimFileSystem};

use crate::log_file::{LogFile, LogFileError, LogRecord, LogState};
use crate::log_file_tests::{append_100_purge_95, entry, keys};

const DIR: &str = "/node";

/// A file system whose every write (or sync) fails once faults are on; off at first.
fn failing(faults: FaultConfig) -> SimFileSystem {
    let fs = SimFileSystem::new(7, faults);
    fs.set_faults_enabled(false);
    fs
}

fn open(fs: &SimFileSystem) -> (LogFile<SimFileSystem>, LogState) {
    LogFile::open_with(fs.clone(), Path::new(DIR), true).unwrap()
}

/// Appends 1 and 2, fails appending 3 with faults on, then checks that 4 is refused with
/// the disk well again, and that a reopen finds 1 and 2 (3 maybe) and takes 4.
fn assert_fail_stop(faults: FaultConfig) {
    let fs = failing(faults);
    let (mut file, _) = open(&fs);
    file.append(&[entry(1), entry(2)]).unwrap();
    fs.set_faults_enabled(true);
    let failed = file.append(&[entry(3)]);
    assert!(matches!(failed, Err(LogFileError::Io { .. })), "{failed:?}");
    fs.set_faults_enabled(false);
    let refused = file.append(&[entry(4)]);
    assert!(
        matches!(refused, Err(LogFileError::Io { .. })),
        "{refused:?}"
    );
    drop(file);

    let (mut file, state) = open(&fs);
    let found = keys(&state);
    assert!(found == [1, 2] || found == [1, 2, 3], "{found:?}");
    file.append(&[LogRecord::Truncate(3), entry(3), entry(4)])
        .unwrap();
    drop(file);
    assert_eq!(keys(&open(&fs).1), [1, 2, 3, 4]);
}

#[test]
fn a_failed_write_stops_appends_until_reopened() {
    assert_fail_stop(FaultConfig {
        write_fail_probability: 1.0,
        ..FaultConfig::NONE
    });
}

#[test]
fn a_failed_sync_stops_appends_until_reopened() {
    assert_fail_stop(FaultConfig {
        sync_fail_probability: 1.0,
        ..FaultConfig::NONE
    });
}

#[test]
fn a_failed_rewrite_stops_appends_until_reopened() {
    let fs = failing(FaultConfig {
        sync_fail_probability: 1.0,
        ..FaultConfig::NONE
    });
    let (mut file, mut state) = open(&fs);
    append_100_purge_95(&mut file, &mut state);
    fs.set_faults_enabled(true);
    assert!(matches!(file.rewrite(&state), Err(LogFileError::Io { .. })));
    fs.set_faults_enabled(false);
    let refused = file.append(&[entry(101)]);
    assert!(
        matches!(refused, Err(LogFileError::Io { .. })),
        "{refused:?}"
    );
    drop(file);
    let (_, replayed) = open(&fs);
    assert_eq!(keys(&replayed), (96..=100).collect::<Vec<_>>());
}

#[test]
fn synced_records_survive_a_crash_from_the_first_append_on() {
    for seed in 0..8 {
        let fs = SimFileSystem::new(seed, FaultConfig::NONE);
        let (mut file, _) = open(&fs);
        file.append(&[entry(1)]).unwrap();
        file.append(&[entry(2), LogRecord::Truncate(2)]).unwrap();
        drop(file);
        fs.crash();
        assert_eq!(keys(&open(&fs).1), [1], "seed {seed}");
    }
}
