//! `kimberlite demo`: the first thing a new user runs.
//!
//! Builds a store holding a hospital's audit trail (thousands of JSON events over four
//! streams), reads some back, verifies everything, then copies the store, flips one bit of one
//! byte in a segment file of the *copy* and shows verification naming the damaged stream,
//! offset, file and byte. The original is never touched. Events are generated from a fixed
//! seed, so every run tells the same story.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use kimberlite::{Anchor, Config, Error, ExpectedOffset, Kimberlite, Offset, StreamId};

use crate::audit_data::{AuditGenerator, ACCESS_STREAM, LOGINS_STREAM, STREAMS};
use crate::copy_store::copy_dir;
use crate::display::{human_bytes, progress_bar, short_hash, thousands};
use crate::error::CliError;
use crate::report::{describe_problem, label};

/// Bytes the demo cuts off the end of a segment: a few records.
const CUT_BYTES: u64 = 600;

/// Events per append in the demo.
const BATCH_EVENTS: usize = 50;

/// Segment size of the demo store: small, so that streams span several segments.
const DEMO_SEGMENT_BYTES: u64 = 256 * 1024;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to build the store: a new or empty directory, kept afterwards (default: a
    /// temporary directory, deleted when the demo ends).
    dir: Option<PathBuf>,
    /// How many audit events to append.
    #[arg(long, default_value_t = 6_000, value_name = "N")]
    events: u64,
    /// Keep the temporary store and the tampered copy, and print where they are.
    #[arg(long)]
    keep: bool,
}

