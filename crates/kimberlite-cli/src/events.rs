//! `append`, `read` and `tail`: events in and out of a stream.
//!
//! `append` reads one event per line (the line ending is dropped, blank lines are skipped) and
//! appends them in batches of [`APPEND_BATCH_EVENTS`]; each batch is atomic (a crash in the
//! middle of one leaves none of it) and durable before the next is written, and the active
//! segment's index is written after it, so the next open need not rescan what the batches
//! wrote. It prints where the import starts and how to resume it (`import`). `read` and `tail` print one event per line: the payload as text, or
//! with `--json` a JSON object per line holding the offset and the payload (as a string when it
//! is UTF-8, as hex otherwise). As text, an event that is not UTF-8 stops the command with an
//! error pointing to `--json`: a replacement character would print a byte that is not stored.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use kimberlite::{Bytes, Config, Error, ExpectedOffset, Offset};

use crate::batch::APPEND_BATCH_EVENTS;
use crate::error::CliError;
use crate::import::{already_imported, resume_command, Lines};
use crate::open::{
    announce_recovery, find_stream, open_existing, open_looking, open_read_only, open_waiting,
    LOCK_WAIT,
};
use crate::place::{Located, Place, ServerArgs};
use crate::print::{not_text, Unprinted};
use crate::sealed_print::{print_opened, Opener};

#[derive(Debug, Args)]
#[command(
    override_usage = "kimberlite append [OPTIONS] DIR STREAM\n       kimberlite append [OPTIONS] --server URL [--token-file FILE] STREAM"
)]
pub struct AppendArgs {
    /// DIR STREAM: the store's directory and the stream to append to; with --server, STREAM only.
    #[arg(value_names = ["DIR", "STREAM"], num_args = 1..=2, required = true)]
    place: Vec<OsString>,
    /// Read events from this file instead of standard input (one event per line).
    #[arg(long, short, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Create the stream (and the store, if DIR does not exist yet) when missing.
    #[arg(long)]
    create: bool,
    /// Refuse to append unless the stream's next offset is exactly N (optimistic concurrency:
    /// pass the next offset you last saw; 0 means the stream must be empty).
    #[arg(long, value_name = "N", conflicts_with = "resume_from")]
    expect: Option<u64>,
    /// Resume an interrupted append of the same input that started at offset START (the
    /// offset it printed): the stream's events from START must be the input's first lines,
    /// one by one; the rest is appended. Anything else is refused with nothing written.
    #[arg(long, value_name = "START")]
    resume_from: Option<u64>,
    /// Seal every event for this data subject (encrypted with its own key, which `erase`
    /// destroys); needs --master-key. Not with --resume-from or --server.
    #[arg(
        long,
        value_name = "SUBJECT",
        requires = "master_key",
        conflicts_with_all = ["resume_from", "server"]
    )]
    subject: Option<String>,
    /// The master key file (from `kimberlite master-keygen`), with --subject.
    #[arg(long, value_name = "FILE", requires = "subject")]
    master_key: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "kimberlite read [OPTIONS] DIR STREAM\n       kimberlite read [OPTIONS] --server URL [--token-file FILE] STREAM"
)]
pub struct ReadArgs {
    /// DIR STREAM: the store's directory and the stream to read; with --server, STREAM only.
    #[arg(value_names = ["DIR", "STREAM"], num_args = 1..=2, required = true)]
    place: Vec<OsString>,
    /// First offset to print (default: the stream's first, the first kept after `retain`).
    #[arg(long, value_name = "N")]
    from: Option<u64>,
    /// Print at most N events.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Print JSON lines: {"offset":N,"payload":"..."} (or "payload_hex" for binary events;
    /// "sealed", "erased" or "unreadable" for events sealed for a data subject).
    #[arg(long)]
    json: bool,
    /// Open events sealed for a data subject with this master key file; without it they are
    /// printed as sealed (or erased), never as their encrypted bytes. Not with --server.
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    master_key: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "kimberlite tail [OPTIONS] DIR STREAM\n       kimberlite tail [OPTIONS] --server URL [--token-file FILE] STREAM"
)]
pub struct TailArgs {
    /// DIR STREAM: the store's directory and the stream to follow; with --server, STREAM only.
    #[arg(value_names = ["DIR", "STREAM"], num_args = 1..=2, required = true)]
    place: Vec<OsString>,
    /// First offset to print (default: only events appended from now on).
    #[arg(long, value_name = "N")]
    from: Option<u64>,
    /// Print JSON lines, as `read --json`.
    #[arg(long)]
    json: bool,
    /// How often to look for new events, in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    interval_ms: u64,
    /// Stop after this many polls (for scripts and tests; default: follow until interrupted).
    #[arg(long, value_name = "N", hide = true)]
    polls: Option<u64>,
    #[command(flatten)]
    server: ServerArgs,
}

