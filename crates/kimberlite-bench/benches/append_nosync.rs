//! `append_nosync`: 256-byte events in batches of 1,000 into an on-disk `Storage`, with
//! `fsync = false`, against the physical limit of a hash chain on one core: plain SHA-256 of
//! the same payloads, one thread. Target: Kimberlite >= 0.7x the baseline's events/s.
//!
//! Besides criterion's report (one iteration = one batch of 1,000), prints a `RESULT` line
//! from interleaved samples of both sides, and the chain hash alone for reference (what an
//! append must hash: the payload plus a 50-byte header after the precomputed domain block,
//! 5 SHA-256 blocks, like the baseline).
//!
//! The batch handed to each append is copied before the timing starts (`Batches`,
//! criterion's `iter_batched`): the baseline hashes bytes already in memory, and the append
//! is timed from the call that takes the batch to its return, dropping the events included.
//!
//! Run: `cargo bench -p kimberlite-bench --bench append_nosync`.

use criterion::{BatchSize, Criterion, Throughput};
use kimberlite_bench::{
    chain_hash_each, events, interleaved, rate, report, scaled, sha256_each, thousands, Appender,
    Batches, Target, BATCH_EVENTS,
};
use kimberlite_storage::StorageConfig;
use kimberlite_types::CompressionKind;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut appender = Appender::open(dir.path(), StorageConfig::default());
    let mut group = c.benchmark_group("append_nosync");
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    group.bench_function("kimberlite_batch_1000x256B", |b| {
        b.iter_batched(
            || batch.clone(),
            |events| appender.append(events, false),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("baseline_sha256_1000x256B", |b| {
        b.iter(|| sha256_each(&batch))
    });
    group.finish();
}

fn print_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut appender = Appender::open(dir.path(), StorageConfig::default());
    let rounds = scaled(300, 30) as usize;
    // Each interleaved call below takes a batch copied beforehand (`Batches`).
    let mut ready = Batches::new(&batch, 2 * rounds + 2);
    let (ours, sha) = interleaved(
        rounds,
        || appender.append(ready.take(), false),
        || sha256_each(&batch),
    );
    let (chain, _) = interleaved(
        rounds,
        || {
            chain_hash_each(&batch, 0);
        },
        || {},
    );
    // What the `kimberlite` store's default config adds: an LZ4 attempt per record (these
    // events do not shrink, so every attempt is wasted and the record is stored as is).
    let lz4_dir = tempfile::tempdir().expect("temp dir");
    let lz4_config = StorageConfig {
        compression: CompressionKind::Lz4,
        ..StorageConfig::default()
    };
    let mut lz4 = Appender::open(lz4_dir.path(), lz4_config);
    let mut ready = Batches::new(&batch, 2 * rounds + 2);
    let mut ready_too = Batches::new(&batch, rounds + 1);
    let (ours_again, lz4_time) = interleaved(
        rounds,
        || appender.append(ready.take(), false),
        || lz4.append(ready_too.take(), false),
    );
    println!(
        "append_nosync: per batch of 1,000: compression None {ours_again:.2?}, \
         Lz4 (the kimberlite store's default) {lz4_time:.2?}"
    );
    // The same appends with every hash on the appending thread (`hash_ahead = false`).
    let inline_dir = tempfile::tempdir().expect("temp dir");
    let inline_config = StorageConfig {
        hash_ahead: false,
        ..StorageConfig::default()
    };
    let mut inline = Appender::open(inline_dir.path(), inline_config);
    let mut ready_too = Batches::new(&batch, rounds + 1);
    let (ahead_time, inline_time) = interleaved(
        rounds,
        || appender.append(ready.take(), false),
        || inline.append(ready_too.take(), false),
    );
    let lz4_inline_dir = tempfile::tempdir().expect("temp dir");
    let mut lz4_inline = Appender::open(
        lz4_inline_dir.path(),
        StorageConfig {
            hash_ahead: false,
            ..lz4_config
        },
    );
    let mut ready = Batches::new(&batch, rounds + 1);
    let mut ready_too = Batches::new(&batch, rounds + 1);
    let (lz4_ahead, lz4_inline_time) = interleaved(
        rounds,
        || lz4.append(ready.take(), false),
        || lz4_inline.append(ready_too.take(), false),
    );
    println!(
        "append_nosync: per batch of 1,000: hash_ahead (default here: {}) {ahead_time:.2?}, \
         hashed inline {inline_time:.2?}; with Lz4: {lz4_ahead:.2?} against {lz4_inline_time:.2?}",
        StorageConfig::default().hash_ahead
    );
    let n = BATCH_EVENTS as u64;
    println!(
        "append_nosync: per batch of 1,000: kimberlite {ours:.2?}, SHA-256 {sha:.2?}, \
         chain hash alone {chain:.2?}"
    );
    report(
        "append_nosync",
        &format!("{} events/s", thousands(rate(n, ours))),
        &format!(
            "SHA-256 of the payloads {} events/s",
            thousands(rate(n, sha))
        ),
        rate(n, ours) / rate(n, sha),
        Target::AtLeast(0.7),
    );
}

fn main() {
    kimberlite_bench::run(bench, print_ratio);
}
