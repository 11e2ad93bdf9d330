//! Group commit writes the appends of several callers in one backend call; each caller's
//! events stay a batch of their own in the frames (flag bit 1, `docs/FORMAT.md`), so a crash
//! in the middle of the call cuts only the batch it interrupted.

use std::sync::{Arc, Barrier};

use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite};
use kimberlite_storage::Record;

const THREADS: usize = 6;
const APPENDS: usize = 200;

#[test]
fn each_callers_events_end_their_own_batch_under_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    {
        let config = Config::default().durability(Durability::GroupCommit);
        let store = Kimberlite::open_with(dir.path(), config).unwrap();
        let id = store.create_stream("s").unwrap();
        let barrier = Arc::new(Barrier::new(THREADS));
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (store, barrier) = (store.clone(), Arc::clone(&barrier));
                scope.spawn(move || {
                    barrier.wait();
                    for append in 0..APPENDS {
                        let count = 1 + (thread + append) % 4;
                        let events = (0..count).map(|i| format!("{thread}/{append}/{i}/{count}"));
                        store.append(id, events, ExpectedOffset::Any).unwrap();
                    }
                });
            }
        });
    }
    let segment = dir
        .path()
        .join("streams")
        .join(format!("{:020}", 1))
        .join("00000000.seg");
    let bytes = bytes::Bytes::from(std::fs::read(segment).unwrap());
    // Each run of data frames up to one that ends a batch is exactly one caller's append.
    let mut position = 40;
    let mut batch: Vec<String> = Vec::new();
    let mut batches = 0;
    while position < bytes.len() {
        let (record, len) = Record::from_bytes(&bytes.slice(position..)).unwrap();
        position += len;
        if record.is_restart() {
            assert!(
                record.continues_batch(),
                "a restart record never ends a batch"
            );
            continue;
        }
        batch.push(String::from_utf8(record.payload().to_vec()).unwrap());
        if record.continues_batch() {
            continue;
        }
        let fields: Vec<&str> = batch[0].split('/').collect();
        let count: usize = fields[3].parse().unwrap();
        let expected: Vec<String> = (0..count)
            .map(|i| format!("{}/{}/{i}/{count}", fields[0], fields[1]))
            .collect();
        assert_eq!(batch, expected, "one caller's append, whole, alone");
        batches += 1;
        batch.clear();
    }
    assert!(batch.is_empty(), "the segment ends a batch");
    assert_eq!(batches, THREADS * APPENDS);
}
