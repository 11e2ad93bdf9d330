//! `server_batch`: batches of 1,000 x 256 B appended over HTTP, synced, against the embedded
//! store on the same workload, in the same process.
//!
//! - **Kimberlite over HTTP**: `kimberlite serve`'s `Server` on 127.0.0.1 in this process
//!   (`kimberlite_bench::server`), one client on one keep-alive HTTP/1.1 connection
//!   (`kimberlite_bench::http_client`) posting each batch as a length-prefixed body
//!   (`application/octet-stream`, encoded once before the timing) to
//!   `POST /v1/streams/bench/events`; a batch counts once the server answered 200, which it
//!   does once the batch is durable (group commit).
//! - **Baseline**: the same batch given to `Kimberlite::append` of a store opened as the
//!   server opens its own (`Durability::GroupCommit`), from one thread.
//!
//! **Bound**: the same client posts the same body to a bare hyper HTTP/1.1 server that reads
//! it whole and answers a fixed 200 of the append answer's size, with no store
//! (`kimberlite_bench::http_floor`), alternately with the embedded store; the bound printed is
//! embedded / (embedded + transport): the best ratio of a design that appends a batch once
//! its body is received, with its access record free. A second bound, "transport + store":
//! the same client and body against that server appending the batch and one fixed access
//! record to a store opened as the embedded side's, answering once both are durable
//! (`kimberlite_bench::store_floor`), timed alternately with the embedded store.
//!
//! Target: HTTP >= 0.7x the embedded store. Run: `cargo bench -p kimberlite-bench --bench
//! server_batch`.

use std::path::Path;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use kimberlite::{ExpectedOffset, Kimberlite, StreamId};
use kimberlite_bench::http_client::{length_prefixed, Poster};
use kimberlite_bench::http_floor::FloorServer;
use kimberlite_bench::server::{open_store, BenchServer};
use kimberlite_bench::store_floor::StoreFloorServer;
use kimberlite_bench::{
    events, interleaved, rate, report, scaled, thousands, Batches, Target, BATCH_EVENTS,
};

const STREAM: &str = "bench";

/// Kimberlite over HTTP: a server over a fresh store, one client posting the batch's body.
fn http(dir: &Path, batch: &[Bytes]) -> Poster<BenchServer> {
    let server = BenchServer::start(open_store(dir, &[STREAM.to_string()]));
    Poster::new(server, STREAM, length_prefixed(batch))
}

/// The embedded store, opened as the server opens its own.
struct Embedded {
    store: Kimberlite,
    id: StreamId,
}

impl Embedded {
    fn new(dir: &Path) -> Self {
        let store = open_store(dir, &[STREAM.to_string()]);
        let id = store.stream(STREAM).expect("the bench stream");
        Self { store, id }
    }

    fn append(&self, batch: Vec<Bytes>) {
        self.store
            .append(self.id, batch, ExpectedOffset::Any)
            .expect("append");
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut http = http(&dir.path().join("server"), &batch);
    let embedded = Embedded::new(&dir.path().join("embedded"));
    let mut group = c.benchmark_group("server_batch");
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    group.bench_function("http_synced_1000x256B", |b| b.iter(|| http.post()));
    group.bench_function("embedded_group_commit_1000x256B", |b| {
        b.iter_batched(
            || batch.clone(),
            |events| embedded.append(events),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn print_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut http = http(&dir.path().join("server"), &batch);
    let embedded = Embedded::new(&dir.path().join("embedded"));
    let rounds = scaled(100, 5) as usize;
    // The embedded side takes batches copied before the timing, as the HTTP side's body is
    // encoded before it.
    let mut batches = Batches::new(&batch, rounds + 1);
    let (over_http, base) = interleaved(rounds, || http.post(), || embedded.append(batches.take()));
    let n = BATCH_EVENTS as u64;
    println!(
        "server_batch: per synced batch of 1,000 x 256 B: HTTP {over_http:.2?}, embedded \
         {base:.2?}"
    );
    let answer_bytes = http.answer_body_len();
    // The bound's transport: the same client and body against a bare hyper server.
    let mut floor = Poster::new(
        FloorServer::start(answer_bytes),
        STREAM,
        http.body().clone(),
    );
    let mut batches = Batches::new(&batch, rounds + 1);
    let (transport, base_again) =
        interleaved(rounds, || floor.post(), || embedded.append(batches.take()));
    println!(
        "server_batch: BOUND (a design that appends a batch once its body is received, its \
         access record free): embedded {base_again:.2?} + HTTP/1.1 transport of the body \
         alone (a bare hyper server answering a fixed {answer_bytes} B body, no store) \
         {transport:.2?}; against the embedded store {:.2}",
        base_again.as_secs_f64() / (base_again + transport).as_secs_f64()
    );
    // The second bound: the transport plus the store's necessary work (the batch and one
    // access record appended, answered once durable).
    let store_floor_server =
        StoreFloorServer::start(&dir.path().join("store_floor"), STREAM, answer_bytes);
    let mut store_floor = Poster::new(store_floor_server, STREAM, http.body().clone());
    let mut batches = Batches::new(&batch, rounds + 1);
    let (stored, base_stored) = interleaved(
        rounds,
        || store_floor.post(),
        || embedded.append(batches.take()),
    );
    println!(
        "server_batch: BOUND (transport + store: the bare hyper server appending the batch \
         and a fixed 150 B access record, answering once both are durable): {stored:.2?} \
         per batch against embedded {base_stored:.2?}; against the embedded store {:.2}",
        rate(n, stored) / rate(n, base_stored)
    );
    report(
        "server_batch",
        &format!("HTTP {} events/s", thousands(rate(n, over_http))),
        &format!("embedded {} events/s", thousands(rate(n, base))),
        rate(n, over_http) / rate(n, base),
        Target::AtLeast(0.7),
    );
}

fn main() {
    kimberlite_bench::run(bench, print_ratio);
}
