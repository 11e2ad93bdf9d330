//! `server_postgres`: Kimberlite over HTTP against what users pick instead, PostgreSQL, on
//! the same clients and batches, in the same process.
//!
//! PostgreSQL runs on loopback, started by `crates/kimberlite-bench/scripts/postgres.sh`
//! (Debian's package, a temporary cluster), which sets `KIMBERLITE_BENCH_POSTGRES` to its
//! connection string for the command it runs; without that variable the bench says so and
//! measures nothing. Its table and clients are in `postgres.rs`.
//!
//! - **Batches**: one client appends batches of 1,000 x 256 B: Kimberlite's over one
//!   keep-alive HTTP connection (as `server_batch`), PostgreSQL's as one `INSERT` of the
//!   batch per transaction, the client the stream's only writer. Target: Kimberlite >= 2x.
//! - **64 clients, single events, one stream**: Kimberlite's as `server_concurrent`;
//!   PostgreSQL's each a transaction that locks the stream's head row, since a client must
//!   know the previous hash to hash its event. Target: Kimberlite >= 2x. Latency p50/p99 of
//!   both printed.
//! - Also printed, no target: PostgreSQL's 64 clients each writing a stream of its own (no
//!   shared head, so its commits group freely), against the same Kimberlite figure.
//!
//! Run: `crates/kimberlite-bench/scripts/postgres.sh cargo bench -p kimberlite-bench --bench
//! server_postgres`.

mod postgres;

use std::path::Path;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use kimberlite_bench::concurrent::{single_appends, Round, SingleAppender};
use kimberlite_bench::http_client::{connect_all, length_prefixed, HttpStream};
use kimberlite_bench::latency::Percentiles;
use kimberlite_bench::server::{open_store, BenchServer};
use kimberlite_bench::{
    events, interleaved, median_f64, rate, report, scaled, thousands, Target, BATCH_EVENTS,
};
use postgres::{OwnStream, SharedStream};

/// The environment variable holding PostgreSQL's connection string.
const CONNECTION_VAR: &str = "KIMBERLITE_BENCH_POSTGRES";
const CLIENTS: i64 = 64;
const BATCH_STREAM: &str = "batches";
const SHARED_STREAM: &str = "singles";
/// PostgreSQL's stream numbers: batches, the shared stream, then one per client.
const PG_BATCH_STREAM: i64 = 1;
const PG_SHARED_STREAM: i64 = 2;
const PG_OWN_STREAMS: i64 = 100;

/// Every client of both sides, over a fresh Kimberlite store and fresh PostgreSQL tables.
/// (Fields drop in order: the clients go before the server, whose runtime drives them.)
struct Sides {
    batch: Vec<Bytes>,
    batch_body: Bytes,
    http_batch: HttpStream,
    http_singles: Vec<HttpStream>,
    pg_batch: OwnStream,
    pg_shared: Vec<SharedStream>,
    pg_own: Vec<OwnStream>,
    server: BenchServer,
}

impl Sides {
    fn new(dir: &Path, connection: &str) -> Self {
        let names = [BATCH_STREAM.to_string(), SHARED_STREAM.to_string()];
        let server = BenchServer::start(open_store(dir, &names));
        let (addr, runtime) = (server.addr(), server.runtime());
        let http_batch = connect_all(runtime, addr, BATCH_STREAM, 1)
            .pop()
            .expect("one client");
        let http_singles = connect_all(runtime, addr, SHARED_STREAM, CLIENTS as usize);
        let (pg_batch, pg_shared, pg_own) = runtime.block_on(async {
            let settings = postgres::reset(connection).await;
            println!("server_postgres: PostgreSQL {settings}");
            SharedStream::create(connection, PG_SHARED_STREAM).await;
            let batch = OwnStream::connect(connection, PG_BATCH_STREAM).await;
            let (mut shared, mut own) = (Vec::new(), Vec::new());
            for client in 0..CLIENTS {
                shared.push(SharedStream::connect(connection, PG_SHARED_STREAM).await);
                own.push(OwnStream::connect(connection, PG_OWN_STREAMS + client).await);
            }
            (batch, shared, own)
        });
        let batch = events(0, BATCH_EVENTS);
        Self {
            batch_body: length_prefixed(&batch),
            batch,
            http_batch,
            http_singles,
            pg_batch,
            pg_shared,
            pg_own,
            server,
        }
    }
}

