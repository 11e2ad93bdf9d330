//! `retain`: retention by verified pruning (`Kimberlite::retain`, `docs/COMPLIANCE.md`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kimberlite::{Config, Offset};

use crate::error::CliError;
use crate::open::{find_stream, open_existing};

#[derive(Debug, Args)]
pub struct RetainArgs {
    /// The store's directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The stream to prune.
    #[arg(value_name = "STREAM")]
    stream: OsString,
    /// Drop events below this offset (whole segments only: the cut is rounded down to the
    /// first offset of the segment holding it). A time is refused: events carry no time the
    /// store can vouch for.
    #[arg(long, value_name = "OFFSET")]
    before: String,
}

/// Runs `kimberlite retain DIR STREAM --before OFFSET`.
pub fn retain(args: &RetainArgs) -> Result<ExitCode, CliError> {
    let before = parse_before(&args.before)?;
    let stream = args
        .stream
        .to_str()
        .ok_or_else(|| CliError::usage("STREAM is not UTF-8"))?;
    let store = open_existing(&args.dir, Config::default())?;
    let id = find_stream(&store, &args.dir, stream)?;
    let retained = store.retain(id, before)?;
    if retained.events_dropped() == 0 {
        println!(
            "stream {stream:?}: nothing dropped: no whole segment lies below offset {} (the \
             stream holds events from offset {} on)",
            retained.before, retained.first_offset
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "stream {stream:?}: events {}..{} dropped ({} events); the stream holds events from \
         offset {} on",
        retained.previous_first_offset,
        retained.first_offset,
        retained.events_dropped(),
        retained.first_offset
    );
    if retained.first_offset != retained.before {
        println!(
            "  asked before offset {}: rounded down to the first offset of the segment \
             holding it (only whole segments are dropped)",
            retained.before
        );
    }
    println!(
        "  the cut is covered by the kept checkpoint of size {}; the chain hash and the Merkle \
         frontier at the cut are kept, so `verify` and every proof of the rest still hold",
        retained.checkpoint_size
    );
    Ok(ExitCode::SUCCESS)
}

/// An offset; a time or date is refused with why.
fn parse_before(text: &str) -> Result<Offset, CliError> {
    if let Ok(offset) = text.parse::<u64>() {
        return Ok(Offset::new(offset));
    }
    let looks_like_time = text.contains(['-', ':', 'T', '/']);
    if looks_like_time {
        return Err(CliError::usage_hint(
            format!("--before {text}: retention by time is not supported"),
            "events carry no time the store can vouch for (a record holds offset, payload and \
             hashes: docs/FORMAT.md), and segment file times can be changed by anyone; give \
             the first offset to keep, e.g. one found with `kimberlite read`",
        ));
    }
    Err(CliError::usage(format!(
        "--before {text}: not an offset (a whole number)"
    )))
}
