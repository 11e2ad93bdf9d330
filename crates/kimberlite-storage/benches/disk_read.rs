//! How an on-disk `Storage` read's cost depends on where in the stream it starts.
//!
//! Builds one stream of 1,000,000 events of 256 bytes (about 312 MB of segment files, default
//! config: 256 MiB segments, a restart record every 64 records, an index entry every 64) in a
//! temp dir, reopens it, and reads 1,000 events at the start (offset 0, a completed, mapped
//! segment) and at the end (offset 999,000, the active segment, read with `pread`). A verified
//! read starts at the nearest restart record at or before its offset and checks every link from
//! there, so the end must cost about the same as the start: target ratio end/start <= 1.5.
//!
//! Besides criterion's report, prints `ratio end/start` from interleaved samples.
//!
//! Run: `cargo bench -p kimberlite-storage --bench disk_read`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use kimberlite_storage::{Storage, StorageBackend, StoreBackend};
use kimberlite_types::{Offset, StreamId};

const EVENT_COUNT: u64 = 1_000_000;
const EVENT_BYTES: usize = 256;
const READ_EVENTS: u64 = 1_000;
const READ_BYTES: u64 = READ_EVENTS * EVENT_BYTES as u64;
const BATCH: u64 = 1_000;
const STREAM: StreamId = StreamId::new(1);

fn event(seq: u64) -> Bytes {
    let mut event = format!(
        "{{\"seq\":{seq},\"patient\":{},\"action\":\"viewed\"}}",
        seq % 977
    );
    event.extend(std::iter::repeat_n(' ', EVENT_BYTES - event.len()));
    Bytes::from(event)
}

/// A store holding the stream, reopened (so reads use the files, not anything cached).
fn filled_storage(dir: &std::path::Path) -> Storage {
    let started = Instant::now();
    {
        let mut storage = Storage::open(dir).expect("open a fresh store");
        let mut head = None;
        let mut next = Offset::ZERO;
        for batch in 0..EVENT_COUNT / BATCH {
            let events = (0..BATCH).map(|i| event(batch * BATCH + i)).collect();
            let (new_next, new_head) = storage
                .append_batch(STREAM, events, next, head, false)
                .expect("append");
            next = new_next;
            head = Some(new_head);
        }
        storage.flush().expect("flush");
    }
    let storage = Storage::open(dir).expect("reopen");
    let stats = storage.stream_stats(STREAM).expect("the stream exists");
    println!(
        "disk_read: wrote and reopened {EVENT_COUNT} events in {:.1?}: {} segments, {} MB stored, \
         {} restart records",
        started.elapsed(),
        stats.segment_count,
        stats.stored_bytes / 1_000_000,
        stats.restart_record_count
    );
    storage
}

fn read(storage: &mut Storage, from: u64) -> usize {
    let events = storage
        .read_from(STREAM, Offset::new(from), READ_BYTES)
        .expect("read an intact stream");
    assert_eq!(events.len() as u64, READ_EVENTS);
    black_box(events).len()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn bench_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut storage = filled_storage(dir.path());
    let mut group = c.benchmark_group("disk_read");
    group.bench_function("start_1000", |b| b.iter(|| read(&mut storage, 0)));
    group.bench_function("end_1000", |b| {
        b.iter(|| read(&mut storage, EVENT_COUNT - READ_EVENTS))
    });
    group.finish();

    let (mut start, mut end) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let t = Instant::now();
        read(&mut storage, 0);
        start.push(t.elapsed());
        let t = Instant::now();
        read(&mut storage, EVENT_COUNT - READ_EVENTS);
        end.push(t.elapsed());
    }
    let (start, end) = (median(start), median(end));
    println!(
        "disk_read: 1,000 events at the start {start:?}, at the end {end:?}, \
         ratio end/start = {:.3} (target <= 1.5)",
        end.as_secs_f64() / start.as_secs_f64()
    );
}

criterion_group!(benches, bench_reads);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
