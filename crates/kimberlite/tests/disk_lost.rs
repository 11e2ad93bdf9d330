//! Lost data is never intact: a removed `streams/` directory, a removed stream directory and
//! an active segment cut back are reported as tampered, naming the stream, the missing events
//! and the file of the store that says they existed (Merkle leaves, a kept checkpoint).

use std::path::Path;

use kimberlite::{Config, Error, ExpectedOffset, Kimberlite, Offset, StreamId};

fn stream_dir(store: &Path, id: StreamId) -> std::path::PathBuf {
    store.join("streams").join(format!("{:020}", id.as_u64()))
}

/// A store with streams `a` (300 events) and `b` (40 events).
fn store(dir: &Path, config: Config) -> (StreamId, StreamId) {
    let store = Kimberlite::open_with(dir, config).unwrap();
    let a = store.create_stream("a").unwrap();
    let b = store.create_stream("b").unwrap();
    let events: Vec<String> = (0..300).map(|i| format!("event {i:04}")).collect();
    store.append(a, events, ExpectedOffset::NoStream).unwrap();
    let events: Vec<String> = (0..40).map(|i| format!("other {i:04}")).collect();
    store.append(b, events, ExpectedOffset::NoStream).unwrap();
    (a, b)
}

#[test]
fn removing_the_streams_directory_is_tampering() {
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = store(temp.path(), Config::default());
    std::fs::remove_dir_all(temp.path().join("streams")).unwrap();

    let store = Kimberlite::open(temp.path()).unwrap();
    let report = store.verify_all().unwrap();
    assert!(!report.is_intact());
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!((problem.stream, problem.offset), (a, Offset::ZERO));
    assert!(
        problem.reason.contains("events 0..300"),
        "{}",
        problem.reason
    );
    let leaves = problem.file.as_deref().unwrap();
    assert!(leaves.ends_with("level-00.hashes"), "{}", leaves.display());
    assert_eq!(report.problems[1].stream, b);
    // The evidence is kept, and no new stream takes a lost stream's id.
    assert!(store.create_stream("c").is_err());
    drop(store);
    assert_eq!(std::fs::metadata(leaves).unwrap().len(), 300 * 32);
    let store = Kimberlite::open(temp.path()).unwrap();
    assert!(!store.verify_all().unwrap().is_intact());
}

#[test]
fn removing_one_stream_directory_is_tampering() {
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = store(temp.path(), Config::default());
    std::fs::remove_dir_all(stream_dir(temp.path(), b)).unwrap();

    let store = Kimberlite::open(temp.path()).unwrap();
    let report = store.verify_all().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = report.first_problem().unwrap();
    assert_eq!(problem.name.as_deref(), Some("b"));
    assert!(
        problem.reason.contains("events 0..40"),
        "{}",
        problem.reason
    );
    assert!(!store.verify(b).unwrap().is_intact());
    assert!(store.verify(a).unwrap().is_intact());
    let refused = store.append(b, ["x"], ExpectedOffset::Any).unwrap_err();
    assert!(
        matches!(
            refused,
            Error::StreamLost {
                held: 0,
                claimed: 40,
                ..
            }
        ),
        "{refused}"
    );
    assert!(refused.is_corruption());
    assert_eq!(store.head(b).unwrap().next_offset, Offset::ZERO);
}

#[test]
fn an_active_segment_cut_back_is_tampering() {
    let temp = tempfile::tempdir().unwrap();
    let (a, _) = store(temp.path(), Config::default());
    let segment = stream_dir(temp.path(), a).join("00000000.seg");
    let len = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);

    let store = Kimberlite::open(temp.path()).unwrap();
    let report = store.verify_all().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = report.first_problem().unwrap();
    assert_eq!(problem.name.as_deref(), Some("a"));
    assert!(problem.offset.as_u64() < 300);
    assert!(
        problem.reason.contains("..300 are missing"),
        "{}",
        problem.reason
    );
}

/// Without Merkle trees, a checkpoint kept in the store is the evidence.
#[test]
fn a_kept_checkpoint_longer_than_the_log_is_tampering() {
    let temp = tempfile::tempdir().unwrap();
    let (a, _) = store(temp.path(), Config::default().merkle_trees(false));
    let kept = temp
        .path()
        .join(kimberlite::CHECKPOINT_DIR)
        .join(format!("{:020}", a.as_u64()));
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(
        kept.join(format!("{:020}.checkpoint", 300)),
        "a checkpoint\n",
    )
    .unwrap();
    let store_ok = Kimberlite::open_with(temp.path(), Config::default().merkle_trees(false));
    assert!(store_ok.unwrap().verify_all().unwrap().is_intact());
    std::fs::remove_dir_all(stream_dir(temp.path(), a)).unwrap();

    let store = Kimberlite::open_with(temp.path(), Config::default().merkle_trees(false)).unwrap();
    let report = store.verify_all().unwrap();
    let problem = report.first_problem().unwrap();
    assert_eq!(problem.stream, a);
    assert!(problem.reason.contains("checkpoint"), "{}", problem.reason);
}
