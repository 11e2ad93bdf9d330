//! Erasure by crypto-shredding on disk (`docs/COMPLIANCE.md`, "Erasure"): a subject's events
//! are stored sealed, reads open them with the master key, `erase` destroys the key; after it
//! the chain verifies, every old proof still verifies, and no byte of the plaintext is left
//! in any file of the store directory.

use std::path::Path;
use std::sync::Arc;

use kimberlite::proof::verify_inclusion;
use kimberlite::sealed::{Content, MasterKey, SealError, SubjectKeys, ERASURE_STREAM, KEYS_DIR};
use kimberlite::{Error, ExpectedOffset, Kimberlite};

fn master() -> (Arc<MasterKey>, String) {
    let (key, text) = MasterKey::generate();
    (Arc::new(key), text)
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn holds(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    files(dir)
        .into_iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            bytes.windows(needle.len()).any(|window| window == needle)
        })
        .collect()
}

#[test]
fn an_erased_subject_leaves_no_plaintext_and_every_proof_still_verifies() {
    let temp = tempfile::tempdir().unwrap();
    let (key, text) = master();
    let secret = b"diagnosis:P-0042-confidential-oncology";
    let kept = b"diagnosis:P-0043-stays-readable";
    let (proof, root, leaf) = {
        let store = Kimberlite::open(temp.path()).unwrap();
        let id = store.create_stream("records").unwrap();
        store
            .append(id, ["plain-before"], ExpectedOffset::NoStream)
            .unwrap();
        let keys = SubjectKeys::open(&store, key.clone()).unwrap();
        keys.append(
            id,
            "patient-42",
            [secret.as_slice(), secret],
            ExpectedOffset::Any,
        )
        .unwrap();
        keys.append(id, "patient-43", [kept.as_slice()], ExpectedOffset::Any)
            .unwrap();
        store
            .append(id, ["plain-after"], ExpectedOffset::Any)
            .unwrap();
        store.sync().unwrap();
        // Sealed on disk: the plaintext is nowhere, even before the erasure.
        assert!(holds(temp.path(), secret).is_empty());
        let read = keys.read(id, 0.into(), u64::MAX).unwrap();
        let payloads: Vec<_> = read.iter().map(|e| e.payload().cloned()).collect();
        assert_eq!(payloads[0].as_deref(), Some(b"plain-before".as_slice()));
        assert_eq!(payloads[1].as_deref(), Some(secret.as_slice()));
        assert_eq!(payloads[3].as_deref(), Some(kept.as_slice()));
        assert_eq!(payloads[4].as_deref(), Some(b"plain-after".as_slice()));
        // Without the master key: sealed, never the envelope as if it were the event.
        let keyless = store.read_opened(id, 0.into(), u64::MAX).unwrap();
        assert!(matches!(keyless[1].content, Content::Sealed { .. }));
        assert!(keyless[1].payload().is_none());
        let proof = store.inclusion_proof(id, 1.into(), 5).unwrap();
        assert_eq!(proof.leaf_hash, read[1].leaf_hash);
        let head = store.tree_head(id).unwrap();
        (proof, head.root, read[1].leaf_hash)
    };
    let store = Kimberlite::open(temp.path()).unwrap();
    let keys = SubjectKeys::open(&store, Arc::new(MasterKey::from_text(&text).unwrap())).unwrap();
    let receipt = keys.erase("patient-42", "dpo@example").unwrap();
    assert_eq!(receipt.events, 2);
    assert_eq!(receipt.offset.as_u64(), 0);
    let id = store.stream("records").unwrap();
    let read = keys.read(id, 0.into(), u64::MAX).unwrap();
    for erased in &read[1..3] {
        let Content::Erased { erasure, .. } = &erased.content else {
            panic!("{erased:?}");
        };
        assert_eq!(erasure.offset, receipt.offset);
        assert_eq!(erasure.by, "dpo@example");
    }
    assert_eq!(read[1].leaf_hash, leaf, "the leaf is the one proven before");
    assert_eq!(read[3].payload().map(|p| &p[..]), Some(kept.as_slice()));
    assert!(store.verify_all().unwrap().is_intact());
    verify_inclusion(&proof.leaf_hash, 1, 5, &proof.hashes, &root).unwrap();
    let again = store.inclusion_proof(id, 1.into(), 5).unwrap();
    assert_eq!(again, proof);
    let erasure_stream = store.stream(ERASURE_STREAM).unwrap();
    assert_eq!(receipt.stream, erasure_stream);
    drop(keys);
    drop(store);
    assert!(holds(temp.path(), secret).is_empty());
    // No file of the store directory holds the erased key's id any more but the log's events.
    let key_files = files(&temp.path().join(KEYS_DIR));
    let erased_id = receipt.key_id.to_hex();
    assert!(
        !key_files
            .iter()
            .any(|path| path.to_string_lossy().contains(&erased_id)),
        "{key_files:?}"
    );
    assert_eq!(
        key_files.len(),
        3,
        "the check file, the counted file and patient-43's key: {key_files:?}"
    );
    // Read-only, without a key: the erased events say so.
    let store = Kimberlite::open_read_only(temp.path(), kimberlite::Config::default()).unwrap();
    let keyless = store.read_opened(id, 0.into(), u64::MAX).unwrap();
    assert!(matches!(keyless[1].content, Content::Erased { .. }));
    assert!(matches!(keyless[3].content, Content::Sealed { .. }));
}

