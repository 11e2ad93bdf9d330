//! `kimberlite bench`: append, read and verify throughput, and append latency.
//!
//! Runs on a scratch store (a temporary directory unless `--dir` is given: a new or empty
//! directory only, never a store) with one stream.
//! Appends `--events` events of `--size` bytes in batches of `--batch`, timing every append
//! call; without `--fsync` appends are unsynced (they reach the OS page cache, which is what
//! the disk's speed does not limit), with `--fsync` every batch is synced before the next. Then
//! it reads everything back (every record checksum- and chain-checked) and verifies the stream.
//!
//! Payloads are JSON audit events padded with pseudo-random hex up to `--size`. Compression
//! works per record, so small events like these rarely shrink (`inspect` shows the ratio).
//! The numbers are a smoke test of this machine, not a promise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use kimberlite::{Bytes, Config, Durability, ExpectedOffset, Kimberlite, Offset};

use crate::display::{human_bytes, progress_bar, thousands};
use crate::error::CliError;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events to append.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    events: u64,
    /// Payload size of each event, in bytes.
    #[arg(long, default_value_t = 256, value_name = "B")]
    size: usize,
    /// Events per append call.
    #[arg(long, default_value_t = 100, value_name = "N")]
    batch: usize,
    /// Sync every batch to disk before the next (default: unsynced appends).
    #[arg(long)]
    fsync: bool,
    /// Run in this new or empty directory instead of a temporary one (kept afterwards); any
    /// other directory is refused.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(args: &BenchArgs) -> Result<ExitCode, CliError> {
    if args.events == 0 || args.batch == 0 || args.size == 0 {
        return Err(CliError::usage(
            "--events, --batch and --size must be at least 1",
        ));
    }
    if args.size > kimberlite::MAX_EVENT_BYTES {
        return Err(CliError::usage(format!(
            "--size must be at most {} bytes",
            kimberlite::MAX_EVENT_BYTES
        )));
    }
    if let Some(dir) = &args.dir {
        check_bench_dir(dir)?;
    }
    let scratch = tempfile::Builder::new()
        .prefix("kimberlite-bench-")
        .tempdir()
        .map_err(|error| {
            CliError::usage(format!("cannot create a temporary directory: {error}"))
        })?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().join("store"));
    let durability = if args.fsync {
        Durability::SyncEachAppend
    } else {
        Durability::Unsynced
    };
    let store = Kimberlite::open_with(&dir, Config::default().durability(durability))?;
    let id = store.create_stream("bench")?;
    outln!(
        "bench: {} events of {} in batches of {}, {}; store in {}",
        thousands(args.events),
        human_bytes(args.size as u64),
        args.batch,
        if args.fsync {
            "each batch synced to disk"
        } else {
            "unsynced (OS page cache)"
        },
        dir.display()
    );

    let payloads = payload_pool(args.size);
    let bar = progress_bar(args.events, "appending");
    let mut latencies =
        Vec::with_capacity(usize::try_from(args.events).unwrap_or(0) / args.batch + 1);
    let started = Instant::now();
    let mut written = 0u64;
    while written < args.events {
        let count = (args.events - written).min(args.batch as u64);
        let batch: Vec<Bytes> = (written..written + count)
            .map(|n| {
                payloads
                    .get(n as usize % payloads.len())
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        let call = Instant::now();
        store.append(id, batch, ExpectedOffset::Exact(Offset::new(written)))?;
        latencies.push(call.elapsed());
        written += count;
        bar.inc(count);
    }
    if !args.fsync {
        store.sync()?;
    }
    let append_time = started.elapsed();
    bar.finish_and_clear();
    let total_bytes = args.events * args.size as u64;
    print_rate("append", args.events, total_bytes, append_time);
    latencies.sort_unstable();
    outln!(
        "append latency per batch: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&latencies, 99.9)),
        ms(latencies.last().copied().unwrap_or_default())
    );

    let bar = progress_bar(args.events, "reading");
    let started = Instant::now();
    let mut read = 0u64;
    for event in store.events(id, Offset::ZERO) {
        event?;
        read += 1;
        if read.is_multiple_of(1024) {
            bar.inc(1024);
        }
    }
    bar.finish_and_clear();
    print_rate("read", read, read * args.size as u64, started.elapsed());

    let started = Instant::now();
    let report = store.verify(id)?;
    print_rate(
        "verify",
        report.records_checked(),
        report.bytes_checked(),
        started.elapsed(),
    );
    if let Some(stats) = store.stats().into_iter().find(|s| s.stream == id) {
        if let (Some(stored), Some(logical)) =
            (stats.storage.stored_bytes, stats.storage.logical_bytes)
        {
            outln!(
                "stored {} for {} logical ({} segment(s), {} restart records)",
                human_bytes(stored),
                human_bytes(logical),
                stats.storage.segments,
                stats.storage.restart_records.unwrap_or(0)
            );
        }
    }
    if args.dir.is_none() {
        drop(store);
        drop(scratch);
    } else {
        // The kept store's next open need not rescan the active segment.
        store.flush_indexes()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses a `--dir` that exists and is not an empty directory: the bench writes a stream
/// named `bench` that stays, and must never land in a store (or any directory) that holds data.
fn check_bench_dir(dir: &std::path::Path) -> Result<(), CliError> {
    let refuse = |what: &str| {
        CliError::usage_hint(
            format!(
                "--dir {} {what}; bench runs only in a new or empty directory; nothing was written",
                dir.display()
            ),
            "pass a path that does not exist yet, or leave out --dir to use a temporary directory",
        )
    };
    match std::fs::symlink_metadata(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(refuse(&format!("cannot be checked ({error})"))),
        Ok(meta) if !meta.is_dir() => Err(refuse("is not a directory")),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir)
                .map_err(|error| refuse(&format!("cannot be listed ({error})")))?;
            match entries.next() {
                None => Ok(()),
                Some(_) if dir.join("kimberlite.json").exists() => {
                    Err(refuse("holds a Kimberlite store"))
                }
                Some(_) => Err(refuse("is not empty")),
            }
        }
    }
}

/// 64 distinct payloads of `size` bytes: a JSON audit event with varying values, padded with
/// hex filler and cut to `size` bytes.
fn payload_pool(size: usize) -> Vec<Bytes> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..64)
        .map(|_| {
            let mut text = format!(
                r#"{{"event":"record.viewed","actor":"user-{:04}","patient":"P-{:06}","resource":"lab-results","session":"{:016x}","note":""#,
                next() % 5000,
                next() % 1_000_000,
                next()
            );
            while text.len() < size {
                text.push_str(&format!("{:016x}", next()));
            }
            let mut bytes = text.into_bytes();
            bytes.truncate(size);
            Bytes::from(bytes)
        })
        .collect()
}

fn print_rate(what: &str, events: u64, bytes: u64, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    outln!(
        "{what:<7} {} events in {seconds:.3} s: {} events/s, {:.1} MiB/s",
        thousands(events),
        thousands((events as f64 / seconds) as u64),
        bytes as f64 / seconds / (1024.0 * 1024.0)
    );
}

/// The `p`th percentile of sorted `values` (nearest rank).
fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values
        .get(rank.clamp(1, values.len()) - 1)
        .copied()
        .unwrap_or_default()
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&values, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn payloads_have_the_requested_size() {
        let pool = payload_pool(10);
        assert_eq!(pool.len(), 64);
        assert!(pool.iter().all(|p| p.len() == 10));
    }
}
