//! `verify`: is the store intact? Every record's checksum, offset and hash link, anchors
//! recorded earlier, and what recovery did on open; as text or one JSON object.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use kimberlite::{Anchor, Error, Problem, StreamReport, VerifyReport};
use serde_json::{json, Value};

use crate::display::{human_bytes, progress_bar, thousands};
use crate::error::CliError;
use crate::open::{find_stream, open_read_only};
use crate::place::{Located, Place, ServerArgs};
use crate::report::{describe_problem, label, print_recovery, MISSING_STREAM};

#[derive(Debug, Args)]
#[command(
    override_usage = "kimberlite verify [OPTIONS] DIR [STREAM]\n       kimberlite verify [OPTIONS] --server URL [--token-file FILE] STREAM"
)]
pub struct VerifyArgs {
    /// DIR [STREAM]: the store's directory, and only this stream (default: every stream, the
    /// catalogue included); with --server, STREAM only (the server verifies one stream).
    #[arg(value_names = ["DIR", "STREAM"], num_args = 1..=2, required = true)]
    place: Vec<OsString>,
    /// Also check a head hash recorded earlier, as printed by verify: NAME@EVENTS=HASH. The
    /// stream's first EVENTS events must still hash to HASH, which catches events cut from the
    /// end of a stream or a store replaced by an older copy. Repeatable.
    #[arg(long, value_name = "NAME@EVENTS=HASH")]
    anchor: Vec<Anchor>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

pub fn verify(args: &VerifyArgs) -> Result<ExitCode, CliError> {
    let located = Located::split("verify", &args.server, args.place.clone(), &["STREAM"], 0)?;
    let stream = located.arg(0);
    match &located.place {
        Place::Server(client) => {
            let stream = stream.ok_or_else(|| {
                CliError::usage("with --server, name the STREAM to verify (DIR is left out)")
            })?;
            if !args.anchor.is_empty() {
                return Err(CliError::usage_hint(
                    "--anchor is checked against a store directory, not a server",
                    "compare the anchor's hash with the head `verify --server` prints at that \
                     many events, or run verify --anchor where the store is",
                ));
            }
            crate::remote::verify(client, stream, args.json)
        }
        Place::Dir(dir) => verify_local(args, dir, stream),
    }
}

/// `verify` of the store in `dir` (every stream, or only `stream`).
fn verify_local(args: &VerifyArgs, dir: &Path, stream: Option<&str>) -> Result<ExitCode, CliError> {
    let store = match open_read_only(dir) {
        Ok(store) => store,
        // Damage that keeps the store from opening at all is verify's finding, not a usage
        // error: say so plainly (the generic hint would send the user back to verify).
        Err(CliError::Store { error, .. }) if error.is_corruption() => {
            if args.json {
                let value = json!({ "intact": false, "error": error.to_string() });
                outln!("{value}");
            } else {
                outln!("NOT INTACT: {} cannot be opened: {error}", dir.display());
            }
            return Ok(ExitCode::from(1));
        }
        Err(error) => return Err(error),
    };
    let started = Instant::now();
    let report = match stream {
        Some(name) => {
            let id = find_stream(&store, dir, name)?;
            // A damaged stream's head is unknown: its bar has no length, and verify says why.
            let events = store.head(id).map_or(0, |head| head.next_offset.as_u64());
            let bar = progress_bar(events, "verifying");
            let report = store.verify_with(id, |records| bar.inc(records));
            bar.finish_and_clear();
            report?
        }
        None => {
            let bar = progress_bar(store.total_events(), "verifying");
            let report = store.verify_all_with(|records| bar.inc(records));
            bar.finish_and_clear();
            report?
        }
    };
    let mut report = report;
    for anchor in &args.anchor {
        match store.check_anchor(anchor) {
            Ok(checked) => report.problems.extend(checked),
            // An anchored stream that is gone is evidence, not a usage error.
            Err(Error::StreamNotFound { .. }) => report.problems.push(missing_stream(anchor)),
            Err(error) => return Err(error.into()),
        }
    }
    let elapsed = started.elapsed();
    if args.json {
        let recovery: Vec<String> = store
            .recovery_report()
            .actions
            .iter()
            .map(|action| crate::open::recovery_line(&store, action))
            .collect();
        let kept: Vec<Value> = store
            .kept_torn_tails()
            .iter()
            .map(|(path, bytes)| json!({ "file": path.display().to_string(), "bytes": bytes }))
            .collect();
        outln!("{}", report_json(&report, &recovery, kept));
    } else {
        print_report(store.path(), &report, elapsed.as_secs_f64());
        print_recovery(&store);
        for (path, bytes) in store.kept_torn_tails() {
            outln!(
                "  note: {bytes} bytes of an unfinished write, cut off by recovery, are kept in {} \
                 (not part of the log)",
                path.display()
            );
        }
    }
    if report.is_intact() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::Tampered)
    }
}

