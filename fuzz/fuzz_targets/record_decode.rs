//! `Record::from_bytes` on arbitrary bytes: never panics; whatever decodes re-encodes to a frame
//! that decodes to the same record.
#![no_main]

use bytes::Bytes;
use kimberlite_storage::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok((record, consumed)) = Record::from_bytes(&bytes) {
        assert!(consumed <= data.len());
        let again = record.to_bytes();
        let (decoded, _) = Record::from_bytes(&again).expect("a re-encoded record decodes");
        assert_eq!(decoded.payload(), record.payload());
        assert_eq!(decoded.compute_hash(), record.compute_hash());
    }
});
