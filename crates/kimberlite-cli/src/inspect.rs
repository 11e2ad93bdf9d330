//! `inspect`: what a store holds, per stream: events, segments, sizes, compression, head.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kimberlite::StreamStats;
use serde_json::{json, Value};

use crate::display::{human_bytes, thousands};
use crate::error::CliError;
use crate::open::{find_stream, open_read_only};
use crate::report::{label, print_recovery};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The store's directory.
    dir: PathBuf,
    /// Show only this stream.
    stream: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}
pub fn inspect(args: &InspectArgs) -> Result<ExitCode, CliError> {
    let store = open_read_only(&args.dir)?;
    let mut stats = store.stats();
    if let Some(name) = &args.stream {
        let id = find_stream(&store, &args.dir, name)?;
        stats.retain(|s| s.stream == id);
    }
    if args.json {
        let streams: Vec<Value> = stats.iter().map(stats_json).collect();
        outln!(
            "{}",
            json!({ "path": args.dir.display().to_string(), "streams": streams })
        );
        return Ok(ExitCode::SUCCESS);
    }
    outln!("store {}", args.dir.display());
    outln!(
        "  {:<4} {:<28} {:>10} {:>8} {:>11} {:>11} {:>6} {:>11}  head",
        "id",
        "stream",
        "events",
        "segments",
        "stored",
        "logical",
        "ratio",
        "restarts"
    );
    for s in &stats {
        outln!(
            "  {:<4} {:<28} {:>10} {:>8} {:>11} {:>11} {:>6} {:>11}  {}",
            s.stream.as_u64(),
            label(s.name.as_deref(), s.stream),
            if s.damaged {
                "damaged".to_owned()
            } else {
                thousands(s.events)
            },
            s.storage.segments,
            s.storage
                .stored_bytes
                .map_or_else(|| "-".into(), human_bytes),
            s.storage
                .logical_bytes
                .map_or_else(|| "-".into(), human_bytes),
            ratio(s).map_or_else(|| "-".into(), |r| format!("{r:.2}x")),
            s.storage
                .restart_records
                .map_or_else(|| "-".into(), thousands),
            s.head
                .filter(|_| !s.damaged)
                .map_or_else(|| "-".to_owned(), |h| h.to_string())
        );
    }
    let events: u64 = stats
        .iter()
        .filter(|s| s.name.is_some() && !s.damaged)
        .map(|s| s.events)
        .sum();
    let damaged = stats.iter().filter(|s| s.damaged).count();
    let stored: u64 = stats.iter().filter_map(|s| s.storage.stored_bytes).sum();
    print_recovery(&store);
    outln!(
        "  {} named stream(s), {} events{}, {} stored",
        stats.iter().filter(|s| s.name.is_some()).count(),
        thousands(events),
        if damaged > 0 {
            format!(" in intact streams ({damaged} damaged: run `kimberlite verify`)")
        } else {
            String::new()
        },
        human_bytes(stored)
    );
    Ok(ExitCode::SUCCESS)
}

/// Logical bytes over stored bytes: above 1 when compression saves space.
fn ratio(stats: &StreamStats) -> Option<f64> {
    match (stats.storage.logical_bytes, stats.storage.stored_bytes) {
        (Some(logical), Some(stored)) if stored > 0 => Some(logical as f64 / stored as f64),
        _ => None,
    }
}

fn stats_json(s: &StreamStats) -> Value {
    json!({
        "id": s.stream.as_u64(),
        "name": s.name,
        "events": (!s.damaged).then_some(s.events),
        "head": s.head.filter(|_| !s.damaged).map(|h| h.to_string()),
        "damaged": s.damaged,
        "segments": s.storage.segments,
        "stored_bytes": s.storage.stored_bytes,
        "logical_bytes": s.storage.logical_bytes,
        "compression_ratio": ratio(s),
        "restart_records": s.storage.restart_records,
        "compressed_records": s.storage.compressed_records,
    })
}
