//! Sealed events through a store: envelopes of every version read back and erase alike.

use std::sync::Arc;

use kimberlite_types::Offset;

use crate::head::ExpectedOffset;
use crate::sealed::envelope::{self, XCHACHA_NONCE_LEN};
use crate::sealed::{Content, MasterKey, SubjectKeys};
use crate::store::Kimberlite;

#[test]
fn a_store_holding_version_1_envelopes_reads_and_erases_them() {
    let store = Kimberlite::in_memory();
    let id = store.create_stream("records").unwrap();
    let (master, _) = MasterKey::generate();
    let keys = SubjectKeys::open(&store, Arc::new(master)).unwrap();
    keys.append(id, "alice", ["written as version 2"], ExpectedOffset::Any)
        .unwrap();
    let envelope = store.read(id, Offset::ZERO, u64::MAX).unwrap()[0]
        .payload
        .clone();
    assert_eq!(envelope[envelope::MAGIC.len()], envelope::VERSION);
    let Some(Ok(key_id)) = envelope::key_id_of(&envelope) else {
        panic!("not an envelope");
    };
    let cipher = keys.cipher_of(key_id).unwrap();
    let old = envelope::seal_version_1(
        &cipher,
        key_id,
        &[5; XCHACHA_NONCE_LEN],
        id,
        b"written as version 1",
    );
    store
        .append_unchecked(id, vec![old.into()], ExpectedOffset::Any)
        .unwrap();
    let read = keys.read(id, Offset::ZERO, u64::MAX).unwrap();
    let payloads: Vec<_> = read.iter().map(|event| event.payload().cloned()).collect();
    assert_eq!(
        payloads,
        [
            Some("written as version 2".into()),
            Some("written as version 1".into())
        ]
    );
    let unkeyed = store.read_opened(id, Offset::ZERO, u64::MAX).unwrap();
    assert!(unkeyed
        .iter()
        .all(|event| event.content == Content::Sealed { key_id }));
    let receipt = keys.erase("alice", "dpo").unwrap();
    assert_eq!(receipt.key_id, key_id);
    for event in keys.read(id, Offset::ZERO, u64::MAX).unwrap() {
        assert!(
            matches!(event.content, Content::Erased { key_id: erased, .. } if erased == key_id),
            "{event:?}"
        );
    }
    assert!(store.verify_all().unwrap().is_intact());
}
