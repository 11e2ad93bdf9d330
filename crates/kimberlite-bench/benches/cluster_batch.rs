//! `cluster_batch`: batches of 1,000 x 256 B appended over HTTP to a 3-node cluster, synced,
//! against one single-node server on the same workload, in the same process.
//!
//! - **Cluster**: three servers in cluster mode on 127.0.0.1 in this process
//!   (`kimberlite_bench::cluster_http`: synced Raft logs, their messages over loopback HTTP);
//!   one client on one keep-alive connection to the leader posts each batch
//!   (`POST /v1/streams/bench/events`); a batch counts once answered 200: committed on a
//!   majority's synced logs (answered then, before the leader applies it).
//! - **Baseline**: one single-node server (`kimberlite_bench::server`, as in `server_batch`),
//!   the same client and batches.
//! - The two sides run in alternating phases of [`PHASE`] batches, each after one untimed
//!   batch (`kimberlite_bench::in_phases`): the cluster applies a batch after answering it, and
//!   batch by batch alternation timed the single node beside that work.
//! - Also printed: three `kimberlite-raft` nodes without HTTP (`kimberlite_bench::cluster`:
//!   messages passed in memory), one client appending through the leader.
//!
//! Target (issue 20): the cluster >= 0.5x the single node. Run: `cargo bench -p
//! kimberlite-bench --bench cluster_batch`.

use std::path::Path;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use kimberlite_bench::cluster::{BenchCluster, ClusterClient};
use kimberlite_bench::cluster_http::HttpCluster;
use kimberlite_bench::http_client::{length_prefixed, Poster};
use kimberlite_bench::replication_bound;
use kimberlite_bench::server::{open_store, BenchServer};
use kimberlite_bench::{
    events, in_phases, interleaved, rate, report, scaled, thousands, Batches, Target, BATCH_EVENTS,
};

const STREAM: &str = kimberlite_bench::cluster::STREAM;

/// Timed batches of one side in a row (see the module docs).
const PHASE: usize = 10;

/// The 3-node cluster over HTTP and its one client, posting to the leader.
fn cluster(dir: &Path, batch: &[Bytes]) -> Poster<HttpCluster> {
    Poster::new(HttpCluster::start(dir, 3), STREAM, length_prefixed(batch))
}

/// The single-node server and its one client.
fn single(dir: &Path, batch: &[Bytes]) -> Poster<BenchServer> {
    let server = BenchServer::start(open_store(dir, &[STREAM.to_string()]));
    Poster::new(server, STREAM, length_prefixed(batch))
}

/// Three nodes without HTTP and their one client.
struct InProcess {
    client: ClusterClient,
    cluster: BenchCluster,
}

impl InProcess {
    fn new(dir: &Path) -> Self {
        let mut cluster = BenchCluster::start(dir, 3);
        let client = cluster.client();
        Self { client, cluster }
    }

    fn append(&mut self, batch: Vec<Bytes>) {
        let Self { client, cluster } = self;
        cluster.runtime().block_on(client.append(batch));
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut cluster = cluster(&dir.path().join("cluster"), &batch);
    let mut single = single(&dir.path().join("single"), &batch);
    let mut group = c.benchmark_group("cluster_batch");
    group.throughput(Throughput::Elements(BATCH_EVENTS as u64));
    group.bench_function("three_nodes_http_synced_1000x256B", |b| {
        b.iter(|| cluster.post())
    });
    group.bench_function("single_node_http_synced_1000x256B", |b| {
        b.iter(|| single.post())
    });
    group.finish();
}

fn print_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = events(0, BATCH_EVENTS);
    let mut cluster = cluster(&dir.path().join("cluster"), &batch);
    let mut single = single(&dir.path().join("single"), &batch);
    let rounds = scaled(200, 5) as usize;
    let (three, base) = in_phases(rounds, PHASE, || cluster.post(), || single.post());
    drop(cluster);
    let mut in_process = InProcess::new(&dir.path().join("in-process"));
    let mut batches = Batches::new(&batch, rounds + 1);
    let (without_http, _) = interleaved(rounds, || in_process.append(batches.take()), || {});
    in_process.cluster.shutdown();
    let n = BATCH_EVENTS as u64;
    println!(
        "cluster_batch: per synced batch of 1,000 x 256 B: 3 nodes over HTTP {three:.2?}, \
         single-node server {base:.2?}; 3 nodes without HTTP {without_http:.2?}"
    );
    print_replication_bound(&dir.path().join("bound"), &batch, rounds, &mut single);
    report(
        "cluster_batch",
        &format!("3 nodes {} events/s", thousands(rate(n, three))),
        &format!("single node {} events/s", thousands(rate(n, base))),
        rate(n, three) / rate(n, base),
        Target::AtLeast(0.5),
    );
}

/// The replication bound (`kimberlite_bench::replication_bound`): the work every replica
/// cannot avoid for a batch, all replicas on this machine's cores, or the acknowledgement's
/// path through a majority's synced logs, whichever is longer; against the single-node server
/// in the same rounds.
fn print_replication_bound(
    dir: &Path,
    batch: &[Bytes],
    rounds: usize,
    single: &mut Poster<BenchServer>,
) {
    std::fs::create_dir_all(dir).expect("the bound's directory");
    let parts = replication_bound::measure(dir, batch, rounds, || single.post());
    println!(
        "cluster_batch: replication bound: per replica chain {:.2?} + crc {:.2?} + leaves \
         {:.2?} + store write {:.2?} + log write {:.2?} = {:.2?} of CPU, x{} replicas on {} \
         cores = {:.2?}; path: chain on {} cores + a majority's logs written and synced at once \
         {:.2?} = {:.2?}; bound {:.2?} against the single-node server's {:.2?}: best possible \
         ratio {:.3}",
        parts.chain,
        parts.crc,
        parts.leaves,
        parts.store_write,
        parts.log_write,
        parts.replica_cpu(),
        replication_bound::REPLICAS,
        parts.cores,
        parts.cpu_bound(),
        parts.cores,
        parts.majority_log,
        parts.path_bound(),
        parts.bound(),
        parts.baseline,
        parts.best_ratio()
    );
}

fn main() {
    kimberlite_bench::run(bench, print_ratio);
}
