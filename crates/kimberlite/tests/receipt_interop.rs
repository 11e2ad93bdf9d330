//! Interop: a receipt (C2SP tlog-proof) read without Kimberlite's parser, split by hand as the
//! spec describes it, and checked by independent C2SP implementations: `signed_note` for the
//! checkpoint's signature, `tlog_tiles` (a port of Go's sumdb/tlog) for the inclusion proof
//! of the event's record hash.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kimberlite::proof::{event_leaf_bytes, stream_origin, SignerKey};
use kimberlite::{ExpectedOffset, Kimberlite};
use signed_note::{Note, StandardVerifier, VerifierList};

/// The spec's parts of a receipt: extra bytes, index, proof hashes, checkpoint note.
fn split(receipt: &str) -> (Vec<u8>, u64, Vec<tlog_tiles::Hash>, &str) {
    let (lines, note) = receipt.split_once("\n\n").unwrap();
    let mut lines = lines.split('\n');
    assert_eq!(lines.next(), Some("c2sp.org/tlog-proof@v1"));
    let extra = BASE64
        .decode(lines.next().unwrap().strip_prefix("extra ").unwrap())
        .unwrap();
    let index = lines
        .next()
        .unwrap()
        .strip_prefix("index ")
        .unwrap()
        .parse()
        .unwrap();
    let proof = lines
        .map(|line| tlog_tiles::Hash(BASE64.decode(line).unwrap().try_into().unwrap()))
        .collect();
    (extra, index, proof, note)
}

#[test]
fn independent_implementations_check_a_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Kimberlite::open(dir.path()).unwrap();
    let id = store.create_stream("audit").unwrap();
    let events: Vec<String> = (0..300).map(|i| format!("event {i}")).collect();
    store
        .append(id, events.clone(), ExpectedOffset::NoStream)
        .unwrap();
    let key = SignerKey::from_seed("log", [5; 32]).unwrap();
    let origin = stream_origin("example.org", "audit").unwrap();
    let receipt = store
        .event_receipt(id, 257, &origin, Some(&key), None)
        .unwrap()
        .unwrap()
        .receipt
        .to_text();

    let (extra, index, proof, note) = split(&receipt);
    assert_eq!(index, 257);
    let vkey = key.verifier().renamed(&origin).unwrap().to_text();
    let known = VerifierList::new(vec![Box::new(StandardVerifier::new(&vkey).unwrap())]);
    let note = Note::from_bytes(note.as_bytes()).unwrap();
    note.verify(&known).unwrap();
    let checkpoint = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
    assert_eq!(checkpoint.origin(), origin);
    assert_eq!(checkpoint.size(), 300);
    let record = tlog_tiles::record_hash(&event_leaf_bytes(257, events[257].as_bytes()));
    assert_eq!(extra, record.0);
    tlog_tiles::check_record(&proof, 300, *checkpoint.hash(), 257, record).unwrap();
    // Another event, or a changed proof hash, fails the independent check.
    let other = tlog_tiles::record_hash(&event_leaf_bytes(257, b"event 999"));
    assert!(tlog_tiles::check_record(&proof, 300, *checkpoint.hash(), 257, other).is_err());
    let mut altered = proof.clone();
    altered[3].0[0] ^= 1;
    assert!(tlog_tiles::check_record(&altered, 300, *checkpoint.hash(), 257, record).is_err());
}