pub fn run(args: &DemoArgs) -> Result<ExitCode, CliError> {
    if args.events < STREAMS.len() as u64 {
        return Err(CliError::usage(
            "--events must be at least 4 (one per stream)",
        ));
    }
    let scratch = tempfile::Builder::new()
        .prefix("kimberlite-demo-")
        .tempdir()
        .map_err(|error| {
            CliError::usage(format!("cannot create a temporary directory: {error}"))
        })?;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => scratch.path().join("store"),
    };
    if dir.join(kimberlite::MARKER_FILE).exists() {
        return Err(CliError::usage_hint(
            format!("{} already holds a store", dir.display()),
            "the demo builds a new store: give it a new or empty directory",
        ));
    }
    let config = Config::default().max_segment_size(DEMO_SEGMENT_BYTES);
    outln!("Kimberlite demo: a tamper-evident audit trail for a hospital\n");

    let store = Kimberlite::open_with(&dir, config.clone())?;
    outln!("1. Created a store in {}", dir.display());
    let ids = populate(&store, args.events)?;
    read_back(&store, &ids)?;
    let verified = verify_original(&store)?;
    let anchor = anchor_for(&store, LOGINS_STREAM)?;
    outln!("   Anchor to keep outside the store: {anchor}");
    drop(store); // Release the store before copying it.

    let copy = scratch.path().join("tampered-copy");
    tamper_with_copy(&dir, &copy, &config)?;
    let still = Kimberlite::open_with(&dir, config.clone())?.verify_all()?;
    outln!(
        "   The original store still verifies intact: {}.",
        if still.is_intact() { "yes" } else { "NO" }
    );
    let truncated = scratch.path().join("truncated-copy");
    truncate_copy(&dir, &truncated, &config, &anchor)?;
    crate::demo_witness::run(&dir, scratch.path(), &config)?;
    crate::demo_erasure::erase_one_patient(&Kimberlite::open_with(&dir, config.clone())?)?;

    outln!(
        "\nSummary: {} events in {} streams, {} records verified; one flipped bit in a copy was \
         caught at the exact stream and offset, events cut off another copy were caught by \
         verify and by an anchor; three witnesses cosigned a checkpoint and refused a rolled-back \
         copy; an erased patient left the chain intact.",
        thousands(args.events),
        STREAMS.len(),
        thousands(verified)
    );
    let kept = args.keep || args.dir.is_some();
    if args.keep {
        let scratch_path = scratch.keep();
        outln!("Kept the scratch directory {}", scratch_path.display());
    }
    if kept {
        outln!("Explore it:");
        outln!("  kimberlite inspect {}", dir.display());
        outln!(
            "  kimberlite read {} patient-record-access --limit 5",
            dir.display()
        );
        outln!("  kimberlite verify {}", dir.display());
    } else {
        outln!("(The store was temporary; run `kimberlite demo DIR` to keep one and explore it.)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Step 2: appends `events` audit events over the demo streams, with a progress bar.
fn populate(store: &Kimberlite, events: u64) -> Result<Vec<StreamId>, CliError> {
    let ids = STREAMS
        .iter()
        .map(|(name, _)| store.create_stream(name))
        .collect::<Result<Vec<_>, Error>>()?;
    let mut generator = AuditGenerator::new(0x6b69_6d62_6572_6c69);
    let mut batches: Vec<Vec<String>> = vec![Vec::new(); ids.len()];
    let bar = progress_bar(events, "appending");
    let started = Instant::now();
    let mut bytes = 0u64;
    for n in 0..events {
        // The first events go one per stream, so every stream has at least one.
        let stream = if n < ids.len() as u64 {
            n as usize
        } else {
            generator.pick_stream()
        };
        let event = generator.event(stream, n);
        bytes += event.len() as u64;
        let Some(batch) = batches.get_mut(stream) else {
            continue;
        };
        batch.push(event);
        if batch.len() >= BATCH_EVENTS {
            flush_batch(store, &ids, stream, batch)?;
            bar.inc(BATCH_EVENTS as u64);
        }
    }
    for (stream, batch) in batches.iter_mut().enumerate() {
        let pending = batch.len() as u64;
        flush_batch(store, &ids, stream, batch)?;
        bar.inc(pending);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    outln!(
        "2. Appended {} JSON audit events ({}) to {} streams in {seconds:.2} s \
         ({} events/s; batches of {BATCH_EVENTS}, each synced to disk)",
        thousands(events),
        human_bytes(bytes),
        ids.len(),
        thousands((events as f64 / seconds) as u64)
    );
    for info in store.list_streams() {
        outln!(
            "     {:<24} {:>7} events   head {}…",
            info.name,
            thousands(info.head.next_offset.as_u64()),
            short_hash(info.head.hash)
        );
    }
    Ok(ids)
}

fn flush_batch(
    store: &Kimberlite,
    ids: &[StreamId],
    stream: usize,
    batch: &mut Vec<String>,
) -> Result<(), CliError> {
    if batch.is_empty() {
        return Ok(());
    }
    let Some(&id) = ids.get(stream) else {
        return Ok(());
    };
    store.append(id, batch.drain(..), ExpectedOffset::Any)?;
    Ok(())
}

/// Step 3: prints the last events of the busiest stream, pages through everything, and shows
/// a stale writer refused.
fn read_back(store: &Kimberlite, ids: &[StreamId]) -> Result<(), CliError> {
    let (Some(&access), Some(&prescriptions)) = (ids.first(), ids.get(1)) else {
        return Ok(());
    };
    let head = store.head(access)?;
    let from = Offset::new(head.next_offset.as_u64().saturating_sub(3));
    outln!("3. Read back the last 3 events of \"{ACCESS_STREAM}\":");
    for event in store.read(access, from, u64::MAX)? {
        outln!(
            "     #{:<5} {}",
            event.offset,
            String::from_utf8_lossy(&event.payload)
        );
    }
    let mut total = 0u64;
    for id in ids {
        for event in store.events(*id, Offset::ZERO) {
            event?;
            total += 1;
        }
    }
    outln!(
        "   Paged through all {} events; every one was checked against its hash link.",
        thousands(total)
    );
    let stale = store.append(
        prescriptions,
        ["{\"action\":\"late-edit\"}"],
        ExpectedOffset::Exact(Offset::new(10)),
    );
    if let Err(error) = stale {
        outln!("   A stale writer expecting offset 10 was refused:\n     {error}");
    }
    Ok(())
}

/// Step 4: verifies every stream of the original; returns the records checked.
fn verify_original(store: &Kimberlite) -> Result<u64, CliError> {
    let bar = progress_bar(store.total_events(), "verifying");
    let started = Instant::now();
    let report = store.verify_all_with(|records| bar.inc(records));
    bar.finish_and_clear();
    let report = report?;
    let seconds = started.elapsed().as_secs_f64();
    outln!(
        "4. Verified every record from the first: {} records, {} segments, {} restart records, \
         {} checked in {seconds:.2} s: {}",
        thousands(report.records_checked()),
        report.segments_checked(),
        thousands(report.restart_records_checked()),
        human_bytes(report.bytes_checked()),
        if report.is_intact() {
            "INTACT"
        } else {
            "NOT INTACT"
        }
    );
    if let Some(problem) = report.first_problem() {
        return Err(CliError::usage(format!(
            "the freshly written store does not verify: {}",
            describe_problem(problem)
        )));
    }
    Ok(report.records_checked())
}

/// Step 5: copies the store, flips one bit in a completed segment of the copy, verifies it.
fn tamper_with_copy(original: &Path, copy: &Path, config: &Config) -> Result<(), CliError> {
    copy_dir(original, copy)?;
    let segment = pick_segment(copy)?;
    let len = std::fs::metadata(&segment)
        .map_err(|e| io_error(&segment, e))?
        .len();
    let position = len * 2 / 3;
    let mut bytes = std::fs::read(&segment).map_err(|e| io_error(&segment, e))?;
    let Some(byte) = bytes.get_mut(position as usize) else {
        return Err(CliError::usage("the segment to tamper with is empty"));
    };
    let before = *byte;
    *byte ^= 0x01;
    let after = *byte;
    std::fs::write(&segment, &bytes).map_err(|e| io_error(&segment, e))?;
    outln!(
        "5. Copied the store and flipped one bit in the copy: byte {} of {} ({:#04x} -> {:#04x})",
        thousands(position),
        segment.display(),
        before,
        after
    );
    let started = Instant::now();
    let report = match Kimberlite::open_with(copy, config.clone().create_if_missing(false)) {
        Ok(tampered) => tampered.verify_all()?,
        Err(error) if error.is_corruption() => {
            outln!("   Opening the copy already refuses it: {error}");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let seconds = started.elapsed().as_secs_f64();
    let intact: Vec<String> = report
        .streams
        .iter()
        .map(|stream| label(stream.name.as_deref(), stream.stream))
        .collect();
    outln!(
        "   Verifying the copy ({seconds:.2} s) says NOT INTACT (`kimberlite verify` exits with 1):"
    );
    outln!("     intact:   {}", intact.join(", "));
    for problem in &report.problems {
        let file = problem.file.as_deref().map_or_else(
            || "?".to_owned(),
            |file| {
                file.strip_prefix(copy)
                    .unwrap_or(file)
                    .display()
                    .to_string()
            },
        );
        outln!(
            "     TAMPERED: {} at offset {}: the record at byte {} of {file}",
            label(problem.name.as_deref(), problem.stream),
            thousands(problem.offset.as_u64()),
            problem.position.map_or_else(|| "?".to_owned(), thousands),
        );
        outln!("               fails its check ({})", problem.reason);
    }
    if report.is_intact() {
        outln!("     (unexpected: no damage found)");
    }
    Ok(())
}

/// The anchor (name, events, head hash) of stream `name` now.
fn anchor_for(store: &Kimberlite, name: &str) -> Result<Anchor, CliError> {
    let id = store
        .stream(name)
        .ok_or_else(|| CliError::usage(format!("the demo lost its stream {name:?}")))?;
    let head = store.head(id)?;
    let hash = head
        .hash
        .ok_or_else(|| CliError::usage(format!("the demo's stream {name:?} is empty")))?;
    Ok(Anchor {
        stream: name.to_owned(),
        events: head.next_offset.as_u64(),
        hash,
    })
}

/// Step 6: copies the store, cuts the end off one stream's last segment in the copy, and shows
/// that verification catches it through the store's Merkle leaves file (outside the stream's
/// directory), and the anchor too, which still holds when that file is gone as well.
fn truncate_copy(
    original: &Path,
    copy: &Path,
    config: &Config,
    anchor: &Anchor,
) -> Result<(), CliError> {
    copy_dir(original, copy)?;
    let store = Kimberlite::open_with(copy, config.clone())?;
    let id = store.stream(&anchor.stream).map_or(0, |id| id.as_u64());
    drop(store);
    let mut segments = Vec::new();
    collect_segments(
        &copy.join("streams").join(format!("{id:020}")),
        &mut segments,
    )?;
    let Some((segment, len)) = segments.into_iter().max() else {
        return Err(CliError::usage("no segment to cut in the demo copy"));
    };
    let cut = CUT_BYTES.min(len / 2);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .map_err(|e| io_error(&segment, e))?;
    file.set_len(len - cut).map_err(|e| io_error(&segment, e))?;
    drop(file);
    let store = Kimberlite::open_with(copy, config.clone().create_if_missing(false))?;
    let held = store.head(store.stream(&anchor.stream).unwrap_or_default())?;
    let plain = store.verify_all()?;
    outln!(
        "6. Cut the last {cut} bytes off \"{}\" in another copy: it now holds {} events, not {}.",
        anchor.stream,
        thousands(held.next_offset.as_u64()),
        thousands(anchor.events)
    );
    for action in store.recovery_report().actions {
        outln!("   On open, recovery {action}.");
    }
    match plain.first_problem() {
        Some(problem) => outln!("   Plain verify says TAMPERED: {}", problem.reason),
        None => outln!("   Plain verify says intact: a shorter chain is still a valid chain."),
    }
    match store.check_anchor(anchor)? {
        Some(problem) => outln!("   verify --anchor says TAMPERED: {}", problem.reason),
        None => outln!("   verify --anchor says intact (unexpected)"),
    }
    Ok(())
}

/// A completed segment (one with a later sibling) of the largest stream, or the largest
/// segment file there is.
fn pick_segment(dir: &Path) -> Result<PathBuf, CliError> {
    let mut segments = Vec::new();
    collect_segments(dir, &mut segments)?;
    let completed = segments.iter().filter(|(path, _)| {
        let next = next_segment_name(path);
        next.is_some_and(|next| next.exists())
    });
    let best = completed
        .max_by_key(|(_, len)| *len)
        .or_else(|| segments.iter().max_by_key(|(_, len)| *len));
    best.map(|(path, _)| path.clone())
        .ok_or_else(|| CliError::usage(format!("no segment files in {}", dir.display())))
}

fn next_segment_name(path: &Path) -> Option<PathBuf> {
    let stem = path.file_stem()?.to_str()?;
    let number: u32 = stem.parse().ok()?;
    let width = stem.len();
    Some(path.with_file_name(format!("{:0width$}.seg", number + 1)))
}

fn collect_segments(dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> Result<(), CliError> {
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        let meta = entry.metadata().map_err(|e| io_error(&path, e))?;
        if meta.is_dir() {
            collect_segments(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "seg") {
            out.push((path, meta.len()));
        }
    }
    Ok(())
}

fn io_error(path: &Path, error: std::io::Error) -> CliError {
    CliError::usage(format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_segment_names_keep_their_width() {
        let next = next_segment_name(Path::new("/s/1/00000007.seg")).unwrap();
        assert_eq!(next, Path::new("/s/1/00000008.seg"));
        assert!(next_segment_name(Path::new("/s/1/manifest.json")).is_none());
    }
}
