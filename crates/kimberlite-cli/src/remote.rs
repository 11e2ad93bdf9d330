//! The event commands against a `kimberlite serve` server (`--server URL`), through
//! `kimberlite-client`. Output is the same as against a store directory, so scripts read
//! both alike; what only a directory has (recovery notes, anchors, kept torn tails) is not
//! printed.

use std::io::Write;
use std::process::ExitCode;

use kimberlite::{Bytes, Event, Offset};
use kimberlite_client::{Client, ErrorKind, VerifyReport};

use crate::batch::batches;
use crate::error::CliError;
use crate::print::{not_text, print_event, Unprinted};

/// `append --server`: the lines as atomic batches, each acknowledged once durable. With
/// `expect`, the first batch must start there; each later batch must start where the one
/// before ended, so nothing from another writer lands in between unnoticed.
pub fn append(
    client: &Client,
    stream: &str,
    lines: &[Bytes],
    create: bool,
    expect: Option<u64>,
) -> Result<ExitCode, CliError> {
    if create {
        ensure_stream(client, stream)?;
    }
    let mut expected = expect;
    let mut first = None;
    let mut last = None;
    for batch in batches(lines) {
        let appended = client.append(stream, batch, expected)?;
        first.get_or_insert(appended.first_offset);
        expected = Some(appended.next_offset);
        last = Some(appended);
    }
    if let (Some(first), Some(last)) = (first, last) {
        outln!(
            "appended {} events to {:?} at offsets {}..{}; next offset {}, head {}",
            lines.len(),
            stream,
            first,
            last.next_offset.saturating_sub(1),
            last.next_offset,
            last.head
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates `stream` unless it exists (`--create`; creating needs `admin`).
fn ensure_stream(client: &Client, stream: &str) -> Result<(), CliError> {
    match client.stream(stream) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == Some(&ErrorKind::NotFound) => {
            match client.create_stream(stream) {
                // Another writer created it in between: what --create asked for holds.
                Err(error) if error.kind() == Some(&ErrorKind::Conflict) => Ok(()),
                other => other.map(|_| ()).map_err(CliError::from),
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// `read --server`: verified events from `from`, a page at a time, at most `limit`.
pub fn read(
    client: &Client,
    stream: &str,
    from: u64,
    limit: Option<u64>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let mut out = std::io::stdout().lock();
    let events = client.events(stream, from);
    let events = match limit {
        Some(limit) => events.limit(limit),
        None => events,
    };
    for event in events {
        if let Printed::Closed = print(&mut out, event?, stream, json, "read")? {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tail --server`: follows the stream over server-sent events until interrupted or the
/// server ends it. Without `from`, only events appended from now on.
pub fn tail(
    client: &Client,
    stream: &str,
    from: Option<u64>,
    json: bool,
) -> Result<ExitCode, CliError> {
    let from = match from {
        Some(from) => from,
        None => client.stream(stream)?.next_offset,
    };
    let mut out = std::io::stdout().lock();
    for event in client.tail(stream, from)? {
        if let Printed::Closed = print(&mut out, event?, stream, json, "tail")? {
            return Ok(ExitCode::SUCCESS);
        }
        if out.flush().is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether an event was printed or standard output is closed.
enum Printed {
    Yes,
    Closed,
}

fn print(
    out: &mut impl Write,
    event: kimberlite_client::Event,
    stream: &str,
    json: bool,
    command: &str,
) -> Result<Printed, CliError> {
    let event = Event {
        offset: Offset::new(event.offset),
        payload: Bytes::from(event.payload),
    };
    match print_event(out, &event, json) {
        Ok(()) => Ok(Printed::Yes),
        Err(Unprinted::Closed) => Ok(Printed::Closed),
        Err(Unprinted::NotText) => {
            let _ = out.flush();
            Err(not_text(&event, stream, command))
        }
    }
}

/// `verify --server STREAM`: the server's report; exit 1 when it is not intact.
pub fn verify(client: &Client, stream: &str, json: bool) -> Result<ExitCode, CliError> {
    let report = client.verify(stream)?;
    if json {
        outln!("{}", report.raw);
    } else {
        print_report(client, stream, &report);
    }
    if report.intact {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::Tampered)
    }
}

fn print_report(client: &Client, stream: &str, report: &VerifyReport) {
    outln!("verified {stream:?} on {}", client.base_url());
    for problem in &report.problems {
        let mut place = Vec::new();
        if let Some(offset) = problem.offset {
            place.push(format!("offset {offset}"));
        }
        if let Some(file) = &problem.file {
            place.push(format!("file {file}"));
        }
        if let Some(position) = problem.position {
            place.push(format!("byte {position}"));
        }
        outln!(
            "  TAMPERED  {} {}: {}",
            problem.stream.as_deref().unwrap_or(stream),
            place.join(", "),
            problem.reason
        );
    }
    if report.intact {
        outln!(
            "intact: {} records, head {}",
            report.records_checked,
            report.head.as_deref().unwrap_or("-")
        );
    } else {
        outln!("NOT INTACT: {} problem(s)", report.problems.len());
    }
}

/// `checkpoint --server STREAM`: the server signs its stream's current tree head; printed as
/// the signed note.
pub fn checkpoint(client: &Client, stream: &str) -> Result<ExitCode, CliError> {
    let note = client.checkpoint(stream)?;
    print!("{note}");
    Ok(ExitCode::SUCCESS)
}