pub fn append(args: &AppendArgs) -> Result<ExitCode, CliError> {
    let located = Located::split("append", &args.server, args.place.clone(), &["STREAM"], 1)?;
    let stream = located.required(0)?;
    let lines = read_lines(args.file.as_deref())?;
    if lines.events.is_empty() {
        return Err(CliError::usage_hint(
            "no events to append: the input has no non-blank lines",
            "pass events one per line on standard input, or with --file FILE",
        ));
    }
    // Checked before anything is opened or created: input the store would refuse must not
    // leave a new store or stream behind.
    if let Some((index, event)) = (0..)
        .zip(&lines.events)
        .find(|(_, event)| event.len() > kimberlite::MAX_EVENT_BYTES)
    {
        return Err(CliError::usage(format!(
            "event {} (line {} of {}) is {} bytes, over the limit of {} bytes per event; \
             nothing was written",
            index + 1,
            lines.numbers.get(index).copied().unwrap_or_default(),
            lines.source,
            event.len(),
            kimberlite::MAX_EVENT_BYTES
        )));
    }
    let dir = match &located.place {
        Place::Server(_) if args.resume_from.is_some() => {
            return Err(CliError::usage(
                "--resume-from works on a store directory, not with --server; against a \
                 server, append the rest with --expect NEXT_OFFSET",
            ))
        }
        Place::Server(client) => {
            return crate::remote::append(client, stream, &lines.events, args.create, args.expect)
        }
        Place::Dir(dir) => dir,
    };
    append_local(args, dir, stream, &lines)
}

