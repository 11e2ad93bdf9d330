//! How a `MemoryStorage` read's cost depends on where in the stream it starts.
//!
//! Builds one stream of 100,000 events of 100 bytes and reads a 100-event page at its start
//! and at its end. A design that re-walks the stream from the first record on every read makes
//! the last page cost about 1,000x the first; this one must cost the same (ratio <= 2).
//!
//! Besides criterion's own report, the bench prints `ratio last/first`, measured in the same
//! process with interleaved samples so that machine noise hits both sides alike.
//!
//! Run: `cargo bench -p kimberlite-storage --bench memory_read`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use kimberlite_storage::{MemoryStorage, StorageBackend};
use kimberlite_types::{Offset, StreamId};

const EVENT_COUNT: u64 = 100_000;
const EVENT_BYTES: usize = 100;
const PAGE_EVENTS: u64 = 100;
const PAGE_BYTES: u64 = PAGE_EVENTS * EVENT_BYTES as u64;
const STREAM: StreamId = StreamId::new(1);

fn filled_storage() -> MemoryStorage {
    let mut storage = MemoryStorage::new();
    let mut head = None;
    let mut next = Offset::ZERO;
    for batch in 0..EVENT_COUNT / 1_000 {
        let events = (0..1_000u64)
            .map(|i| {
                let mut event = format!("{{\"seq\":{},\"event\":\"viewed\"}}", batch * 1_000 + i);
                event.extend(std::iter::repeat_n(' ', EVENT_BYTES - event.len()));
                Bytes::from(event)
            })
            .collect();
        let (new_next, new_head) = storage
            .append_batch(STREAM, events, next, head, false)
            .expect("append to a fresh in-memory stream");
        next = new_next;
        head = Some(new_head);
    }
    storage
}

fn read_page(storage: &mut MemoryStorage, from: u64) -> usize {
    let page = storage
        .read_from(STREAM, Offset::new(from), PAGE_BYTES)
        .expect("read an intact stream");
    assert_eq!(page.len() as u64, PAGE_EVENTS);
    black_box(page).len()
}

fn bench_pages(c: &mut Criterion) {
    let mut storage = filled_storage();
    let mut group = c.benchmark_group("memory_read");
    group.bench_function("first_page", |b| b.iter(|| read_page(&mut storage, 0)));
    group.bench_function("last_page", |b| {
        b.iter(|| read_page(&mut storage, EVENT_COUNT - PAGE_EVENTS))
    });
    group.finish();
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Interleaved samples of both reads; prints the ratio of their medians.
fn print_ratio() {
    let mut storage = filled_storage();
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for _ in 0..2_000 {
        let start = Instant::now();
        read_page(&mut storage, 0);
        first.push(start.elapsed());
        let start = Instant::now();
        read_page(&mut storage, EVENT_COUNT - PAGE_EVENTS);
        last.push(start.elapsed());
    }
    let (first, last) = (median(first), median(last));
    println!(
        "memory_read: first page {first:?}, last page {last:?}, \
         ratio last/first = {:.3} (target <= 2; a re-walk from the first record gives about 1,000)",
        last.as_secs_f64() / first.as_secs_f64()
    );
}

criterion_group!(benches, bench_pages);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratio();
}
