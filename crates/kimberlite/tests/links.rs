//! Links inside a store (SPEC.md section 7): the store's own files (the marker, the Merkle
//! levels) are never read or written through a link, and a directory whose only entries have
//! names that are not UTF-8 is not empty.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use kimberlite::{Error, ExpectedOffset, Kimberlite};

/// Every file under `dir` with its bytes, sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A store with one stream of 10 events, its directory, and a directory outside it.
fn store() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let store = Kimberlite::open(&dir).unwrap();
    let id = store.create_stream("s").unwrap();
    let events: Vec<String> = (0..10).map(|i| format!("event {i}")).collect();
    store.append(id, events, ExpectedOffset::NoStream).unwrap();
    store.tree_head(id).unwrap();
    drop(store);
    (root, dir, outside)
}

/// Reads, verifies and asks for the tree head of every stream; what each said, as text.
fn use_store(dir: &Path) -> String {
    let store = match Kimberlite::open(dir) {
        Ok(store) => store,
        Err(error) => return error.to_string(),
    };
    let id = store.stream("s").unwrap();
    let mut said = String::new();
    if let Err(error) = store.read(id, kimberlite::Offset::new(0), 1 << 20) {
        said.push_str(&format!("read: {error}\n"));
    }
    match store.verify_all() {
        Ok(report) => said.push_str(&format!("verify: {report:?}\n")),
        Err(error) => said.push_str(&format!("verify: {error}\n")),
    }
    if let Err(error) = store.tree_head(id) {
        said.push_str(&format!("tree head: {error}\n"));
    }
    said
}

#[test]
fn merkle_levels_behind_links_are_never_written() {
    let (_root, dir, outside) = store();
    let tree = std::fs::read_dir(dir.join("merkle"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // A level the store holds, moved outside behind a link, and levels it will write.
    let level0 = tree.join("level-00.hashes");
    std::fs::rename(&level0, outside.join("level-00")).unwrap();
    symlink(outside.join("level-00"), &level0).unwrap();
    for level in 1..8 {
        let victim = outside.join(format!("victim-{level}"));
        std::fs::write(&victim, b"precious").unwrap();
        let path = tree.join(format!("level-{level:02}.hashes"));
        let _ = std::fs::remove_file(&path);
        symlink(&victim, &path).unwrap();
    }
    let before = snapshot(&outside);
    let said = use_store(&dir);
    assert_eq!(snapshot(&outside), before, "written through a link: {said}");
    assert!(said.contains("symbolic link"), "{said}");
}

#[test]
fn a_linked_merkle_directory_receives_nothing() {
    let (_root, dir, outside) = store();
    std::fs::remove_dir_all(dir.join("merkle")).unwrap();
    symlink(&outside, dir.join("merkle")).unwrap();
    let said = use_store(&dir);
    assert!(
        snapshot(&outside).is_empty(),
        "written through a link: {said}"
    );
    assert!(said.contains("symbolic link"), "{said}");
}

#[test]
fn a_linked_marker_is_damage_not_followed() {
    let (_root, dir, outside) = store();
    let marker = dir.join(kimberlite::MARKER_FILE);
    std::fs::rename(&marker, outside.join("marker")).unwrap();
    symlink(outside.join("marker"), &marker).unwrap();
    let error = Kimberlite::open(&dir).expect_err("a linked marker must be refused");
    assert!(error.is_corruption(), "{error}");
    assert!(
        error.to_string().contains(&marker.display().to_string()),
        "{error}"
    );
}

#[test]
fn the_store_directory_itself_may_be_a_link() {
    let (root, dir, _outside) = store();
    let link = root.path().join("link-to-store");
    symlink(&dir, &link).unwrap();
    let store = Kimberlite::open(&link).unwrap();
    let id = store.stream("s").unwrap();
    assert_eq!(
        store
            .read(id, kimberlite::Offset::new(0), 1 << 20)
            .unwrap()
            .len(),
        10
    );
    assert!(store.verify_all().unwrap().is_intact());
}

#[test]
fn a_directory_holding_only_names_that_are_not_utf8_is_not_empty() {
    use std::os::unix::ffi::OsStrExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("busy");
    std::fs::create_dir_all(&dir).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"\xff\xfe-report.pdf");
    std::fs::write(dir.join(name), b"someone else's").unwrap();
    let opened = Kimberlite::open(&dir);
    assert!(matches!(opened, Err(Error::NotAStore { .. })), "{opened:?}");
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(entries.len(), 1, "a store was scattered into the directory");
}

/// `checkpoints/` holds evidence of lost events; a link in its place (or in place of one of
/// its stream directories) hid that evidence without a word. Never followed, now reported.
#[test]
fn a_linked_checkpoints_directory_is_reported() {
    for inside in [false, true] {
        let (_root, dir, outside) = store();
        let checkpoints = dir.join(kimberlite::CHECKPOINT_DIR);
        let linked = if inside {
            std::fs::create_dir(&checkpoints).unwrap();
            checkpoints.join(format!("{:020}", 1))
        } else {
            checkpoints
        };
        symlink(&outside, &linked).unwrap();
        let before = snapshot(&outside);

        let store = Kimberlite::open(&dir).unwrap();
        let report = store.recovery_report().to_string();
        assert!(
            report.contains(&linked.display().to_string()),
            "{inside}: {report}"
        );
        drop(store);
        let store = Kimberlite::open_read_only(&dir, kimberlite::Config::default()).unwrap();
        let report = store.recovery_report().to_string();
        assert!(report.contains(&linked.display().to_string()), "{report}");
        assert_eq!(snapshot(&outside), before);
    }
}
