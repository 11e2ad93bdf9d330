//! Snapshots as store files plus a manifest: a rebuilt store has the manifest's heads and
//! roots; a damaged or forged segment, a forged manifest, a file a snapshot never carries, or
//! a stream the manifest does not name, installs nothing.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kimberlite::{Config, ExpectedOffset, Kimberlite};

use crate::node_fs::NodeFs;
use crate::replica::Ledger;
use crate::snapshot::SnapshotImage;
use crate::snapshot_error::SnapshotError;

/// A store in `dir/source` with streams "a" (several segments) and "b"; its loaded image.
fn image(dir: &Path) -> SnapshotImage {
    let source = dir.join("source");
    let config = Config::default().max_segment_size(512);
    let store = Kimberlite::open_with(&source, config).unwrap();
    let a = store.create_stream("a").unwrap();
    store.create_stream("b").unwrap();
    for round in 0..20 {
        let events: Vec<String> = (0..4)
            .map(|n| format!("event {round}-{n} {}", "x".repeat(40)))
            .collect();
        store.append(a, events, ExpectedOffset::Any).unwrap();
    }
    let fs = NodeFs::os();
    let image = SnapshotImage::build(&fs, &source, &store, &Ledger::default()).unwrap();
    image.load(&fs, &source).unwrap()
}

fn rebuild(image: &SnapshotImage, dir: &Path) -> Result<Kimberlite, SnapshotError> {
    image.rebuild(NodeFs::os(), &target(dir), Config::default(), false)
}

fn target(dir: &Path) -> PathBuf {
    dir.join("target")
}

/// The index in `image.files` of the `n`-th segment file.
fn segment(image: &SnapshotImage, n: usize) -> usize {
    image
        .files
        .iter()
        .enumerate()
        .filter(|(_, file)| file.path.ends_with(".seg"))
        .nth(n)
        .map(|(index, _)| index)
        .unwrap()
}

#[test]
fn an_image_rebuilds_the_same_heads_and_roots() {
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path());
    let segments = image
        .files
        .iter()
        .filter(|file| file.path.ends_with(".seg"));
    assert!(segments.count() > 3, "{:?}", image.files);
    let store = rebuild(&image, dir.path()).unwrap();
    let again = SnapshotImage::build(
        &NodeFs::os(),
        &target(dir.path()),
        &store,
        &Ledger::default(),
    )
    .unwrap();
    assert_eq!(again.streams, image.streams);
    assert_eq!(again.unloaded().files.len(), image.unloaded().files.len());
    // The kept form names segments only; loading it gives the files back.
    assert!(image
        .unloaded()
        .files
        .iter()
        .any(|file| file.bytes.is_none()));
}

#[test]
fn a_damaged_or_forged_segment_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path());
    for n in [0, 1, 3] {
        let mut forged = image.clone();
        let index = segment(&forged, n);
        let file = &mut forged.files[index];
        let mut bytes = file.bytes.clone().unwrap().to_vec();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        file.bytes = Some(Bytes::from(bytes));
        let error = rebuild(&forged, dir.path()).unwrap_err();
        assert!(
            matches!(error, SnapshotError::Mismatch { .. }),
            "segment {n}: {error}"
        );
        // A segment cut short, its length stated to match.
        let mut cut = image.clone();
        let index = segment(&cut, n);
        let file = &mut cut.files[index];
        let bytes = file.bytes.clone().unwrap();
        file.bytes = Some(bytes.slice(..bytes.len() - 10));
        file.len_bytes -= 10;
        let error = rebuild(&cut, dir.path()).unwrap_err();
        assert!(
            matches!(error, SnapshotError::Mismatch { .. }),
            "segment {n} cut: {error}"
        );
    }
}

#[test]
fn a_forged_manifest_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path());
    let mut forged = image.clone();
    forged.streams[0].root[0] ^= 1;
    let error = rebuild(&forged, dir.path()).unwrap_err();
    assert!(
        matches!(error, SnapshotError::Mismatch { what: "root", .. }),
        "{error}"
    );
    let mut forged = image.clone();
    forged.streams[1].head.next_offset += 1;
    let error = rebuild(&forged, dir.path()).unwrap_err();
    assert!(
        matches!(error, SnapshotError::Mismatch { what: "head", .. }),
        "{error}"
    );
    let mut forged = image.clone();
    forged.streams.pop();
    let error = rebuild(&forged, dir.path()).unwrap_err();
    assert!(
        matches!(
            error,
            SnapshotError::Mismatch {
                what: "stream ids",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_file_a_snapshot_never_carries_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = image(dir.path());
    for path in [
        "../outside.seg",
        "streams/00000000000000000001/../../x",
        "LOCK",
    ] {
        let mut forged = image.clone();
        forged.files[1].path = path.to_owned();
        let error = rebuild(&forged, dir.path()).unwrap_err();
        assert!(
            matches!(error, SnapshotError::Forged { .. }),
            "{path}: {error}"
        );
    }
    assert!(!dir.path().join("outside.seg").exists());
    let mut missing = image.unloaded();
    missing.files.retain(|file| file.bytes.is_none());
    let error = rebuild(&missing, dir.path()).unwrap_err();
    assert!(matches!(error, SnapshotError::Forged { .. }), "{error}");
}
