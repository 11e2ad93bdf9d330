//! `server_concurrent`: single-event synced appends from 64 concurrent HTTP clients against
//! the embedded store's group commit with 64 threads, in the same process.
//!
//! - **Kimberlite over HTTP**: `kimberlite serve`'s `Server` on 127.0.0.1 in this process; 64
//!   clients, each a task with its own keep-alive HTTP/1.1 connection and one request in
//!   flight, each posting single events (length-prefixed bodies) to one stream
//!   (`POST /v1/streams/bench/events`, no expected offset). An event counts once the server
//!   answered 200, which it does once the event is durable (group commit).
//! - **Baseline**: 64 threads each calling `Kimberlite::append` with single events on one
//!   stream of a store opened as the server opens its own (`Durability::GroupCommit`).
//!
//! Criterion measures throughput (one iteration = one event per client or thread). The
//! `RESULT` line is the median per-round ratio of 15 short alternating rounds; the latency
//! of each append (p50, p99, slowest) over every round is printed for both sides.
//!
//! **Bound**: in each round the same 64 clients also time a bare hyper HTTP/1.1 server that
//! answers each request with a fixed 200 of the append answer's size, with no store at all
//! (`kimberlite_bench::http_floor`); its events/s against the embedded store's is printed as
//! the bound no design serving these clients over hyper's HTTP/1.1 can pass on this machine.
//! A second bound, "transport + store": the same clients against that server appending each
//! request's event and one fixed access record to a store opened as the embedded side's,
//! answering once both are durable (`kimberlite_bench::store_floor`): what a server that
//! records every request must do, and nothing it may skip.
//!
//! Target: HTTP >= 0.7x the embedded store. Run: `cargo bench -p kimberlite-bench --bench
//! server_concurrent`.

use std::path::Path;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use kimberlite::{ExpectedOffset, Kimberlite, StreamId};
use kimberlite_bench::concurrent::Round;
use kimberlite_bench::http_client::Connected;
use kimberlite_bench::http_floor::FloorServer;
use kimberlite_bench::latency::Percentiles;
use kimberlite_bench::server::{open_store, BenchServer};
use kimberlite_bench::store_floor::StoreFloorServer;
use kimberlite_bench::{event, median_f64, report, scaled, thousands, Target};

const CLIENTS: u64 = 64;
const STREAM: &str = "bench";

/// Kimberlite over HTTP: a server over a fresh store and its 64 connected clients.
fn http(dir: &Path) -> Connected<BenchServer> {
    let server = BenchServer::start(open_store(dir, &[STREAM.to_string()]));
    let addr = server.addr();
    Connected::new(server, BenchServer::runtime, addr, STREAM, CLIENTS as usize)
}

/// The bound: the same 64 clients against the HTTP/1.1 transport alone.
fn floor(answer_bytes: usize) -> Connected<FloorServer> {
    let server = FloorServer::start(answer_bytes);
    let addr = server.addr();
    Connected::new(server, FloorServer::runtime, addr, STREAM, CLIENTS as usize)
}