/// `append` into the store in `dir`: atomic, synced batches, resumable (`import`).
fn append_local(
    args: &AppendArgs,
    dir: &Path,
    stream: &str,
    lines: &Lines,
) -> Result<ExitCode, CliError> {
    let store = if args.create {
        let store = open_waiting(dir, Config::default(), LOCK_WAIT)?;
        announce_recovery(&store);
        store
    } else {
        open_existing(dir, Config::default())?
    };
    let id = match (store.stream(stream), args.create) {
        (Some(id), _) => id,
        (None, true) => store.create_stream(stream)?,
        (None, false) => find_stream(&store, dir, stream)?,
    };
    let (start, done) = match args.resume_from {
        Some(start) => {
            let start = Offset::new(start);
            let done = already_imported(&store, id, stream, start, lines)?;
            (start, done)
        }
        None => (
            args.expect.map_or(store.head(id)?.next_offset, Offset::new),
            0,
        ),
    };
    let total = lines.events.len();
    let program = std::env::args()
        .next()
        .unwrap_or_else(|| "kimberlite".to_owned());
    let resume = resume_command(&program, dir, stream, args.file.as_deref(), start);
    if done > 0 {
        eprintln!(
            "kimberlite: {done} of the {total} events of {} are already in {stream:?} from \
             offset {start}",
            lines.source
        );
    }
    let todo = lines.events.get(done..).unwrap_or_default();
    let Some(mut expected) = start.checked_add(done as u64) else {
        return Err(CliError::usage("the offsets of this import overflow"));
    };
    if todo.is_empty() {
        outln!(
            "nothing to append: all {total} events of {} are in {stream:?} at offsets {}..{}",
            lines.source,
            start,
            expected.as_u64().saturating_sub(1)
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "kimberlite: appending {} events to {stream:?} from offset {expected} in atomic \
         batches of {APPEND_BATCH_EVENTS}; if interrupted, resume with:\n  {resume}",
        todo.len()
    );
    let keys = match &args.master_key {
        Some(path) => Some(crate::erase::open_keys(&store, path)?),
        None => None,
    };
    let batches = todo.len().div_ceil(APPEND_BATCH_EVENTS);
    let mut written = done;
    let mut last = None;
    for chunk in todo.chunks(APPEND_BATCH_EVENTS) {
        let at = ExpectedOffset::Exact(expected);
        let result = match (&keys, &args.subject) {
            (Some(keys), Some(subject)) => keys.append(id, subject, chunk.iter(), at),
            _ => store.append(id, chunk.iter().cloned(), at),
        }
        .map_err(|error| match error {
            Error::OffsetConflict { .. } => CliError::Store {
                error,
                hint: Some("read the stream again and retry with its next offset".to_owned()),
            },
            error => CliError::from(error),
        })?;
        // Persists the active segment's index (with its resume point), so an open after a
        // crash scans only what came after this batch, not the whole segment.
        store.flush_indexes()?;
        written += chunk.len();
        if batches > 1 {
            eprintln!(
                "kimberlite: durable: events {}..{written} of {total} at offsets {}..{}",
                written - chunk.len() + 1,
                result.first_offset,
                result.next_offset.as_u64().saturating_sub(1)
            );
        }
        expected = result.next_offset;
        last = Some(result);
    }
    if let Some(last) = last {
        outln!(
            "appended {} events to {stream:?} at offsets {}..{}; next offset {}, head {}",
            todo.len(),
            start.as_u64() + done as u64,
            last.next_offset.as_u64().saturating_sub(1),
            last.next_offset,
            last.head
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Non-blank lines of `file` or standard input, line endings dropped, with their line numbers.
fn read_lines(file: Option<&std::path::Path>) -> Result<Lines, CliError> {
    let (reader, source): (Box<dyn BufRead>, String) = match file {
        Some(path) => {
            let handle = std::fs::File::open(path).map_err(|error| {
                CliError::usage(format!("cannot read {}: {error}", path.display()))
            })?;
            (Box::new(BufReader::new(handle)), path.display().to_string())
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("reading events from standard input, one per line; end with Ctrl-D");
            }
            (Box::new(stdin.lock()), "standard input".to_owned())
        }
    };
    let mut events = Vec::new();
    let mut numbers = Vec::new();
    for (number, line) in (1..).zip(reader.split(b'\n')) {
        let mut line =
            line.map_err(|error| CliError::usage(format!("cannot read {source}: {error}")))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            events.push(Bytes::from(line));
            numbers.push(number);
        }
    }
    Ok(Lines {
        events,
        numbers,
        source,
    })
}

pub fn read(args: &ReadArgs) -> Result<ExitCode, CliError> {
    let located = Located::split("read", &args.server, args.place.clone(), &["STREAM"], 1)?;
    let stream = located.required(0)?;
    let dir = match &located.place {
        Place::Server(client) => {
            let from = args.from.unwrap_or(0);
            return crate::remote::read(client, stream, from, args.limit, args.json);
        }
        Place::Dir(dir) => dir,
    };
    let limit = args.limit.unwrap_or(u64::MAX);
    let store = open_looking(dir)?;
    let id = find_stream(&store, dir, stream)?;
    let opener = Opener::new(&store, args.master_key.as_deref())?;
    let mut out = std::io::stdout().lock();
    let from = match args.from {
        Some(from) => Offset::new(from),
        None => store.first_offset(id)?,
    };
    for event in store.events(id, from).take(clamp(limit)) {
        let event = event?;
        let opened = opener.open(id, event.clone())?;
        match print_opened(&mut out, &opened, args.json) {
            Ok(()) => {}
            // Standard output closed (e.g. piped into `head`): stop quietly.
            Err(Unprinted::Closed) => break,
            Err(Unprinted::NotText) => return Err(not_text(&event, stream, "read")),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn tail(args: &TailArgs) -> Result<ExitCode, CliError> {
    let located = Located::split("tail", &args.server, args.place.clone(), &["STREAM"], 1)?;
    let stream = located.required(0)?;
    match &located.place {
        Place::Server(client) => crate::remote::tail(client, stream, args.from, args.json),
        Place::Dir(dir) => tail_local(args, dir, stream),
    }
}

/// `tail` of a stream in the store in `dir`: a read-only open per poll.
fn tail_local(args: &TailArgs, dir: &Path, stream: &str) -> Result<ExitCode, CliError> {
    // What recovery said at the last open that said anything: damage left in place is found
    // again at every open, and is told once, not at every poll.
    let mut told;
    let mut next = {
        let store = open_looking(dir)?;
        told = store.recovery_report().actions;
        let id = find_stream(&store, dir, stream)?;
        match args.from {
            Some(from) => Offset::new(from),
            None => store.head(id)?.next_offset,
        }
    };
    let mut polls = 0u64;
    let mut out = std::io::stdout().lock();
    loop {
        // Reopen read-only for every poll (no lock: the writers being followed are never
        // held up), seeing what they have written since.
        match open_read_only(dir).inspect(|store| {
            let actions = store.recovery_report().actions;
            if !actions.is_empty() && actions != told {
                announce_recovery(store);
                told = actions;
            }
        }) {
            Ok(store) => {
                let id = find_stream(&store, dir, stream)?;
                let opener = Opener::new(&store, None)?;
                for event in store.events(id, next) {
                    let event = event?;
                    let opened = opener.open(id, event.clone())?;
                    match print_opened(&mut out, &opened, args.json) {
                        Ok(()) => {}
                        Err(Unprinted::Closed) => return Ok(ExitCode::SUCCESS),
                        Err(Unprinted::NotText) => {
                            let _ = out.flush();
                            return Err(not_text(&event, stream, "tail"));
                        }
                    }
                    next = Offset::new(event.offset.as_u64() + 1);
                }
                if out.flush().is_err() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Err(CliError::Store {
                error: Error::Locked { .. },
                ..
            }) => {} // A writer has it right now; look again at the next poll.
            Err(error) => return Err(error),
        }
        polls += 1;
        if args.polls.is_some_and(|max| polls >= max) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms));
    }
}

fn clamp(limit: u64) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}
