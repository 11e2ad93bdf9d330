//! `group_commit`: 16 threads each appending single 256-byte events, with durability, through
//! the `kimberlite` store opened with `Durability::GroupCommit` (concurrent appenders share
//! syncs), against one thread appending single events with `Durability::SyncEachAppend` (one
//! sync per event). Both write one shared stream (`ExpectedOffset::Any`), default config
//! otherwise. Target: group commit >= 10x the baseline's events/s.
//!
//! Besides criterion's report (one iteration = one event per thread), prints a `RESULT` line
//! from 15 short alternating rounds of both sides: the median per-round ratio, and its range.
//!
//! Run: `cargo bench -p kimberlite-bench --bench group_commit`.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite, StreamId};
use kimberlite_bench::ceiling::Parts;
use kimberlite_bench::{event, median, rate, report, scaled, thousands, Target};

const THREADS: u64 = 16;

fn open(dir: &Path, durability: Durability) -> (Kimberlite, StreamId) {
    let store = Kimberlite::open_with(dir, Config::default().durability(durability))
        .expect("open the bench store");
    let id = store.create_stream("bench").expect("create the stream");
    (store, id)
}

/// `THREADS` threads each append `per_thread` single events; returns the elapsed time.
fn concurrent(store: &Kimberlite, id: StreamId, per_thread: u64) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            scope.spawn(move || {
                for i in 0..per_thread {
                    store
                        .append(id, [event(thread * 1_000_000 + i)], ExpectedOffset::Any)
                        .expect("append");
                }
            });
        }
    });
    started.elapsed()
}

fn single(store: &Kimberlite, id: StreamId, count: u64) -> Duration {
    let started = Instant::now();
    for i in 0..count {
        store
            .append(id, [event(i)], ExpectedOffset::Any)
            .expect("append");
    }
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (group_store, group_id) = open(&dir.path().join("group"), Durability::GroupCommit);
    let (sync_store, sync_id) = open(&dir.path().join("sync"), Durability::SyncEachAppend);
    let mut group = c.benchmark_group("group_commit");
    group.throughput(Throughput::Elements(THREADS));
    group.bench_function("kimberlite_16_threads_x1_event", |b| {
        b.iter_custom(|iters| concurrent(&group_store, group_id, iters))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("baseline_1_thread_synced_single", |b| {
        b.iter_custom(|iters| single(&sync_store, sync_id, iters))
    });
    group.finish();
}

fn print_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (group_store, group_id) = open(&dir.path().join("group"), Durability::GroupCommit);
    let (sync_store, sync_id) = open(&dir.path().join("sync"), Durability::SyncEachAppend);
    let per_thread = scaled(40, 10);
    let singles = scaled(150, 40);
    // Short alternating rounds: a virtual disk's flush latency can change several-fold within
    // seconds, so each round's ratio compares the two sides in the same period.
    let (mut ours, mut base, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..scaled(15, 2) {
        let ours_rate = rate(
            per_thread * THREADS,
            concurrent(&group_store, group_id, per_thread),
        );
        let base_rate = rate(singles, single(&sync_store, sync_id, singles));
        ours.push(Duration::from_secs_f64(1.0 / ours_rate));
        base.push(Duration::from_secs_f64(1.0 / base_rate));
        ratios.push(Duration::from_secs_f64(ours_rate / base_rate));
    }
    let (low, high) = (
        ratios.iter().min().copied().unwrap_or_default(),
        ratios.iter().max().copied().unwrap_or_default(),
    );
    let (ours, base, ratio) = (median(ours), median(base), median(ratios));
    let (ours_rate, base_rate) = (1.0 / ours.as_secs_f64(), 1.0 / base.as_secs_f64());
    println!(
        "group_commit: per durable event: 16 threads with group commit {ours:.2?}, \
         1 thread synced {base:.2?}; per-round ratios from {:.1} to {:.1}",
        low.as_secs_f64(),
        high.as_secs_f64()
    );
    // Ceilings, to tell the device from the coordination: the same 16 threads appending
    // without waiting for any sync (`Unsynced`, on disk), and with group commit on an
    // in-memory store (every wait and wake-up, no device).
    let unsynced_dir = tempfile::tempdir().expect("temp dir");
    let (unsynced, unsynced_id) = open(unsynced_dir.path(), Durability::Unsynced);
    let memory = Kimberlite::in_memory_with(Config::default().durability(Durability::GroupCommit));
    let memory_id = memory.create_stream("bench").expect("create the stream");
    let (mut no_wait, mut no_device) = (Vec::new(), Vec::new());
    for _ in 0..scaled(5, 1) {
        let events = per_thread * THREADS;
        no_wait.push(Duration::from_secs_f64(
            1.0 / rate(events, concurrent(&unsynced, unsynced_id, per_thread)),
        ));
        no_device.push(Duration::from_secs_f64(
            1.0 / rate(events, concurrent(&memory, memory_id, per_thread)),
        ));
    }
    println!(
        "group_commit: ceilings, 16 threads: unsynced on disk {} events/s; group commit in \
         memory (no device) {} events/s",
        thousands(1.0 / median(no_wait).as_secs_f64()),
        thousands(1.0 / median(no_device).as_secs_f64())
    );
    // The machine's own limit for any design (kimberlite_bench::ceiling); the targets table
    // quotes the best-wait bound.
    let parts_dir = tempfile::tempdir().expect("temp dir");
    let bounds = Parts::measure(parts_dir.path(), THREADS as usize).bounds();
    println!(
        "group_commit: this machine's bounds for 16 threads with one synced event each, as \
         ratios to one thread: device {:.2} (nothing but syncs costs), pipelined {:.2}, best \
         wait {:.2} (examples/group_commit_ceiling.rs)",
        bounds.device, bounds.pipelined, bounds.best_wait
    );
    report(
        "group_commit",
        &format!("16 threads {} events/s", thousands(ours_rate)),
        &format!("1 thread synced singles {} events/s", thousands(base_rate)),
        ratio.as_secs_f64(),
        Target::AtLeast(10.0),
    );
}

fn main() {
    kimberlite_bench::run(bench, print_ratio);
}
