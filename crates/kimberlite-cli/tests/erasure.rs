//! `master-keygen`, `append --subject`, `read --master-key` and `erase` through the real
//! binary: sealed events read back only with the master key, an erasure leaves them erased,
//! the store intact and no byte of the plaintext in any of its files.

mod common;

use std::path::{Path, PathBuf};

use common::{fails, ok, s};

fn every_file(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            every_file(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    every_file(dir, &mut files);
    files
        .into_iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .collect()
}

#[test]
fn erase_a_subject_from_the_command_line() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let master = temp.path().join("master.key");
    let other = temp.path().join("other.key");
    ok(&["master-keygen", "--out", s(&master)], "");
    ok(&["master-keygen", "--out", s(&other)], "");
    fails(&["master-keygen", "--out", s(&master)], "", 2, "exists");
    let secret = "P-0042 diagnosis: confidential oncology";
    ok(&["append", s(&dir), "records", "--create"], "plain first\n");
    let appended = ok(
        &[
            "append",
            s(&dir),
            "records",
            "--subject",
            "patient-42",
            "--master-key",
            s(&master),
        ],
        &format!("{secret}\n{secret} again\n"),
    );
    assert!(appended.contains("appended 2 events"), "{appended}");
    ok(
        &[
            "append",
            s(&dir),
            "records",
            "--subject",
            "patient-43",
            "--master-key",
            s(&master),
        ],
        "P-0043 stays\n",
    );
    assert!(files_holding(&dir, secret).is_empty(), "sealed on disk");
    let opened = ok(
        &["read", s(&dir), "records", "--master-key", s(&master)],
        "",
    );
    assert!(
        opened.contains(secret) && opened.contains("P-0043 stays"),
        "{opened}"
    );
    let keyless = ok(&["read", s(&dir), "records"], "");
    assert!(keyless.contains("plain first"), "{keyless}");
    assert!(keyless.contains("[sealed] offset 1"), "{keyless}");
    assert!(!keyless.contains(secret), "{keyless}");
    let json = ok(&["read", s(&dir), "records", "--json"], "");
    assert!(json.contains("\"sealed\""), "{json}");
    // A wrong master key reads nothing.
    let wrong = fails(
        &["read", s(&dir), "records", "--master-key", s(&other)],
        "",
        2,
        "wrong master key",
    );
    assert!(!wrong.stdout.contains("plain first"), "{}", wrong.stdout);
    fails(
        &["erase", s(&dir), "patient-99", "--master-key", s(&master)],
        "",
        2,
        "patient-99",
    );
    let receipt = ok(
        &[
            "erase",
            s(&dir),
            "patient-42",
            "--master-key",
            s(&master),
            "--by",
            "dpo",
        ],
        "",
    );
    assert!(receipt.contains("2 events"), "{receipt}");
    assert!(receipt.contains("_erasure offset 0"), "{receipt}");
    fails(
        &["erase", s(&dir), "patient-42", "--master-key", s(&master)],
        "",
        2,
        "erased already",
    );
    let after = ok(
        &["read", s(&dir), "records", "--master-key", s(&master)],
        "",
    );
    assert!(after.contains("[erased] offset 1: erased on "), "{after}");
    assert!(after.contains("P-0043 stays"), "{after}");
    assert!(!after.contains(secret), "{after}");
    let verified = ok(&["verify", s(&dir)], "");
    assert!(verified.contains("intact:"), "{verified}");
    assert!(files_holding(&dir, secret).is_empty());
    assert!(
        files_holding(&dir, "patient-42").is_empty(),
        "the subject is not stored in clear"
    );
}
