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
use kimberlite::{Config, Error, ExpectedOffset, Kimberlite, Offset, StreamId};

use crate::check::label;
use crate::common::{describe_problem, human_bytes, progress_bar, short_hash, thousands, CliError};

/// The demo's busiest stream.
const ACCESS_STREAM: &str = "patient-record-access";

/// The demo's streams and their share of the events (in percent).
const STREAMS: [(&str, u64); 4] = [
    (ACCESS_STREAM, 55),
    ("prescriptions", 20),
    ("billing-exports", 15),
    ("staff-logins", 10),
];

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
    drop(store); // Release the store before copying it.

    let copy = scratch.path().join("tampered-copy");
    tamper_with_copy(&dir, &copy, &config)?;
    let still = Kimberlite::open_with(&dir, config)?.verify_all()?;
    outln!(
        "   The original store still verifies intact: {}.",
        if still.is_intact() { "yes" } else { "NO" }
    );

    outln!(
        "\nSummary: {} events in {} streams, {} records verified; one flipped bit in a copy was \
         caught at the exact stream and offset.",
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
        "4. Verified every record from the first: {} records, {} segments, {} checkpoints, \
         {} checked in {seconds:.2} s: {}",
        thousands(report.records_checked()),
        report.segments_checked(),
        thousands(report.checkpoints_checked()),
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

fn copy_dir(from: &Path, to: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(to).map_err(|e| io_error(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io_error(from, e))? {
        let entry = entry.map_err(|e| io_error(from, e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = entry.metadata().map_err(|e| io_error(&source, e))?;
        if meta.is_dir() {
            copy_dir(&source, &target)?;
        } else if !entry.file_name().to_string_lossy().ends_with(".lock") {
            std::fs::copy(&source, &target).map_err(|e| io_error(&source, e))?;
        }
    }
    Ok(())
}

fn io_error(path: &Path, error: std::io::Error) -> CliError {
    CliError::usage(format!("{}: {error}", path.display()))
}

/// Deterministic generator of realistic audit events (SplitMix64; no dependency needed).
struct AuditGenerator {
    state: u64,
}

const CLINICIANS: [&str; 8] = [
    "dr.okafor",
    "dr.chen",
    "dr.haddad",
    "nurse.silva",
    "nurse.kowalski",
    "dr.nguyen",
    "pharm.ito",
    "dr.moreau",
];
const RESOURCES: [&str; 6] = [
    "lab-results",
    "imaging",
    "medications",
    "discharge-summary",
    "allergies",
    "vitals",
];
const REASONS: [&str; 4] = [
    "treatment",
    "consult",
    "emergency-access",
    "care-coordination",
];

impl AuditGenerator {
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        let index = (self.next() % from.len() as u64) as usize;
        from.get(index).copied().unwrap_or_default()
    }

    fn pick_stream(&mut self) -> usize {
        let mut roll = self.next() % 100;
        for (index, (_, share)) in STREAMS.iter().enumerate() {
            if roll < *share {
                return index;
            }
            roll -= share;
        }
        0
    }

    fn event(&mut self, stream: usize, n: u64) -> String {
        let seconds = 8 * 3600 + n * 7 + self.next() % 7;
        let ts = format!(
            "2026-03-14T{:02}:{:02}:{:02}.{:03}Z",
            (seconds / 3600) % 24,
            (seconds / 60) % 60,
            seconds % 60,
            self.next() % 1000
        );
        let actor = self.pick(&CLINICIANS);
        let patient = format!("P-{:06}", self.next() % 40_000);
        let session = format!("{:016x}", self.next());
        let ip = format!(
            "10.{}.{}.{}",
            self.next() % 8,
            self.next() % 256,
            self.next() % 256
        );
        match stream {
            0 => format!(
                r#"{{"ts":"{ts}","event":"record.viewed","actor":"{actor}","patient":"{patient}","resource":"{}","reason":"{}","ip":"{ip}","session":"{session}"}}"#,
                self.pick(&RESOURCES),
                self.pick(&REASONS)
            ),
            1 => format!(
                r#"{{"ts":"{ts}","event":"prescription.signed","actor":"{actor}","patient":"{patient}","drug":"rx-{:05}","dose_mg":{},"refills":{},"session":"{session}"}}"#,
                self.next() % 20_000,
                5 * (1 + self.next() % 100),
                self.next() % 4
            ),
            2 => format!(
                r#"{{"ts":"{ts}","event":"claims.exported","actor":"billing.batch","patients":{},"payer":"payer-{:03}","amount_cents":{},"file":"claims-{n:06}.x12"}}"#,
                1 + self.next() % 200,
                self.next() % 40,
                self.next() % 10_000_000
            ),
            _ => format!(
                r#"{{"ts":"{ts}","event":"staff.login","actor":"{actor}","method":"{}","ip":"{ip}","ok":{}}}"#,
                if self.next().is_multiple_of(3) {
                    "badge+pin"
                } else {
                    "sso"
                },
                !self.next().is_multiple_of(20)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_events_are_json() {
        let mut generator = AuditGenerator::new(1);
        for stream in 0..STREAMS.len() {
            let event = generator.event(stream, 42);
            let value: serde_json::Value = serde_json::from_str(&event).unwrap();
            assert!(value.get("event").is_some(), "{event}");
        }
        let shares: u64 = STREAMS.iter().map(|(_, share)| share).sum();
        assert_eq!(shares, 100);
    }

    #[test]
    fn next_segment_names_keep_their_width() {
        let next = next_segment_name(Path::new("/s/1/00000007.seg")).unwrap();
        assert_eq!(next, Path::new("/s/1/00000008.seg"));
        assert!(next_segment_name(Path::new("/s/1/manifest.json")).is_none());
    }
}
