//! The `sealed` bench's workload for a profiler and for CPU per event: batches of 1,000 x 256 B
//! appended unsynced, sealed for one subject (`SubjectKeys::append_bytes`) and plain
//! (`Kimberlite::append`), to two streams of one store.
//!
//! `both` (the default) runs rounds of a phase of sealed batches then a phase of plain ones and
//! prints, per side, the batch times (median, 99th percentile, slowest) and the CPU per event of the whole process (every
//! thread's time on a CPU, `/proc/self/task/*/schedstat`), then the bench's interleaved ratio;
//! `sealed` or `plain` appends only that side (for `perf record -g`).
//!
//! Run: `cargo run --release -p kimberlite-bench --example sealed_loop -- [batches] [both|sealed|plain]`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite::sealed::{MasterKey, SubjectKeys};
use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite, StreamId};
use kimberlite_bench::latency::Percentiles;
use kimberlite_bench::{events, interleaved, BATCH_EVENTS};

/// Nanoseconds every thread of this process has spent on a CPU (live threads only; the
/// store's helpers live as long as the store).
fn cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = task.expect("a task").path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

struct Side<'a> {
    name: &'static str,
    append: Box<dyn FnMut() + 'a>,
    times: Vec<Duration>,
    cpu: u64,
    batches: u64,
}

impl Side<'_> {
    fn phase(&mut self, batches: usize) {
        let cpu = cpu_ns();
        for _ in 0..batches {
            let started = Instant::now();
            (self.append)();
            self.times.push(started.elapsed());
        }
        self.cpu += cpu_ns() - cpu;
        self.batches += batches as u64;
    }

    fn print(&mut self) -> Duration {
        let per_event = self.cpu as f64 / (self.batches * BATCH_EVENTS as u64) as f64 / 1e3;
        let batches = Percentiles::of(std::mem::take(&mut self.times));
        println!(
            "{}: per batch {batches}, CPU {per_event:.3} us per event",
            self.name
        );
        batches.p50
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let batches: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let mode = args.next().unwrap_or_else(|| "both".to_owned());
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config::default().durability(Durability::Unsynced);
    let store = Kimberlite::open_with(dir.path(), config).expect("open the store");
    let (master, _) = MasterKey::generate();
    let keys = SubjectKeys::open(&store, Arc::new(master)).expect("open the key store");
    let plain: StreamId = store.create_stream("plain").expect("create");
    let sealed: StreamId = store.create_stream("sealed").expect("create");
    let batch = events(0, BATCH_EVENTS);
    let append_sealed = |batch: &[Bytes]| {
        keys.append_bytes(sealed, "subject-0", batch.to_vec(), ExpectedOffset::Any)
            .expect("sealed append");
    };
    let append_plain = |batch: &[Bytes]| {
        store
            .append(plain, batch.iter().cloned(), ExpectedOffset::Any)
            .expect("plain append");
    };
    match mode.as_str() {
        "sealed" => (0..batches).for_each(|_| append_sealed(&batch)),
        "plain" => (0..batches).for_each(|_| append_plain(&batch)),
        _ => {
            let mut sides = [
                Side {
                    name: "sealed",
                    append: Box::new(|| append_sealed(&batch)),
                    times: Vec::new(),
                    cpu: 0,
                    batches: 0,
                },
                Side {
                    name: "plain",
                    append: Box::new(|| append_plain(&batch)),
                    times: Vec::new(),
                    cpu: 0,
                    batches: 0,
                },
            ];
            let phase = 50;
            for _ in 0..batches.div_ceil(2 * phase) {
                for side in &mut sides {
                    side.phase(phase);
                }
            }
            let [sealed_side, plain_side] = &mut sides;
            let (s, p) = (sealed_side.print(), plain_side.print());
            println!(
                "phases: sealed / plain {:.2}",
                p.as_secs_f64() / s.as_secs_f64()
            );
            let (s, p) = interleaved(
                batches / 2,
                || append_sealed(&batch),
                || append_plain(&batch),
            );
            println!(
                "interleaved: sealed {s:.2?}, plain {p:.2?} per batch: ratio {:.2}",
                p.as_secs_f64() / s.as_secs_f64()
            );
        }
    }
    drop(keys);
    drop(store);
}
