//! Reads 1,000 verified events at the end of a 200,000-event stream, over and over, and
//! nothing else, so a profiler (`perf record -g`) sees only the read path; prints the median
//! read time with one verify thread and with the default.
//!
//! Run: `cargo run --release -p kimberlite-bench --example read_loop -- [reads] [threads]`
//! (both thread counts when `threads` is not given).

use std::time::Instant;

use kimberlite_bench::{build_store, median, EVENT_BYTES, STREAM};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig};
use kimberlite_types::Offset;

const COUNT: u64 = 200_000;
const READ_EVENTS: u64 = 1_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let reads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let thread_counts: Vec<usize> = match args.next().and_then(|a| a.parse().ok()) {
        Some(threads) => vec![threads],
        None => vec![1, StorageConfig::default().verify_threads],
    };
    let dir = tempfile::tempdir().expect("temp dir");
    build_store(dir.path(), COUNT, StorageConfig::default());
    for verify_threads in thread_counts {
        let config = StorageConfig {
            verify_threads,
            ..StorageConfig::default()
        };
        let storage = Storage::open_with(dir.path(), config).expect("reopen");
        let mut times = Vec::with_capacity(reads);
        for _ in 0..reads {
            let start = Instant::now();
            let events = storage
                .read_from(
                    STREAM,
                    Offset::new(COUNT - READ_EVENTS),
                    READ_EVENTS * EVENT_BYTES as u64,
                )
                .expect("read");
            times.push(start.elapsed());
            assert_eq!(events.len() as u64, READ_EVENTS);
        }
        println!(
            "read_loop: {reads} reads of {READ_EVENTS} at the end, verify_threads {verify_threads}: median {:.2?}",
            median(times)
        );
    }
}
