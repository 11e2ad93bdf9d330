//! Readers side by side: 400 verified reads of 1,000 events from a 200,000-event stream,
//! split over 1, 2 and 4 threads sharing one `kimberlite` store. Reads take the store's read
//! lock, so more reader threads than cores should cost no more than one thread doing all the
//! reads (`docs/PERFORMANCE.md`, section "Design decisions").
//!
//! Run: `cargo run --release -p kimberlite-bench --example concurrent_reads`.

use std::time::{Duration, Instant};

use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite, Offset, StreamId};
use kimberlite_bench::{event, median, BATCH_EVENTS};

const BATCHES: u64 = 200;
const READS: usize = 400;
const READ_BYTES: u64 = 256_000;

/// `READS` reads at scattered offsets, split over `threads` threads; returns the elapsed time.
fn read_with(store: &Kimberlite, id: StreamId, threads: usize) -> Duration {
    let last_start = BATCHES * BATCH_EVENTS as u64 - BATCH_EVENTS as u64;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            scope.spawn(move || {
                for read in 0..READS / threads {
                    let from = (thread as u64 * 7_919 + read as u64 * 104_729) % last_start;
                    let events = store
                        .read(id, Offset::new(from), READ_BYTES)
                        .expect("read an intact stream");
                    assert_eq!(events.len(), BATCH_EVENTS);
                }
            });
        }
    });
    started.elapsed()
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config::default().durability(Durability::Unsynced);
    let store = Kimberlite::open_with(dir.path(), config).expect("open the store");
    let id = store.create_stream("reads").expect("create the stream");
    for batch in 0..BATCHES {
        let first = batch * BATCH_EVENTS as u64;
        let events: Vec<_> = (first..first + BATCH_EVENTS as u64).map(event).collect();
        store
            .append(id, events, ExpectedOffset::Any)
            .expect("append");
    }
    for threads in [1, 2, 4] {
        let times = (0..5).map(|_| read_with(&store, id, threads)).collect();
        println!(
            "{threads} reader thread(s): {READS} reads of 1,000 events in {:.1?} (median of 5)",
            median(times)
        );
    }
}
