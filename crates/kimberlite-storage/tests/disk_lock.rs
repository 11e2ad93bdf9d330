//! One open `Storage` per directory: a second open fails with `Locked` until the first is
//! dropped.

use kimberlite_storage::{Storage, StorageError, StoreBackend};

#[test]
fn a_second_open_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let first = Storage::open(dir.path()).unwrap();
    let error = Storage::open(dir.path()).err().unwrap();
    assert!(
        matches!(&error, StorageError::Locked { path } if *path == dir.path().join("LOCK")),
        "{error}"
    );
    assert!(error.to_string().contains("locked"), "{error}");
    drop(first);
    Storage::open(dir.path()).unwrap();
}

#[test]
fn storage_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Storage>();
}

#[test]
fn open_creates_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    let storage = Storage::open(&nested).unwrap();
    assert_eq!(storage.dir(), nested);
    assert!(storage.streams().is_empty());
}