fn missing_stream(anchor: &Anchor) -> Problem {
    let reason = format!(
        "anchor {anchor} names a stream the store does not have: it (or its catalogue \
         entry) was removed"
    );
    Problem {
        stream: MISSING_STREAM,
        name: Some(anchor.stream.clone()),
        offset: kimberlite::Offset::ZERO,
        segment: None,
        file: None,
        position: None,
        message: reason.clone(),
        reason,
    }
}

/// Prints a verification report for people.
pub fn print_report(path: Option<&Path>, report: &VerifyReport, seconds: f64) {
    if let Some(path) = path {
        outln!("verified {}", path.display());
    }
    for stream in &report.streams {
        let anchor = match (&stream.name, stream.head) {
            (Some(name), Some(hash)) => Anchor {
                stream: name.clone(),
                events: stream.next_offset.as_u64(),
                hash,
            }
            .to_string(),
            (_, hash) => hash.map_or_else(|| "-".to_owned(), |h| h.to_string()),
        };
        outln!(
            "  ok        {:<28} {:>10} events {:>4} segment(s)  {anchor}",
            label(stream.name.as_deref(), stream.stream),
            thousands(stream.records_checked),
            stream.segments_checked,
        );
        // Retention dropped the events before the ones checked (`kimberlite retain`).
        let first_kept =
            stream.next_offset.as_u64() - stream.records_checked.min(stream.next_offset.as_u64());
        if first_kept > 0 {
            outln!(
                "            pruned before offset {}: checked from there, linked to the chain \
                 hash kept at the cut",
                thousands(first_kept)
            );
        }
    }
    for problem in &report.problems {
        outln!("  TAMPERED  {}", describe_problem(problem));
    }
    if let Some(first) = report.first_problem() {
        outln!(
            "NOT INTACT: {} problem(s); first: {} at offset {}",
            report.problems.len(),
            label(first.name.as_deref(), first.stream),
            first.offset
        );
    } else {
        outln!(
            "intact: {} records, {} restart records, {} segments, {} checked in {seconds:.2} s",
            thousands(report.records_checked()),
            thousands(report.restart_records_checked()),
            report.segments_checked(),
            human_bytes(report.bytes_checked())
        );
        outln!(
            "(keep the NAME@EVENTS=HASH anchors above somewhere else; `verify --anchor` checks \
             them later, which also catches events cut from the end of a stream)"
        );
    }
}

fn report_json(report: &VerifyReport, recovery: &[String], kept_torn_tails: Vec<Value>) -> Value {
    let streams: Vec<Value> = report.streams.iter().map(stream_json).collect();
    let problems: Vec<Value> = report.problems.iter().map(problem_json).collect();
    json!({
        "intact": report.is_intact(),
        "records_checked": report.records_checked(),
        "restart_records_checked": report.restart_records_checked(),
        "segments_checked": report.segments_checked(),
        "bytes_checked": report.bytes_checked(),
        "streams": streams,
        "problems": problems,
        "recovery": recovery,
        "kept_torn_tails": kept_torn_tails,
    })
}

fn stream_json(stream: &StreamReport) -> Value {
    json!({
        "id": stream.stream.as_u64(),
        "name": stream.name,
        "records_checked": stream.records_checked,
        "restart_records_checked": stream.restart_records_checked,
        "segments_checked": stream.segments_checked,
        "bytes_checked": stream.bytes_checked,
        "next_offset": stream.next_offset.as_u64(),
        "head": stream.head.map(|h| h.to_string()),
        "anchor": stream.name.as_ref().zip(stream.head).map(|(name, hash)| {
            Anchor {
                stream: name.clone(),
                events: stream.next_offset.as_u64(),
                hash,
            }
            .to_string()
        }),
    })
}

fn problem_json(problem: &Problem) -> Value {
    json!({
        "id": problem.stream.as_u64(),
        "name": problem.name,
        "offset": problem.offset.as_u64(),
        "segment": problem.segment,
        "file": problem.file.as_ref().map(|f| f.display().to_string()),
        "byte": problem.position,
        "reason": problem.reason,
        "message": problem.message,
    })
}
