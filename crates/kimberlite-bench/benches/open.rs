//! `open`: reopening an on-disk `Storage` of 1,000,000 256-byte events in several segments
//! (64 MiB segments: 5 of them), against a full `verify_stream` of the same store (every
//! record of every segment decoded, CRC-checked, linked and re-hashed). Target: open takes
//! <= 5% of the verify's time (no full scan on open when files are consistent).
//!
//! Run: `cargo bench -p kimberlite-bench --bench open`.

use std::path::Path;

use criterion::Criterion;
use kimberlite_bench::{
    build_store, interleaved, report, scaled, Target, LARGE_STORE_EVENTS, STREAM,
};
use kimberlite_storage::{Storage, StorageConfig, StoreBackend};

fn config() -> StorageConfig {
    StorageConfig {
        max_segment_size: 64 * 1024 * 1024,
        ..StorageConfig::default()
    }
}

fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let count = scaled(LARGE_STORE_EVENTS, 100_000);
    let built = build_store(dir.path(), count, config());
    let storage = Storage::open_with(dir.path(), config()).expect("reopen");
    let stats = storage.stream_stats(STREAM).expect("the stream");
    println!(
        "open: built {count} events in {built:.1?}: {} segments, {} MB",
        stats.segment_count,
        stats.stored_bytes / 1_000_000
    );
    dir
}

fn reopen(dir: &Path) {
    let storage = Storage::open_with(dir, config()).expect("reopen");
    assert!(storage.recovery_report().is_clean());
}

fn verify(dir: &Path) {
    let mut storage = Storage::open_with(dir, config()).expect("reopen");
    let report = storage.verify_stream(STREAM).expect("an intact stream");
    assert!(report.records_checked > 0);
}

fn bench(c: &mut Criterion, dir: &Path) {
    let mut group = c.benchmark_group("open");
    group.bench_function("kimberlite_open_1M_events", |b| b.iter(|| reopen(dir)));
    group.bench_function("baseline_open_and_verify_1M_events", |b| {
        b.iter(|| verify(dir))
    });
    group.finish();
}

fn print_ratio(dir: &Path) {
    let (open, verify_time) = interleaved(scaled(7, 3) as usize, || reopen(dir), || verify(dir));
    println!("open: reopen {open:.2?}, reopen + full verify {verify_time:.2?}");
    report(
        "open",
        &format!("open {open:.2?}"),
        &format!("open + verify_stream {verify_time:.2?}"),
        open.as_secs_f64() / verify_time.as_secs_f64(),
        Target::AtMost(0.05),
    );
}

fn main() {
    let dir = store();
    kimberlite_bench::run(|c| bench(c, dir.path()), || print_ratio(dir.path()));
}
