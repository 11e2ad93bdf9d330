//! How verification reports name streams and problems, and what recovery did on open: the
//! wording `verify`, `inspect` and `demo` share.

use std::fmt::Write as _;

use kimberlite::{Kimberlite, Problem, StreamId};

/// Prints what the storage layer repaired or found when `store` was opened, if anything.
pub fn print_recovery(store: &Kimberlite) {
    for action in store.recovery_report().actions {
        outln!(
            "  note: on open, {}",
            crate::open::recovery_line(store, &action)
        );
    }
}

/// The id shown for a problem about a stream the store does not have at all.
pub const MISSING_STREAM: StreamId = StreamId::new(u64::MAX);
/// How a report names a stream: its name quoted, the catalogue by its label, else its id.
pub fn label(name: Option<&str>, stream: StreamId) -> String {
    match name {
        Some(name) => format!("{name:?}"),
        None if stream.as_u64() == 0 => kimberlite::CATALOG_LABEL.to_owned(),
        None => format!("(unnamed stream {stream})"),
    }
}

/// A verification problem on one line: stream, offset, file, byte, reason.
pub fn describe_problem(problem: &Problem) -> String {
    let name = label(problem.name.as_deref(), problem.stream);
    let mut text = if problem.stream == MISSING_STREAM {
        format!("{name}: missing")
    } else {
        format!("{name} (id {}): offset {}", problem.stream, problem.offset)
    };
    if let Some(file) = &problem.file {
        let _ = write!(text, ", file {}", file.display());
    } else if let Some(segment) = problem.segment {
        let _ = write!(text, ", segment {segment}");
    }
    if let Some(position) = problem.position {
        let _ = write!(text, ", byte {position}");
    }
    let _ = write!(text, ": {}", problem.reason);
    text
}
