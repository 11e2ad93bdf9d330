//! LZ4 payload decoding: arbitrary stored bytes and declared lengths inside a frame with a
//! valid CRC, so every input reaches the decompressor. Never panics, never returns a payload
//! of another length than declared.
#![no_main]

use bytes::Bytes;
use kimberlite_fuzz::lz4_frame;
use kimberlite_storage::Record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&len_byte, stored)) = data.split_first() else {
        return;
    };
    // Declared lengths from 0 to a few times the input, where decompression bugs live.
    let declared = u32::from(len_byte) * 16 + (stored.len() as u32 % 16);
    let frame = lz4_frame(stored, declared);
    if let Ok((record, _)) = Record::from_bytes(&Bytes::from(frame)) {
        assert_eq!(record.payload().len(), declared as usize);
    }
});
