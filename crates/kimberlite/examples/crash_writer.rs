//! A group-commit writer to kill: the other half of `crash_loop.sh` beside this file.
//!
//! Opens (or creates) the store in `DIR`, then eight threads append batches of four events
//! `"<thread>-<batch>-<event>"` to the stream `crash` under `Durability::GroupCommit`, and
//! print `ack <thread>-<batch>` on standard output once each append returned `Ok` (so once it
//! is durable), until the process is killed or `--batches N` per thread are done. Batch numbers
//! go on from the highest already in the stream, so one store serves every round of the loop.
//!
//! Run with `cargo run --release -p kimberlite --example crash_writer -- DIR [--batches N]`.

use std::io::Write;
use std::sync::Mutex;

use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite};

const THREADS: u64 = 8;
const EVENTS_PER_BATCH: u64 = 4;
const STREAM: &str = "crash";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: crash_writer DIR [--batches N]")?;
    let batches: u64 = match (args.next().as_deref(), args.next()) {
        (Some("--batches"), Some(n)) => n.parse()?,
        _ => u64::MAX,
    };
    let store = Kimberlite::open_with(&dir, Config::default().durability(Durability::GroupCommit))?;
    let id = match store.stream(STREAM) {
        Some(id) => id,
        None => store.create_stream(STREAM)?,
    };
    // Each round starts its batch numbers past every batch already stored.
    let first = store.head(id)?.next_offset.as_u64() / EVENTS_PER_BATCH + 1;
    let acks = Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (store, acks) = (&store, &acks);
            scope.spawn(move || {
                for batch in (first..).take(usize::try_from(batches).unwrap_or(usize::MAX)) {
                    let events: Vec<String> = (0..EVENTS_PER_BATCH)
                        .map(|event| format!("{thread}-{batch}-{event}"))
                        .collect();
                    if store.append(id, events, ExpectedOffset::Any).is_err() {
                        return;
                    }
                    let mut out = acks.lock().unwrap_or_else(|p| p.into_inner());
                    if writeln!(out, "ack {thread}-{batch}")
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(())
}