fn bench(c: &mut Criterion, connection: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sides = Sides::new(dir.path(), connection);
    let runtime = sides.server.runtime();
    let mut group = c.benchmark_group("server_postgres");
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    group.bench_function("kimberlite_http_batch_1000x256B", |b| {
        b.iter(|| runtime.block_on(sides.http_batch.append_batch(sides.batch_body.clone())))
    });
    group.bench_function("postgres_batch_1000x256B", |b| {
        b.iter(|| runtime.block_on(sides.pg_batch.append_batch(&sides.batch)))
    });
    group.throughput(Throughput::Elements(CLIENTS as u64));
    group.bench_function("kimberlite_http_64_clients_x1_event", |b| {
        b.iter_custom(|iters| single_appends(runtime, &mut sides.http_singles, iters).elapsed)
    });
    group.bench_function("postgres_64_clients_shared_stream_x1_event", |b| {
        b.iter_custom(|iters| single_appends(runtime, &mut sides.pg_shared, iters).elapsed)
    });
    group.bench_function("postgres_64_clients_own_streams_x1_event", |b| {
        b.iter_custom(|iters| single_appends(runtime, &mut sides.pg_own, iters).elapsed)
    });
    group.finish();
}

fn print_batch_ratio(sides: &mut Sides) {
    let runtime = sides.server.runtime();
    let (ours, theirs) = interleaved(
        scaled(100, 5) as usize,
        || runtime.block_on(sides.http_batch.append_batch(sides.batch_body.clone())),
        || runtime.block_on(sides.pg_batch.append_batch(&sides.batch)),
    );
    let n = BATCH_EVENTS as u64;
    println!(
        "server_postgres batches: per synced batch of 1,000 x 256 B: Kimberlite over HTTP \
         {ours:.2?}, PostgreSQL {theirs:.2?}"
    );
    report(
        "server_postgres batches",
        &format!("HTTP {} events/s", thousands(rate(n, ours))),
        &format!("PostgreSQL {} events/s", thousands(rate(n, theirs))),
        rate(n, ours) / rate(n, theirs),
        Target::AtLeast(2.0),
    );
}

/// Rates and latencies of one side over the alternating rounds.
#[derive(Default)]
struct Side {
    rates: Vec<f64>,
    latencies: Vec<std::time::Duration>,
}

impl Side {
    fn add(&mut self, round: Round) -> f64 {
        let rate = round.rate();
        self.rates.push(rate);
        self.latencies.extend(round.latencies);
        rate
    }
}

fn round<C: SingleAppender>(server: &BenchServer, clients: &mut Vec<C>, per_client: u64) -> Round {
    single_appends(server.runtime(), clients, per_client)
}

fn print_singles_ratio(sides: &mut Sides) {
    let per_client = scaled(40, 3);
    let (mut ours, mut shared, mut own) = (Side::default(), Side::default(), Side::default());
    let (mut shared_ratios, mut own_ratios) = (Vec::new(), Vec::new());
    // Short alternating rounds, each side's rate compared within its round (`group_commit`).
    for _ in 0..scaled(15, 2) {
        let rate = ours.add(round(&sides.server, &mut sides.http_singles, per_client));
        shared_ratios
            .push(rate / shared.add(round(&sides.server, &mut sides.pg_shared, per_client)));
        own_ratios.push(rate / own.add(round(&sides.server, &mut sides.pg_own, per_client)));
    }
    println!(
        "server_postgres 64 clients: latency per synced single-event append: Kimberlite over \
         HTTP: {}; PostgreSQL, one stream: {}; PostgreSQL, a stream per client: {}",
        Percentiles::of(std::mem::take(&mut ours.latencies)),
        Percentiles::of(std::mem::take(&mut shared.latencies)),
        Percentiles::of(std::mem::take(&mut own.latencies)),
    );
    println!(
        "server_postgres 64 clients: PostgreSQL with a stream per client (no shared head, no \
         target): {} events/s; Kimberlite (one stream) / that: {:.3}",
        thousands(median_f64(own.rates)),
        median_f64(own_ratios)
    );
    report(
        "server_postgres 64 clients",
        &format!(
            "HTTP 64 clients {} events/s",
            thousands(median_f64(ours.rates))
        ),
        &format!(
            "PostgreSQL 64 clients, one stream {} events/s",
            thousands(median_f64(shared.rates))
        ),
        median_f64(shared_ratios),
        Target::AtLeast(2.0),
    );
}

fn print_ratios(connection: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut sides = Sides::new(dir.path(), connection);
    print_batch_ratio(&mut sides);
    print_singles_ratio(&mut sides);
}

fn main() {
    let Ok(connection) = std::env::var(CONNECTION_VAR) else {
        println!(
            "server_postgres: skipped: {CONNECTION_VAR} is not set; \
             crates/kimberlite-bench/scripts/postgres.sh starts PostgreSQL on loopback and \
             runs a command with it set, e.g. `crates/kimberlite-bench/scripts/postgres.sh \
             cargo bench -p kimberlite-bench --bench server_postgres`"
        );
        return;
    };
    kimberlite_bench::run(|c| bench(c, &connection), || print_ratios(&connection));
}
