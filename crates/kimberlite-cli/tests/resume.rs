//! `append` prints where an import starts and how to resume it; `--resume-from` checks the
//! stream against the input line by line and appends only the rest: an interrupted import is
//! finished without duplicates, and anything that is not the same import is refused with
//! nothing written.

mod common;

use common::{fails, ok, run, s, store_with};

/// A file of `count` events (with a blank line after the first, so line numbers and event
/// numbers differ) and the events themselves.
fn import_file(
    dir: &std::path::Path,
    name: &str,
    count: usize,
) -> (std::path::PathBuf, Vec<String>) {
    let events: Vec<String> = (0..count).map(|i| format!("import-{i:06}")).collect();
    let mut text = String::new();
    for (i, event) in events.iter().enumerate() {
        text.push_str(event);
        text.push('\n');
        if i == 0 {
            text.push('\n');
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    (path, events)
}

fn read_stream(dir: &std::path::Path) -> Vec<String> {
    ok(&["read", s(dir), "audit"], "")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn append_prints_where_the_import_starts_and_the_command_that_resumes_it() {
    let (temp, dir) = store_with(3);
    let (file, _) = import_file(temp.path(), "events.txt", 5);
    let run = run(&["append", s(&dir), "audit", "--file", s(&file)], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("from offset 3"), "{}", run.stderr);
    let command = format!(
        "append {} audit --file {} --resume-from 3",
        s(&dir),
        s(&file)
    );
    assert!(run.stderr.contains(&command), "{}", run.stderr);
    // Resuming a finished import appends nothing.
    let again = ok(
        &[
            "append",
            s(&dir),
            "audit",
            "--file",
            s(&file),
            "--resume-from",
            "3",
        ],
        "",
    );
    assert!(again.contains("nothing to append"), "{again}");
    assert_eq!(read_stream(&dir).len(), 8);
}

#[test]
fn an_interrupted_import_resumes_without_duplicates() {
    let (temp, dir) = store_with(3);
    let (file, events) = import_file(temp.path(), "big.txt", 25_000);
    // What an append killed after its first batch leaves: that batch, whole.
    let first_batch: String = events[..10_000].iter().map(|e| format!("{e}\n")).collect();
    ok(&["append", s(&dir), "audit", "--expect", "3"], &first_batch);
    let run = run(
        &[
            "append",
            s(&dir),
            "audit",
            "--file",
            s(&file),
            "--resume-from",
            "3",
        ],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("10000 of the 25000 events"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("appended 15000 events"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("durable: events 20001..25000"),
        "{}",
        run.stderr
    );
    let stream = read_stream(&dir);
    assert_eq!(stream.len(), 3 + 25_000);
    assert_eq!(stream[3..], events[..]);
    ok(&["verify", s(&dir)], "");
}

#[test]
fn anything_but_the_same_import_is_refused_with_nothing_written() {
    let (temp, dir) = store_with(3);
    let (file, events) = import_file(temp.path(), "events.txt", 6);
    let part: String = events[..4].iter().map(|e| format!("{e}\n")).collect();
    ok(&["append", s(&dir), "audit"], &part);
    let resume = |file: &std::path::Path, start: &str| {
        vec![
            "append".to_owned(),
            s(&dir).to_owned(),
            "audit".to_owned(),
            "--file".to_owned(),
            s(file).to_owned(),
            "--resume-from".to_owned(),
            start.to_owned(),
        ]
    };
    let refused = |args: Vec<String>, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, "", 2, needle);
        assert_eq!(read_stream(&dir).len(), 7, "nothing written");
    };
    // The wrong start: offset 2 holds an event of the store, not the file's first line.
    refused(
        resume(&file, "2"),
        "offset 2 of stream \"audit\" is not line 1 of",
    );
    // Another file: its event 3 (line 4, after the blank line) differs.
    let (other, _) = import_file(temp.path(), "other.txt", 6);
    let mut text = std::fs::read_to_string(&other).unwrap();
    text = text.replace("import-000002", "changed");
    std::fs::write(&other, text).unwrap();
    refused(
        resume(&other, "3"),
        "offset 5 of stream \"audit\" is not line 4 of",
    );
    // A start past the end, and a file shorter than what the stream holds from the start.
    refused(resume(&file, "8"), "past the end");
    let (short, _) = import_file(temp.path(), "short.txt", 2);
    refused(resume(&short, "3"), "more than the 2 events");
    // --expect and --resume-from do not go together.
    let mut both = resume(&file, "3");
    both.extend(["--expect".to_owned(), "7".to_owned()]);
    refused(both, "cannot be used with");
    // The right file and start finish the import.
    let args = resume(&file, "3");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&args, "");
    assert_eq!(read_stream(&dir)[3..], events[..]);
}
