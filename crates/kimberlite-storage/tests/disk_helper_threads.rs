//! No helper thread outlives the stores that started it: the verify helpers of a store and the
//! encode helper the stores share are joined when the last store holding them is dropped.
//!
//! One test in its own binary, so that no other test's stores start helpers meanwhile.

mod common;

use common::{event, scratch_dir};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, HASH_AHEAD_MIN_EVENTS};
use kimberlite_types::{Offset, StreamId};

/// This process's threads whose name starts with `prefix` (Linux: `/proc/self/task`).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Waits (at most a few seconds) until `count` threads are named `prefix`: a new thread
/// names itself once it runs, and a joined one may be listed a moment longer while the kernel
/// finishes its exit.
fn settles_at(prefix: &str, count: usize) -> bool {
    for _ in 0..500 {
        if threads_named(prefix) == count {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

fn append_and_read(storage: &mut Storage, stream: StreamId) {
    let events: Vec<_> = (0..4 * HASH_AHEAD_MIN_EVENTS as u64)
        .map(|i| event(stream.as_u64(), i))
        .collect();
    let count = events.len() as u64;
    storage
        .append_batch(stream, events, Offset::ZERO, None, false)
        .unwrap();
    let read = storage.read_from(stream, Offset::ZERO, u64::MAX).unwrap();
    assert_eq!(read.len() as u64, count);
}

#[cfg(target_os = "linux")]
#[test]
fn helper_threads_are_joined_when_the_last_store_is_dropped() {
    let config = StorageConfig {
        verify_threads: 2,
        hash_ahead: true,
        ..StorageConfig::default()
    };
    let (first_dir, second_dir) = (scratch_dir(), scratch_dir());
    let mut first = Storage::open_with(first_dir.path(), config).unwrap();
    let mut second = Storage::open_with(second_dir.path(), config).unwrap();
    append_and_read(&mut first, StreamId::new(1));
    append_and_read(&mut second, StreamId::new(2));
    assert!(
        settles_at("kimberlite-enco", 1),
        "one encode helper, shared"
    );
    assert!(
        settles_at("kimberlite-veri", 2),
        "a verify helper per store"
    );

    drop(first);
    assert!(
        settles_at("kimberlite-enco", 1),
        "the other store still holds the encode helper"
    );
    assert!(
        settles_at("kimberlite-veri", 1),
        "the dropped store's verify helper is joined"
    );

    drop(second);
    assert!(
        settles_at("kimberlite-enco", 0),
        "the encode helper is joined"
    );
    assert!(
        settles_at("kimberlite-veri", 0),
        "every verify helper is joined"
    );
}
