//! Appends batches of 1,000 x 256 B (the `append_nosync` workload) and nothing else, so a
//! profiler (`perf record -g`) sees only the append path; prints the median batch time.
//!
//! Run: `cargo run --release -p kimberlite-bench --example append_loop -- [batches] [fsync]`.

use std::time::Instant;

use kimberlite_bench::{events, median, Appender, Batches, BATCH_EVENTS};
use kimberlite_storage::StorageConfig;

fn main() {
    let mut args = std::env::args().skip(1);
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let fsync = args.next().is_some_and(|a| a == "fsync");
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut appender = Appender::open(dir.path(), StorageConfig::default());
    let mut ready = Batches::new(&batch, batches);
    let mut times = Vec::with_capacity(batches);
    for _ in 0..batches {
        let events = ready.take();
        let start = Instant::now();
        appender.append(events, fsync);
        times.push(start.elapsed());
    }
    println!(
        "append_loop: {batches} batches of {BATCH_EVENTS}, fsync {fsync}: median {:.2?} per batch",
        median(times)
    );
}
