//! `read_verified`: 1,000 events read (every CRC, offset and chain link checked, every record
//! re-hashed) at the start, the middle and the end of a 1,000,000-event stream of 256-byte
//! events in an on-disk `Storage` (default config: 256 MiB segments, a restart record every 64
//! records), written once per run into a temp dir and reopened. Targets: end/start <= 1.5
//! (a read starts at the nearest restart record, not at the stream's first record), and payload
//! throughput >= 0.7x plain SHA-256 of the same payloads (each hashed as one message).
//!
//! Run: `cargo bench -p kimberlite-bench --bench read_verified`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use kimberlite_bench::{
    build_store, interleaved, rate, report, scaled, sha256_each, thousands, Target, EVENT_BYTES,
    LARGE_STORE_EVENTS, STREAM,
};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig, StoreBackend};
use kimberlite_types::Offset;

const READ_EVENTS: u64 = 1_000;

/// Builds the store once per run (in a temp dir); returns it and its event count.
fn build() -> (tempfile::TempDir, u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let count = scaled(LARGE_STORE_EVENTS, 100_000);
    let built = build_store(dir.path(), count, StorageConfig::default());
    let storage = Storage::open(dir.path()).expect("reopen");
    let stats = storage.stream_stats(STREAM).expect("the stream");
    println!(
        "read_verified: built {count} events in {built:.1?}: {} segments, {} MB",
        stats.segment_count,
        stats.stored_bytes / 1_000_000
    );
    (dir, count)
}

fn read(storage: &mut Storage, from: u64) -> Vec<Bytes> {
    let events = storage
        .read_from(STREAM, Offset::new(from), READ_EVENTS * EVENT_BYTES as u64)
        .expect("read an intact stream");
    assert_eq!(events.len() as u64, READ_EVENTS);
    events
}

fn bench(c: &mut Criterion, dir: &std::path::Path, count: u64) {
    let mut storage = Storage::open(dir).expect("reopen");
    let mut group = c.benchmark_group("read_verified");
    group.throughput(Throughput::Bytes(READ_EVENTS * EVENT_BYTES as u64));
    for (name, from) in [
        ("start", 0),
        ("middle", count / 2),
        ("end", count - READ_EVENTS),
    ] {
        group.bench_function(format!("kimberlite_1000_at_{name}"), |b| {
            b.iter(|| black_box(read(&mut storage, from)))
        });
    }
    let payloads = read(&mut storage, 0);
    group.bench_function("baseline_sha256_1000x256B", |b| {
        b.iter(|| sha256_each(&payloads))
    });
    group.finish();
}

fn print_ratio(dir: &std::path::Path, count: u64) {
    let storage = Storage::open(dir).expect("reopen");
    // Both sides of an interleaved pair read the same store.
    let storage = std::cell::RefCell::new(storage);
    let read = |from| read(&mut storage.borrow_mut(), from);
    let rounds = scaled(300, 30) as usize;
    let end_from = count - READ_EVENTS;
    let (start, end) = interleaved(
        rounds,
        || drop(black_box(read(0))),
        || drop(black_box(read(end_from))),
    );
    let (middle, _) = interleaved(rounds, || drop(black_box(read(count / 2))), || {});
    let payloads = read(end_from);
    // The same read verified on the calling thread only (`verify_threads = 1`) against the
    // default (the machine's cores, up to 4): what the verify threads give.
    let threads = storage.borrow().config().verify_threads;
    let with_threads = |n, from, max_bytes| {
        let mut storage = storage.borrow_mut();
        storage.set_verify_threads(n);
        let events = storage.read_from(STREAM, Offset::new(from), max_bytes);
        storage.set_verify_threads(threads);
        drop(black_box(events.expect("read an intact stream")));
    };
    let full = READ_EVENTS * EVENT_BYTES as u64;
    let (one, default) = interleaved(
        rounds,
        || with_threads(1, end_from, full),
        || with_threads(threads, end_from, full),
    );
    println!(
        "read_verified: 1,000 events at the end with verify_threads = 1: {one:.2?}, \
         = {threads} (default here): {default:.2?}"
    );
    // Small reads: 1 and 10 events at offset 0 (nothing before them to re-verify), and
    // just before a restart record (63 records after the previous one, all re-verified
    // first), in a completed segment (1,023) and in the active one (999,167).
    for (events, from) in [(1, 0), (10, 0), (1, 1_023), (10, end_from + 167)] {
        let max_bytes = events * EVENT_BYTES as u64;
        let (one, default) = interleaved(
            rounds,
            || with_threads(1, from, max_bytes),
            || with_threads(threads, from, max_bytes),
        );
        println!(
            "read_verified: {events} event(s) at offset {from}: verify_threads = 1 {one:.2?}, \
             = {threads} {default:.2?}"
        );
    }
    let (end_again, sha) = interleaved(
        rounds,
        || drop(black_box(read(end_from))),
        || sha256_each(&payloads),
    );
    println!(
        "read_verified: 1,000 events at the start {start:.2?}, middle {middle:.2?}, \
         end {end:.2?}; SHA-256 of the same payloads {sha:.2?}"
    );
    report(
        "read_verified end/start",
        &format!("end {end:.2?}"),
        &format!("start {start:.2?}"),
        end.as_secs_f64() / start.as_secs_f64(),
        Target::AtMost(1.5),
    );
    let mb = |elapsed| rate(READ_EVENTS * EVENT_BYTES as u64, elapsed) / 1e6;
    report(
        "read_verified throughput",
        &format!("{} MB/s of payload (end)", thousands(mb(end_again))),
        &format!("SHA-256 {} MB/s", thousands(mb(sha))),
        mb(end_again) / mb(sha),
        Target::AtLeast(0.7),
    );
}

fn main() {
    let (dir, count) = build();
    kimberlite_bench::run(
        |c| bench(c, dir.path(), count),
        || print_ratio(dir.path(), count),
    );
}
