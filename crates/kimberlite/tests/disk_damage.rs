//! Damage that must be named, not mistaken for something else or stop the whole store: a
//! damaged or removed marker file, a garbage segment header in one stream (the catalogue's
//! included).

use std::path::Path;

use kimberlite::{Error, ExpectedOffset, Kimberlite, MARKER_FILE};

fn store(dir: &Path) {
    let store = Kimberlite::open(dir).unwrap();
    for name in ["a", "b"] {
        let id = store.create_stream(name).unwrap();
        store
            .append(id, ["one", "two"], ExpectedOffset::NoStream)
            .unwrap();
    }
}

#[test]
fn a_damaged_marker_is_named_as_damage_not_as_another_directory() {
    let temp = tempfile::tempdir().unwrap();
    store(temp.path());
    let marker = temp.path().join(MARKER_FILE);
    let original = std::fs::read(&marker).unwrap();
    for (bit, expected) in [(3, "kimberlite_store"), (0, "not JSON")] {
        let mut bytes = original.clone();
        bytes[bit] ^= 0x01;
        std::fs::write(&marker, &bytes).unwrap();
        let error = Kimberlite::open(temp.path()).unwrap_err();
        assert!(
            matches!(error, Error::MarkerDamaged { ref path, ref reason }
                if path == &marker && reason.contains(expected)),
            "{error}"
        );
        assert!(error.is_corruption());
    }
    std::fs::remove_file(&marker).unwrap();
    let error = Kimberlite::open(temp.path()).unwrap_err();
    assert!(matches!(error, Error::MarkerDamaged { .. }), "{error}");
    assert!(error.to_string().contains("missing"), "{error}");
    // A directory that never was a store is still "not a store".
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), "x").unwrap();
    let error = Kimberlite::open(other.path()).unwrap_err();
    assert!(matches!(error, Error::NotAStore { .. }), "{error}");
}

#[test]
fn a_garbage_catalogue_header_leaves_the_rest_of_the_store_open() {
    let temp = tempfile::tempdir().unwrap();
    store(temp.path());
    let catalogue = temp
        .path()
        .join("streams")
        .join(format!("{:020}", 0))
        .join("00000000.seg");
    let mut bytes = std::fs::read(&catalogue).unwrap();
    bytes[..40].fill(0xA5);
    std::fs::write(&catalogue, bytes).unwrap();

    let store = Kimberlite::open(temp.path()).unwrap();
    let report = store.verify_all().unwrap();
    assert!(!report.is_intact());
    let problem = report.first_problem().unwrap();
    assert_eq!(problem.stream, kimberlite::CATALOG_STREAM);
    assert_eq!(problem.file.as_deref(), Some(catalogue.as_path()));
    // The other streams are still walked (reported as unnamed: their names were lost).
    assert_eq!(report.problems.len(), 3, "{:?}", report.problems);
    assert!(store.create_stream("c").is_err());
}
