//! The store side of `server_batch` without HTTP: what the server's access-log writer does
//! per batch against what the embedded baseline does, in one process, alternately, so a
//! difference is the store's and not the transport's.
//!
//! - `append`: `Kimberlite::append` of the batch (the embedded baseline).
//! - `write_all`: the writer's two steps for the batch alone (`write_all`, `make_durable`),
//!   from one thread.
//! - `write_all + record`: as the writer does it for an append: the batch, then an access
//!   record of the size the server writes in the `_access` stream, then one `make_durable`
//!   (two files synced: the batch's segment and the access log's).
//!
//! Each side has a store of its own. Run:
//!
//! ```sh
//! cargo build --profile bench -p kimberlite-bench --example writer_vs_append
//! target/release/examples/writer_vs_append [rounds] [only]
//! ```
//!
//! `only` (0, 1 or 2) runs that side alone, for `perf stat` to count its CPU per batch (the
//! store's helper threads included).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite::{ExpectedOffset, Kimberlite, StreamId};
use kimberlite_bench::server::open_store;
use kimberlite_bench::{events, Batches, BATCH_EVENTS};

/// An access record as long as the server's for an append (`access_log.rs`).
const RECORD: &[u8] = br#"{"time":"2026-01-01T00:00:00.000Z","key":"bench","op":"POST /v1/streams/{stream}/events","stream":"bench","from":0,"to":1000,"status":200}"#;

struct Side {
    store: Kimberlite,
    stream: StreamId,
    access: StreamId,
}

impl Side {
    fn new(dir: &std::path::Path) -> Self {
        let store = open_store(dir, &["bench".into(), "_access".into()]);
        let stream = store.stream("bench").expect("bench");
        let access = store.stream("_access").expect("_access");
        Self {
            store,
            stream,
            access,
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(200, |text| text.parse().expect("a number"));
    let only: Option<usize> = std::env::args()
        .nth(2)
        .map(|text| text.parse().expect("0, 1 or 2"));
    let dir = tempfile::tempdir().expect("temp dir");
    let sides: Vec<Side> = (0..3)
        .map(|i| Side::new(&dir.path().join(i.to_string())))
        .collect();
    let batch = events(0, BATCH_EVENTS);
    let mut batches = Batches::new(&batch, 3 * (rounds + 10));
    let run = |side: usize, events: Vec<Bytes>| {
        let Side {
            store,
            stream,
            access,
        } = &sides[side];
        match side {
            0 => {
                store
                    .append(*stream, events, ExpectedOffset::Any)
                    .expect("append");
            }
            _ => {
                let (results, mut written) =
                    store.write_all(vec![(*stream, events, ExpectedOffset::Any)]);
                assert!(results[0].is_ok());
                if side == 2 {
                    let record = vec![Bytes::from_static(RECORD)];
                    let (results, more) =
                        store.write_all(vec![(*access, record, ExpectedOffset::Any)]);
                    assert!(results[0].is_ok());
                    written = written.max(more);
                }
                store.make_durable(written).expect("durable");
            }
        }
    };
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds + 10 {
        for (side, times) in times.iter_mut().enumerate() {
            if only.is_some_and(|only| only != side) {
                continue;
            }
            let events = batches.take();
            let started = Instant::now();
            run(side, events);
            if round >= 10 {
                times.push(started.elapsed());
            }
        }
    }
    let [append, write_all, with_record] = times.map(|times| {
        if times.is_empty() {
            Duration::ZERO
        } else {
            median(times)
        }
    });
    println!(
        "per synced batch of 1,000 x 256 B, medians of {rounds} alternating rounds: append \
         {append:.2?}, write_all {write_all:.2?}, write_all + record {with_record:.2?}"
    );
}