#[test]
fn a_wrong_master_key_reads_nothing_and_unknown_subjects_are_named() {
    let temp = tempfile::tempdir().unwrap();
    let (key, _) = master();
    let store = Kimberlite::open(temp.path()).unwrap();
    let id = store.create_stream("records").unwrap();
    let keys = SubjectKeys::open(&store, key).unwrap();
    keys.append(id, "alice", ["a"], ExpectedOffset::Any)
        .unwrap();
    let unknown = keys.erase("bob", "dpo").unwrap_err();
    assert!(
        matches!(unknown, Error::Sealed(SealError::UnknownSubject { .. })),
        "{unknown}"
    );
    assert!(unknown.to_string().contains("bob"), "{unknown}");
    keys.erase("alice", "dpo").unwrap();
    let twice = keys.erase("alice", "dpo").unwrap_err();
    assert!(
        matches!(twice, Error::Sealed(SealError::AlreadyErased { .. })),
        "{twice}"
    );
    let (wrong, _) = master();
    let refused = SubjectKeys::open(&store, wrong).unwrap_err();
    assert!(
        matches!(refused, Error::Sealed(SealError::WrongMasterKey { .. })),
        "{refused}"
    );
}

#[test]
fn plain_events_that_look_sealed_are_refused() {
    let store = Kimberlite::in_memory();
    let id = store.create_stream("records").unwrap();
    let refused = store
        .append(id, ["fine", "\0KBSEAL\x01forged"], ExpectedOffset::Any)
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Sealed(SealError::LooksSealed { index: 1, .. })
        ),
        "{refused}"
    );
    assert_eq!(
        store.head(id).unwrap().next_offset.as_u64(),
        0,
        "nothing written"
    );
}

#[test]
fn a_large_sealed_batch_reads_back_in_order() {
    let store = Kimberlite::in_memory();
    let id = store.create_stream("records").unwrap();
    let (key, _) = master();
    let keys = SubjectKeys::open(&store, key).unwrap();
    let events: Vec<String> = (0..601).map(|i| format!("event {i}")).collect();
    keys.append(id, "alice", &events, ExpectedOffset::NoStream)
        .unwrap();
    let read = keys.read(id, 0.into(), u64::MAX).unwrap();
    let payloads: Vec<&[u8]> = read.iter().map(|e| &e.payload().unwrap()[..]).collect();
    let expected: Vec<&[u8]> = events.iter().map(String::as_bytes).collect();
    assert_eq!(payloads, expected);
    let nonces: std::collections::HashSet<Vec<u8>> = store
        .read(id, 0.into(), u64::MAX)
        .unwrap()
        .iter()
        .map(|e| e.payload[24..48].to_vec())
        .collect();
    assert_eq!(nonces.len(), 601, "a fresh nonce per event");
}

#[test]
fn sealed_batches_on_disk_read_back_under_every_durability() {
    use kimberlite::{Config, Durability};
    for durability in [
        Durability::Unsynced,
        Durability::SyncEachAppend,
        Durability::GroupCommit,
    ] {
        let temp = tempfile::tempdir().unwrap();
        let (key, _) = master();
        let config = Config::default().durability(durability);
        let mut expected = Vec::new();
        {
            let store = Kimberlite::open_with(temp.path(), config.clone()).unwrap();
            let id = store.create_stream("records").unwrap();
            let keys = SubjectKeys::open(&store, key.clone()).unwrap();
            // On either side of the size from which the store encodes on two threads.
            for size in [1usize, 127, 128, 129, 1_000] {
                let batch: Vec<bytes::Bytes> = (0..size)
                    .map(|i| format!("secret {} of {size}", expected.len() + i).into())
                    .collect();
                expected.extend(batch.iter().cloned());
                keys.append_bytes(id, "alice", batch, ExpectedOffset::Any)
                    .unwrap();
            }
            let as_slices: Vec<&[u8]> = vec![b"by slices", b""];
            expected.extend(as_slices.iter().map(|s| bytes::Bytes::copy_from_slice(s)));
            keys.append(id, "alice", &as_slices, ExpectedOffset::Any)
                .unwrap();
            store.sync().unwrap();
            assert!(
                holds(temp.path(), b"secret 1000 of 1000").is_empty(),
                "{durability:?}"
            );
        }
        let store = Kimberlite::open_with(temp.path(), config).unwrap();
        let id = store.stream("records").unwrap();
        let report = store.verify(id).unwrap();
        assert!(report.is_intact(), "{durability:?}");
        assert_eq!(
            report.records_checked(),
            expected.len() as u64,
            "{durability:?}"
        );
        let keys = SubjectKeys::open(&store, key).unwrap();
        let read = keys.read(id, 0.into(), u64::MAX).unwrap();
        let payloads: Vec<_> = read.iter().map(|e| e.payload().cloned().unwrap()).collect();
        assert_eq!(payloads, expected, "{durability:?}");
    }
}
