//! Resuming an interrupted `append` of a file without duplicates.
//!
//! `append` writes its input in atomic batches, each durable before the next is written (a
//! crash in the middle of one leaves none of it: `docs/INTERNALS.md`, "Recovery", row 10),
//! and before the first it prints the offset where the import starts and the command that
//! resumes it. `--resume-from START` reads the stream from `START` and checks, one by one,
//! that its events are the input's first lines: the batches an interrupted run made durable.
//! Only then does it append the rest, with an exact expected offset, so another writer in
//! between, another file or another start is refused with nothing written.

use std::path::Path;

use kimberlite::{Bytes, Kimberlite, Offset, StreamId};

use crate::error::CliError;

/// The input of an `append`: its events and, for each, the line of the input it came from.
pub struct Lines {
    /// One event per non-blank line.
    pub events: Vec<Bytes>,
    /// The 1-based line number of each event in its input.
    pub numbers: Vec<u64>,
    /// The input's name for messages: the file, or standard input.
    pub source: String,
}

impl Lines {
    fn line_of(&self, index: usize) -> u64 {
        self.numbers.get(index).copied().unwrap_or_default()
    }
}

/// How many of `lines` the stream `name` (`id`) already holds from `start` on, checked one
/// by one: an error, with nothing written, unless the stream's events from `start` to its end
/// are exactly the input's first lines.
pub fn already_imported(
    store: &Kimberlite,
    id: StreamId,
    name: &str,
    start: Offset,
    lines: &Lines,
) -> Result<usize, CliError> {
    let next = store.head(id)?.next_offset;
    if start > next {
        return Err(CliError::usage_hint(
            format!(
                "--resume-from {start} is past the end of stream {name:?} (next offset {next}); \
                 nothing was written"
            ),
            "pass the offset the interrupted append printed when it started",
        ));
    }
    let held = usize::try_from(next.as_u64() - start.as_u64()).unwrap_or(usize::MAX);
    if held > lines.events.len() {
        return Err(CliError::usage(format!(
            "stream {name:?} holds {held} events from offset {start}, more than the {} events of \
             {}: not this import, or more was appended after it; nothing was written",
            lines.events.len(),
            lines.source
        )));
    }
    for (index, event) in store.events(id, start).take(held).enumerate() {
        let event = event?;
        if lines.events.get(index) != Some(&event.payload) {
            return Err(CliError::usage_hint(
                format!(
                    "offset {} of stream {name:?} is not line {} of {}: not the same import or \
                     not the same start; nothing was written",
                    event.offset,
                    lines.line_of(index),
                    lines.source
                ),
                "pass the file and the offset the interrupted append printed when it started",
            ));
        }
    }
    Ok(held)
}

/// The command that resumes an import of `file` (standard input when `None`) into `stream`
/// of the store in `dir`, started at offset `start`, words quoted for a POSIX shell.
pub fn resume_command(
    program: &str,
    dir: &Path,
    stream: &str,
    file: Option<&Path>,
    start: Offset,
) -> String {
    let mut words = vec![
        quote(program),
        "append".to_owned(),
        quote(&dir.display().to_string()),
        quote(stream),
    ];
    if let Some(file) = file {
        words.push("--file".to_owned());
        words.push(quote(&file.display().to_string()));
    }
    words.push("--resume-from".to_owned());
    words.push(start.to_string());
    let command = words.join(" ");
    if file.is_some() {
        command
    } else {
        format!("{command} < (the same input)")
    }
}

/// `word` as a POSIX shell reads it back: bare when it holds only safe characters, else in
/// single quotes.
fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./,:=@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_a_shell_would_split_or_expand_them() {
        assert_eq!(quote("audit-log_2.txt"), "audit-log_2.txt");
        assert_eq!(quote("my store"), "'my store'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn the_resume_command_names_the_file_and_the_start() {
        let command = resume_command(
            "kimberlite",
            Path::new("/data/store"),
            "audit log",
            Some(Path::new("events.txt")),
            Offset::new(120),
        );
        assert_eq!(
            command,
            "kimberlite append /data/store 'audit log' --file events.txt --resume-from 120"
        );
        let piped = resume_command("kimberlite", Path::new("s"), "a", None, Offset::ZERO);
        assert_eq!(
            piped,
            "kimberlite append s a --resume-from 0 < (the same input)"
        );
    }
}
