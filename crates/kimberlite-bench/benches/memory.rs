//! `memory`: resident bytes per event held by an open on-disk `Storage` of 1,000,000 256-byte
//! events (default config: 256 MiB segments, a sparse index entry every 64 records, a
//! restart record every 64).
//!
//! The store is built by a child process. Measured as the growth of this process's resident
//! set (`/proc/self/statm`) across `Storage::open`, and again after a read at the start and at the end (reads go through the
//! completed segments' maps; mapped file pages they touch count as resident). The baseline
//! is the payload itself (256 bytes per event). Target: <= 16 bytes per event.
//!
//! Not a timing benchmark: it prints its figures and runs no criterion group.
//!
//! Run: `cargo bench -p kimberlite-bench --bench memory`.

use kimberlite_bench::{
    build_store, report, resident_bytes, scaled, Target, EVENT_BYTES, LARGE_STORE_EVENTS, STREAM,
};
use kimberlite_storage::{Storage, StorageBackend, StorageConfig};
use kimberlite_types::Offset;

/// Set in the child process that builds the store.
const BUILD_DIR_VAR: &str = "KIMBERLITE_BENCH_MEMORY_BUILD_DIR";

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let count = scaled(LARGE_STORE_EVENTS, 100_000);
    if let Some(dir) = std::env::var_os(BUILD_DIR_VAR) {
        build_store(std::path::Path::new(&dir), count, StorageConfig::default());
        return;
    }
    // The store is built by a child process, so that nothing the build allocated and freed
    // is still held by this process's allocator when the open is measured.
    let dir = tempfile::tempdir().expect("temp dir");
    let status = std::process::Command::new(std::env::current_exe().expect("this bench"))
        .env(BUILD_DIR_VAR, dir.path())
        .status()
        .expect("run the store builder");
    assert!(status.success(), "building the store failed");
    let before = resident_bytes().expect("/proc/self/statm");
    let storage = Storage::open(dir.path()).expect("reopen");
    let opened = resident_bytes().expect("/proc/self/statm");
    for from in [0, count - 1_000] {
        let events = storage
            .read_from(STREAM, Offset::new(from), 1_000 * EVENT_BYTES as u64)
            .expect("read");
        assert_eq!(events.len(), 1_000);
    }
    let after_reads = resident_bytes().expect("/proc/self/statm");
    let per_event = |bytes: u64| bytes.saturating_sub(before) as f64 / count as f64;
    println!(
        "memory: resident before open {} KiB, after open {} KiB, after two 1,000-event reads {} KiB",
        before / 1024,
        opened / 1024,
        after_reads / 1024
    );
    report(
        "memory",
        &format!(
            "{:.2} resident bytes per event after open",
            per_event(opened)
        ),
        &format!("{EVENT_BYTES} payload bytes per event"),
        per_event(opened),
        Target::AtMost(16.0),
    );
    println!(
        "memory: {:.2} resident bytes per event after the reads",
        per_event(after_reads)
    );
    drop(storage);
}
