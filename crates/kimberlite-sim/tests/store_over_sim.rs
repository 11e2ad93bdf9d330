//! The whole `kimberlite` store over `SimFileSystem`: every file it writes (segments, the
//! marker, the Merkle tree levels) lives in the simulated file system, so a simulated crash
//! reaches all of them.

use std::path::{Path, PathBuf};

use kimberlite::{Config, Durability, Error, ExpectedOffset, Kimberlite, MARKER_FILE};
use kimberlite_sim::{FaultConfig, SimFileSystem};

const STORE: &str = "/store";

fn open(fs: &SimFileSystem) -> Kimberlite {
    Kimberlite::open_with_fs(fs.clone(), STORE, Config::default()).unwrap()
}

#[test]
fn every_store_file_is_in_the_simulated_file_system() {
    let fs = SimFileSystem::new(7, FaultConfig::NONE);
    let store = open(&fs);
    let id = store.create_stream("audit").unwrap();
    store
        .append(id, ["a", "b", "c"], ExpectedOffset::NoStream)
        .unwrap();
    store.sync().unwrap();
    drop(store);
    let files = fs.files();
    assert!(
        files.contains(&Path::new(STORE).join(MARKER_FILE)),
        "{files:?}"
    );
    assert!(
        files.iter().any(|file| file.starts_with("/store/merkle")),
        "{files:?}"
    );
    assert!(!Path::new(STORE).exists(), "nothing on the real disk");
}

#[test]
fn synced_events_survive_a_crash_and_the_store_reopens_verified() {
    let fs = SimFileSystem::new(11, FaultConfig::NONE);
    let config = Config::default().durability(Durability::GroupCommit);
    let store = Kimberlite::open_with_fs(fs.clone(), STORE, config).unwrap();
    let id = store.create_stream("audit").unwrap();
    let appended = store.append(id, ["a", "b"], ExpectedOffset::Any).unwrap();
    let head = store.tree_head(id).unwrap();
    fs.crash();
    drop(store);
    let store = open(&fs);
    let id = store.stream("audit").unwrap();
    assert_eq!(store.head(id).unwrap().next_offset, appended.next_offset);
    assert!(store.verify_all().unwrap().is_intact());
    assert_eq!(store.tree_head(id).unwrap(), head);
}

#[test]
fn a_file_in_the_stores_place_is_not_a_store() {
    let fs = SimFileSystem::new(3, FaultConfig::NONE);
    kimberlite_storage::FileSystem::create_dir_all(&fs, Path::new("/")).unwrap();
    kimberlite_storage::FileSystem::create(&fs, Path::new("/file")).unwrap();
    let refused = Kimberlite::open_with_fs(fs.clone(), PathBuf::from("/file"), Config::default());
    assert!(matches!(refused, Err(Error::NotAStore { .. })));
    let missing = Config::default().create_if_missing(false);
    let refused = Kimberlite::open_with_fs(fs, "/nowhere", missing);
    assert!(matches!(refused, Err(Error::StoreNotFound { .. })));
}

/// Under `Durability::Unsynced` a stream's catalogue event and its first events are both
/// unsynced; a crash may keep the events and drop the catalogue event. The reopened store then
/// reports the stream as tampered ("the catalogue names no stream N: catalogue entries were
/// removed") although nothing but a crash happened, so `verify_all` is not intact. Found by
/// the whole-store simulator (seeds 1, 2 and 23 at 120 rounds, before it synced stream
/// creations made under `Unsynced`).
#[test]
fn an_unsynced_stream_creation_lost_at_a_crash_leaves_the_store_verified() {
    let mut damaged = Vec::new();
    for seed in 0..64 {
        let fs = SimFileSystem::new(seed, FaultConfig::NONE);
        let config = Config::default().durability(Durability::Unsynced);
        let store = Kimberlite::open_with_fs(fs.clone(), STORE, config).unwrap();
        let id = store.create_stream("audit").unwrap();
        store
            .append(id, ["a", "b", "c"], ExpectedOffset::Any)
            .unwrap();
        fs.crash();
        drop(store);
        let store = open(&fs);
        let report = store.verify_all().unwrap();
        if !report.is_intact() {
            damaged.push((seed, report.problems));
        }
    }
    assert!(damaged.is_empty(), "{damaged:?}");
}
