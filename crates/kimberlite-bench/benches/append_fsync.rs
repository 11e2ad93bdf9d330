//! `append_fsync`: 256-byte events in batches of 1,000 into an on-disk `Storage`, with
//! `fsync = true` per batch, against the device: a plain loop of `write` + `fdatasync` of the
//! same payload bytes (256,000 per batch) appended to one file in the same directory.
//! Target: Kimberlite >= 0.8x the baseline's events/s.
//!
//! Besides criterion's report, prints a `RESULT` line from interleaved samples of both sides,
//! and the work bound of a synced batch (`kimberlite_bench::work_bound`): the best ratio any
//! implementation of the record format can reach here, and the same for any hash chain.
//!
//! Run: `cargo bench -p kimberlite-bench --bench append_fsync`.

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use kimberlite_bench::work_bound::{self, ChainWork};
use kimberlite_bench::{
    events, interleaved, rate, report, scaled, thousands, Appender, Batches, SyncedFile, Target,
    BATCH_EVENTS,
};
use kimberlite_storage::StorageConfig;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut appender = Appender::open(&dir.path().join("store"), StorageConfig::default());
    let mut raw = SyncedFile::payloads(&dir.path().join("raw.bin"), &batch);
    let mut group = c.benchmark_group("append_fsync");
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    group.bench_function("kimberlite_batch_1000x256B", |b| {
        b.iter_batched(
            || batch.clone(),
            |events| appender.append(events, true),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("baseline_write_fdatasync_256000B", |b| {
        b.iter(|| raw.append())
    });
    group.finish();
}

fn print_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut appender = Appender::open(&dir.path().join("store"), StorageConfig::default());
    let mut raw = SyncedFile::payloads(&dir.path().join("raw.bin"), &batch);
    let rounds = scaled(200, 20) as usize;
    let mut ready = Batches::new(&batch, rounds + 1);
    let (ours, base) = interleaved(
        rounds,
        || appender.append(ready.take(), true),
        || raw.append(),
    );
    let n = BATCH_EVENTS as u64;
    println!("append_fsync: per batch of 1,000: kimberlite {ours:.2?}, write+fdatasync {base:.2?}");
    print_work_bound(dir.path(), &batch, &mut raw);
    report(
        "append_fsync",
        &format!("{} events/s", thousands(rate(n, ours))),
        &format!("write+fdatasync {} events/s", thousands(rate(n, base))),
        rate(n, ours) / rate(n, base),
        Target::AtLeast(0.8),
    );
}

/// The work bound (`kimberlite_bench::work_bound`): every part of the CPU work a synced batch
/// of our format must finish before its flush, spread perfectly over two cores, then the
/// flush; and the same for the least any hash chain must do.
fn print_work_bound(dir: &std::path::Path, batch: &[Bytes], raw: &mut SyncedFile) {
    let rounds = scaled(200, 20) as usize;
    for (work, name) in [
        (ChainWork::OurFormat, "our format"),
        (ChainWork::AnyChain, "any hash chain"),
    ] {
        let parts = work_bound::measure(dir, batch, work, raw, rounds);
        println!(
            "append_fsync: work bound, {name}: hashing {:.2?} + link {:.2?} + crc {:.2?} + \
             write {:.2?} = {:.2?} of CPU, halved, + flush {:.2?} = {:.2?} against \
             write+fdatasync {:.2?}: best possible ratio {:.3}",
            parts.hashing,
            parts.link,
            parts.crc,
            parts.write,
            parts.cpu(),
            parts.flush,
            parts.bound(),
            parts.baseline,
            parts.best_ratio()
        );
    }
}

fn main() {
    kimberlite_bench::run(bench, print_ratio);
}