/// The second bound: the same 64 clients against the transport plus the store's necessary
/// work (each event and one access record appended, answered once durable).
fn store_floor(dir: &Path, answer_bytes: usize) -> Connected<StoreFloorServer> {
    let server = StoreFloorServer::start(dir, STREAM, answer_bytes);
    let addr = server.addr();
    Connected::new(
        server,
        StoreFloorServer::runtime,
        addr,
        STREAM,
        CLIENTS as usize,
    )
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

    /// 64 threads each append `per_thread` single events, the same events the HTTP clients
    /// send (`kimberlite_bench::concurrent`).
    fn round(&self, per_thread: u64) -> Round {
        let started = Instant::now();
        let latencies = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..CLIENTS)
                .map(|thread| {
                    scope.spawn(move || {
                        let mut latencies = Vec::with_capacity(per_thread as usize);
                        for i in 0..per_thread {
                            let payload = event(thread * 1_000_000 + i);
                            let sent = Instant::now();
                            self.store
                                .append(self.id, [payload], ExpectedOffset::Any)
                                .expect("append");
                            latencies.push(sent.elapsed());
                        }
                        latencies
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|thread| thread.join().expect("an appending thread"))
                .collect()
        });
        Round {
            elapsed: started.elapsed(),
            latencies,
        }
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut http = http(&dir.path().join("server"));
    let embedded = Embedded::new(&dir.path().join("embedded"));
    let mut group = c.benchmark_group("server_concurrent");
    group.throughput(Throughput::Elements(CLIENTS));
    group.bench_function("http_64_clients_x1_event", |b| {
        b.iter_custom(|iters| http.round(iters).elapsed)
    });
    group.bench_function("embedded_64_threads_x1_event", |b| {
        b.iter_custom(|iters| embedded.round(iters).elapsed)
    });
    group.finish();
}

fn print_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut http = http(&dir.path().join("server"));
    let embedded = Embedded::new(&dir.path().join("embedded"));
    let per_client = scaled(40, 3);
    // Short alternating rounds: a virtual disk's flush latency can change several-fold within
    // seconds, so each round's ratio compares the two sides in the same period.
    http.round(per_client);
    embedded.round(per_client);
    // The transport alone answers as many bytes as the server's append answer has.
    let mut floor = floor(http.clients[0].answer_body_len());
    floor.round(per_client);
    let mut store_floor = store_floor(
        &dir.path().join("store_floor"),
        http.clients[0].answer_body_len(),
    );
    store_floor.round(per_client);
    let (mut stored_rates, mut stored_ratios, mut stored_latencies) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut http_latencies, mut embedded_latencies) = (Vec::new(), Vec::new());
    let (mut http_rates, mut embedded_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floor_rates, mut floor_ratios, mut floor_latencies) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..scaled(15, 2) {
        let over_http = http.round(per_client);
        let base = embedded.round(per_client);
        let transport = floor.round(per_client);
        let stored = store_floor.round(per_client);
        stored_rates.push(stored.rate());
        stored_ratios.push(stored.rate() / base.rate());
        stored_latencies.extend(stored.latencies);
        http_rates.push(over_http.rate());
        embedded_rates.push(base.rate());
        ratios.push(over_http.rate() / base.rate());
        floor_rates.push(transport.rate());
        floor_ratios.push(transport.rate() / base.rate());
        http_latencies.extend(over_http.latencies);
        embedded_latencies.extend(base.latencies);
        floor_latencies.extend(transport.latencies);
    }
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "server_concurrent: latency per synced single-event append: HTTP, 64 clients: {}; \
         embedded, 64 threads: {}",
        Percentiles::of(http_latencies),
        Percentiles::of(embedded_latencies)
    );
    println!(
        "server_concurrent: per-round ratios from {:.2} to {:.2}",
        low, high
    );
    println!(
        "server_concurrent: BOUND (HTTP/1.1 transport alone: the same 64 clients, a bare \
         hyper server answering a fixed {} B body, no store): {} events/s, latency {}; \
         against the embedded store {:.2}",
        http.clients[0].answer_body_len(),
        thousands(median_f64(floor_rates)),
        Percentiles::of(floor_latencies),
        median_f64(floor_ratios)
    );
    println!(
        "server_concurrent: BOUND (transport + store: the same 64 clients, the bare hyper \
         server appending each event and a fixed 150 B access record to a second stream, \
         answering once both are durable): {} events/s, latency {}; against the embedded \
         store {:.2}",
        thousands(median_f64(stored_rates)),
        Percentiles::of(stored_latencies),
        median_f64(stored_ratios)
    );
    report(
        "server_concurrent",
        &format!(
            "HTTP 64 clients {} events/s",
            thousands(median_f64(http_rates))
        ),
        &format!(
            "embedded 64 threads {} events/s",
            thousands(median_f64(embedded_rates))
        ),
        median_f64(ratios),
        Target::AtLeast(0.7),
    );
}

fn main() {
    kimberlite_bench::run(bench, print_ratio);
}
