//! `kimberlite monitor` against live servers on loopback: a growing stream passes across
//! runs (its state file remembers); a rollback (an older copy of the store served again) and
//! a fork (that copy given other events, signed with the same key) are caught, naming both
//! sizes and roots, and leave the state as it was. Every loop is bounded (`--once`,
//! `--polls`).

mod common;
mod support;

use std::path::Path;

use common::{fails, ok, s};
use kimberlite::proof::SignerKey;
use kimberlite::ExpectedOffset;
use support::Served;

fn key() -> SignerKey {
    SignerKey::from_seed("log", [33; 32]).unwrap()
}

fn serve(dir: &Path, tmp: &Path) -> Served {
    Served::start(dir, "ehr", &key(), tmp)
}

fn append(served: &Served, events: &[String]) {
    let store = served.state.store();
    let id = match store.stream("audit") {
        Some(id) => id,
        None => store.create_stream("audit").unwrap(),
    };
    store
        .append(id, events.to_vec(), ExpectedOffset::Any)
        .unwrap();
}

fn events(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// `monitor URL --once` with the log key and `state`; returns the run.
fn monitor(served: &Served, state: &Path, extra: &[&str]) -> common::Run {
    let url = format!("{}/v1/streams/audit/tlog/", served.url);
    let pubkey = key().verifier().to_text();
    let mut args = vec![
        "monitor",
        url.as_str(),
        "--log-key",
        pubkey.as_str(),
        "--state",
        s(state),
        "--token-file",
        s(&served.token_file),
    ];
    args.extend_from_slice(extra);
    common::run(&args, "")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_growing_stream_passes_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("monitor.state");
    let served = serve(&tmp.path().join("store"), tmp.path());
    append(&served, &events("a", 3));
    let first = monitor(&served, &state, &["--once"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first
            .stdout
            .starts_with("first checkpoint of ehr/audit: size 3, root "),
        "{}",
        first.stdout
    );
    // Past a full tile (256 leaves): the proof needs tiles of two levels.
    append(&served, &events("b", 300));
    let grown = monitor(&served, &state, &["--once"]);
    assert_eq!(grown.code, 0, "{}", grown.stderr);
    assert!(
        grown.stdout.starts_with("consistent: size 3 -> 303"),
        "{}",
        grown.stdout
    );
    append(&served, &events("c", 1));
    let polls = monitor(&served, &state, &["--polls", "2", "--interval-ms", "10"]);
    assert_eq!(polls.code, 0, "{}", polls.stderr);
    assert!(
        polls.stdout.contains("consistent: size 303 -> 304"),
        "{}",
        polls.stdout
    );
    assert!(
        polls.stdout.contains("unchanged: size 304"),
        "{}",
        polls.stdout
    );
    // With a policy, each checkpoint says whether its witnesses cosigned it.
    let witness = kimberlite::proof::WitnessSigner::from_seed("w1", [1; 32]).unwrap();
    let policy = tmp.path().join("policy");
    std::fs::write(
        &policy,
        format!("witness {}\nquorum 1\n", witness.verifier().to_text()),
    )
    .unwrap();
    let witnessed = monitor(&served, &state, &["--once", "--witness-policy", s(&policy)]);
    assert_eq!(witnessed.code, 0, "{}", witnessed.stderr);
    assert!(
        witnessed.stdout.contains("NOT witnessed"),
        "{}",
        witnessed.stdout
    );
    // Requiring witnesses: an unwitnessed checkpoint is evidence (exit 1), the state kept.
    let kept = std::fs::read(&state).unwrap();
    append(&served, &events("late", 3));
    let required = monitor(
        &served,
        &state,
        &[
            "--once",
            "--witness-policy",
            s(&policy),
            "--require-witnessed",
        ],
    );
    assert_eq!(required.code, 1, "{}{}", required.stdout, required.stderr);
    assert!(
        required.stdout.contains("NOT WITNESSED"),
        "{}",
        required.stdout
    );
    assert_eq!(std::fs::read(&state).unwrap(), kept, "state moved");
    // The state belongs to this log: another key is a usage error, nothing checked.
    let other = SignerKey::from_seed("log", [34; 32])
        .unwrap()
        .verifier()
        .to_text();
    let url = format!("{}/v1/streams/audit/tlog/", served.url);
    fails(
        &[
            "monitor",
            &url,
            "--log-key",
            &other,
            "--state",
            s(&state),
            "--once",
        ],
        "",
        2,
        "not a checkpoint signed by the log key",
    );
    served.stop();
    // A server that is gone: with --once, exit 2 (not evidence).
    let gone = common::run(
        &[
            "monitor",
            &url,
            "--log-key",
            &key().verifier().to_text(),
            "--state",
            s(&state),
            "--once",
        ],
        "",
    );
    assert_eq!(gone.code, 2, "{}{}", gone.stdout, gone.stderr);
}

#[test]
fn a_rollback_and_a_fork_are_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("monitor.state");
    let (dir, backup) = (
        tmp.path().join("store"),
        tmp.path().join("backup").join("store"),
    );
    let served = serve(&dir, tmp.path());
    append(&served, &events("a", 3));
    assert_eq!(monitor(&served, &state, &["--once"]).code, 0);
    served.stop();
    copy_dir(&dir, &backup);
    let served = serve(&dir, tmp.path());
    append(&served, &events("b", 2));
    let seen = monitor(&served, &state, &["--once"]);
    assert!(
        seen.stdout.starts_with("consistent: size 3 -> 5"),
        "{}",
        seen.stdout
    );
    served.stop();
    let kept = std::fs::read_to_string(&state).unwrap();
    assert!(kept.contains("\n5\n"), "{kept}");

    // The older copy, served again under the same name and key.
    let old = serve(&backup, tmp.path());
    let rollback = monitor(&old, &state, &["--once"]);
    assert_eq!(rollback.code, 1, "{}{}", rollback.stdout, rollback.stderr);
    assert!(
        rollback
            .stdout
            .starts_with("ROLLBACK: the log showed size 5 (root "),
        "{}",
        rollback.stdout
    );
    assert!(
        rollback.stdout.contains("now size 3 (root "),
        "{}",
        rollback.stdout
    );
    // The copy forks: other events up to the size seen, then past it.
    append(&old, &events("x", 2));
    let split = monitor(&old, &state, &["--once"]);
    assert_eq!(split.code, 1, "{}{}", split.stdout, split.stderr);
    assert!(
        split
            .stdout
            .starts_with("SPLIT VIEW: the log showed size 5 with root "),
        "{}",
        split.stdout
    );
    append(&old, &events("y", 1));
    let fork = monitor(&old, &state, &["--polls", "3", "--interval-ms", "10"]);
    assert_eq!(fork.code, 1, "{}{}", fork.stdout, fork.stderr);
    assert!(
        fork.stdout
            .starts_with("INCONSISTENT: the checkpoint of size 6 (root "),
        "{}",
        fork.stdout
    );
    assert!(
        fork.stdout.contains("the one of size 5 (root "),
        "{}",
        fork.stdout
    );
    // Nothing the forked log showed was kept.
    assert_eq!(std::fs::read_to_string(&state).unwrap(), kept);
    old.stop();
    ok(&["verify", s(&dir)], "");
}
