//! `append_fsync`: 256-byte events in batches of 1,000 into an on-disk `Storage`, with
//! `fsync = true` per batch, against the device: a plain loop of `write` + `fdatasync` of the
//! same payload bytes (256,000 per batch) appended to one file in the same directory.
//! Target: Kimberlite >= 0.8x the baseline's events/s.
//!
//! Run: `cargo bench -p kimberlite-bench --bench append_fsync`.

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use kimberlite_bench::hash_then_sync::{HashThenSync, HelperWait, ProbeWork};
use kimberlite_bench::work_bound::{self, ChainWork};
use kimberlite_bench::{
    events, hashing_on_two_cores, interleaved, rate, report, scaled, thousands, Appender, Batches,
    SyncedFile, Target, BATCH_EVENTS,
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
    print_floor(&dir.path().join("floor.bin"), &batch, &mut raw);
    print_probe(dir.path(), &batch, &mut raw);
    print_work_bound(dir.path(), &batch, &mut raw);
    report(
        "append_fsync",
        &format!("{} events/s", thousands(rate(n, ours))),
        &format!("write+fdatasync {} events/s", thousands(rate(n, base))),
        rate(n, ours) / rate(n, base),
        Target::AtLeast(0.8),
    );
}

/// The least a synced append can cost here, from parts measured now: it must write and sync
/// its frames (more bytes than the payloads), and hash every event before it writes the
/// frame that holds the hash, which two cores can at best halve. Everything else (encoding,
/// CRC, copies, hand-offs) is taken as free, so the ratio printed is an upper bound.
fn print_floor(path: &std::path::Path, batch: &[Bytes], raw: &mut SyncedFile) {
    let mut frames = SyncedFile::frame_sized(path, batch);
    let rounds = scaled(200, 20) as usize;
    let (payload_sync, frame_sync) = interleaved(rounds, || raw.append(), || frames.append());
    let hashing = hashing_on_two_cores(batch, rounds);
    let floor = frame_sync + hashing;
    println!(
        "append_fsync: floor: write+fdatasync of the {} frame bytes {frame_sync:.2?} (of the \
         payloads {payload_sync:.2?}) + SHA-256 of the batch on two cores {:.2?} = \
         {floor:.2?}: best possible ratio {:.3}",
        thousands(frames.len() as f64),
        hashing,
        payload_sync.as_secs_f64() / floor.as_secs_f64()
    );
}

/// The floor measured as one sequence of real steps (`kimberlite_bench::hash_then_sync`): a
/// helper thread hashes half the batch while the caller hashes the other half, then one
/// `write` and one `fdatasync` of the frame bytes; interleaved with the baseline like the
/// bench itself, once with a helper that sleeps between batches, once with one that spins,
/// and computing our chain hashes and linking them in order (what a hash chain adds to
/// hashing: `ProbeWork::HashAndLink`), the helper sleeping, then spinning.
fn print_probe(dir: &std::path::Path, batch: &[Bytes], raw: &mut SyncedFile) {
    let rounds = scaled(200, 20) as usize;
    let mut ratios = Vec::new();
    let variants = [
        (
            HelperWait::Sleeps,
            ProbeWork::HashOnly,
            "helper sleeps between batches",
        ),
        (
            HelperWait::Spins,
            ProbeWork::HashOnly,
            "helper spins between batches",
        ),
        (
            HelperWait::Sleeps,
            ProbeWork::HashAndLink,
            "chain hashes linked in order, helper sleeping",
        ),
        (
            HelperWait::Spins,
            ProbeWork::HashAndLink,
            "chain hashes linked in order, helper spinning",
        ),
    ];
    for (index, (wait, work, name)) in variants.into_iter().enumerate() {
        let path = dir.join(format!("probe-{index}.bin"));
        let mut probe = HashThenSync::new(&path, batch, wait, work);
        let (probed, base) = interleaved(rounds, || probe.append(), || raw.append());
        ratios.push(format!(
            "{name} {probed:.2?} against {base:.2?}: ratio {:.3}",
            base.as_secs_f64() / probed.as_secs_f64()
        ));
    }
    println!(
        "append_fsync: probe (hash on two threads, then write+fdatasync of the frame bytes, \
         nothing else): {}",
        ratios.join("; ")
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
