use super::*;
use proptest::prelude::*;

fn hash_of(byte: u8) -> ChainHash {
    ChainHash::from_bytes([byte; 32])
}

/// Recomputes the CRC of a frame whose bytes a test changed on purpose, so that decoding gets
/// past the checksum to the check under test.
fn reseal(frame: &mut [u8]) {
    let crc_at = frame.len() - CRC_LEN;
    let crc = crc32c::crc32c(&frame[..crc_at]);
    frame[crc_at..].copy_from_slice(&crc.to_le_bytes());
}

fn frame_of(record: &Record) -> Vec<u8> {
    record.to_bytes().to_vec()
}

fn decode(frame: Vec<u8>) -> Result<(Record, usize), RecordError> {
    Record::from_bytes(&Bytes::from(frame))
}

#[test]
fn round_trips_every_kind_and_prev_hash() {
    for kind in [RecordKind::Data, RecordKind::Restart] {
        for prev in [None, Some(hash_of(7))] {
            let record = Record::with_compression(
                Offset::new(42),
                prev,
                kind,
                CompressionKind::None,
                Bytes::from_static(b"payload"),
            );
            let frame = record.to_bytes();
            assert_eq!(frame.len(), RECORD_OVERHEAD + 7);
            let (decoded, consumed) = Record::from_bytes(&frame).unwrap();
            assert_eq!(consumed, frame.len());
            assert_eq!(decoded, record);
            assert_eq!(decoded.is_restart(), kind == RecordKind::Restart);
        }
    }
}

#[test]
fn decoding_ignores_trailing_bytes_and_reports_consumed() {
    let first = Record::new(Offset::ZERO, None, Bytes::from_static(b"one"));
    let second = Record::new(
        Offset::new(1),
        Some(first.compute_hash()),
        Bytes::from_static(b"two"),
    );
    let mut both = frame_of(&first);
    both.extend_from_slice(&frame_of(&second));
    let both = Bytes::from(both);
    let (decoded, consumed) = Record::from_bytes(&both).unwrap();
    assert_eq!(decoded, first);
    let (decoded, _) = Record::from_bytes(&both.slice(consumed..)).unwrap();
    assert_eq!(decoded, second);
}

#[test]
fn lz4_is_used_only_when_smaller_and_hash_ignores_it() {
    let compressible = Bytes::from(vec![b'a'; 4096]);
    let plain = Record::new(Offset::ZERO, None, compressible.clone());
    let lz4 = Record::with_compression(
        Offset::ZERO,
        None,
        RecordKind::Data,
        CompressionKind::Lz4,
        compressible.clone(),
    );
    let frame = lz4.to_bytes();
    assert!(frame.len() < plain.to_bytes().len() / 10);
    let (decoded, _) = Record::from_bytes(&frame).unwrap();
    assert_eq!(decoded.compression(), CompressionKind::Lz4);
    assert_eq!(decoded.payload(), &compressible);
    assert_eq!(decoded.compute_hash(), plain.compute_hash());

    // Incompressible: the frame falls back to None and is exactly as large as uncompressed.
    let tiny = Record::with_compression(
        Offset::ZERO,
        None,
        RecordKind::Data,
        CompressionKind::Lz4,
        Bytes::from_static(b"xyz"),
    );
    let frame = tiny.to_bytes();
    assert_eq!(frame.len(), RECORD_OVERHEAD + 3);
    let (decoded, _) = Record::from_bytes(&frame).unwrap();
    assert_eq!(decoded.compression(), CompressionKind::None);
}

#[test]
fn empty_input_and_short_prefix_are_truncated() {
    for len in 0..FRAME_LEN_SIZE {
        assert_eq!(
            decode(vec![0xff; len]).unwrap_err(),
            RecordError::Truncated {
                needed: FRAME_LEN_SIZE as u64,
                available: len as u64
            }
        );
    }
}

#[test]
fn every_cut_of_a_frame_is_truncated() {
    let frame = frame_of(&Record::new(
        Offset::ZERO,
        None,
        Bytes::from_static(b"abcdef"),
    ));
    for len in FRAME_LEN_SIZE..frame.len() {
        let error = decode(frame[..len].to_vec()).unwrap_err();
        assert_eq!(
            error,
            RecordError::Truncated {
                needed: frame.len() as u64,
                available: len as u64
            }
        );
    }
}

#[test]
fn frame_length_out_of_bounds() {
    let mut frame = frame_of(&Record::new(Offset::ZERO, None, Bytes::new()));
    frame[..4].copy_from_slice(&(RECORD_OVERHEAD as u32 - 1).to_le_bytes());
    assert!(
        matches!(decode(frame.clone()), Err(RecordError::FrameTooSmall { len, .. }) if len == 55)
    );
    frame[..4].copy_from_slice(&(MAX_FRAME_LEN as u32 + 1).to_le_bytes());
    assert!(matches!(
        decode(frame),
        Err(RecordError::FrameTooLarge { .. })
    ));
}

#[test]
fn any_flipped_bit_is_a_checksum_mismatch_or_length_error() {
    let frame = frame_of(&Record::new(
        Offset::new(3),
        Some(hash_of(1)),
        Bytes::from_static(b"data"),
    ));
    for byte in 0..frame.len() {
        for bit in 0..8 {
            let mut bad = frame.clone();
            bad[byte] ^= 1 << bit;
            let error = decode(bad).unwrap_err();
            if byte < FRAME_LEN_SIZE {
                // A changed length prefix reads a different frame: any error but success.
                continue;
            }
            assert!(
                matches!(error, RecordError::ChecksumMismatch { .. }),
                "byte {byte} bit {bit}: {error}"
            );
        }
    }
}

#[test]
fn resealed_bad_fields_are_each_reported() {
    let record = Record::new(Offset::ZERO, None, Bytes::from_static(b"abc"));
    let cases: [(usize, u8, RecordError); 4] = [
        (VERSION_AT, 9, RecordError::UnsupportedVersion(9)),
        (KIND_AT, 5, RecordError::UnknownKind(5)),
        (COMPRESSION_AT, 7, RecordError::UnknownCompression(7)),
        (FLAGS_AT, 0b100, RecordError::UnknownFlags(0b100)),
    ];
    for (at, value, expected) in cases {
        let mut frame = frame_of(&record);
        frame[at] = value;
        reseal(&mut frame);
        assert_eq!(decode(frame).unwrap_err(), expected);
    }
}

#[test]
fn the_batch_bit_is_kept_checksummed_and_outside_the_chain_hash() {
    let prev = Some(hash_of(1));
    let last = Record::new(Offset::new(4), prev, Bytes::from_static(b"abc"));
    let inner = last.clone().with_batch_continues(true);
    let (last_frame, inner_frame) = (frame_of(&last), frame_of(&inner));
    assert_eq!(last_frame[FLAGS_AT], 0b01, "the last frame of a batch");
    assert_eq!(
        inner_frame[FLAGS_AT], 0b11,
        "a frame the batch continues after"
    );
    let (decoded, _) = decode(inner_frame.clone()).unwrap();
    assert!(decoded.continues_batch());
    assert!(!decode(last_frame.clone()).unwrap().0.continues_batch());
    assert_eq!(decoded.compute_hash(), last.compute_hash());
    // A flipped batch bit is caught by the CRC like any other bit.
    let mut flipped = last_frame;
    flipped[FLAGS_AT] ^= 0b10;
    assert!(matches!(
        decode(flipped).unwrap_err(),
        RecordError::ChecksumMismatch { .. }
    ));
    let hint = peek_frame(&inner_frame).unwrap();
    assert!(hint.continues_batch);
}

#[test]
fn resealed_bad_payload_lengths_are_reported() {
    let record = Record::new(Offset::ZERO, None, Bytes::from_static(b"abc"));
    let mut frame = frame_of(&record);
    frame[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 4].copy_from_slice(&4u32.to_le_bytes());
    reseal(&mut frame);
    assert_eq!(
        decode(frame).unwrap_err(),
        RecordError::PayloadLengthMismatch {
            declared: 4,
            actual: 3
        }
    );

    let mut frame = frame_of(&record);
    frame[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 4]
        .copy_from_slice(&(MAX_PAYLOAD_LEN as u32 + 1).to_le_bytes());
    reseal(&mut frame);
    assert!(matches!(
        decode(frame),
        Err(RecordError::PayloadTooLarge { .. })
    ));
}

#[test]
fn resealed_bad_lz4_payloads_are_reported() {
    let payload = Bytes::from(vec![b'z'; 1000]);
    let record = Record::with_compression(
        Offset::ZERO,
        None,
        RecordKind::Data,
        CompressionKind::Lz4,
        payload,
    );
    let good = frame_of(&record);
    assert_eq!(good[COMPRESSION_AT], CompressionKind::Lz4.as_byte());

    // Declared length larger than what the stream decompresses to.
    let mut frame = good.clone();
    frame[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 4].copy_from_slice(&1001u32.to_le_bytes());
    reseal(&mut frame);
    assert!(matches!(
        decode(frame),
        Err(RecordError::PayloadLengthMismatch { .. } | RecordError::Decompression(_))
    ));

    // Garbage instead of an LZ4 block.
    let mut frame = good.clone();
    for byte in &mut frame[RECORD_HEADER_LEN..good.len() - RECORD_TRAILER_LEN] {
        *byte = 0xff;
    }
    reseal(&mut frame);
    assert!(matches!(decode(frame), Err(RecordError::Decompression(_))));
}

#[test]
fn maximum_payload_round_trips() {
    let payload = Bytes::from(vec![1u8; MAX_PAYLOAD_LEN]);
    let frame = Record::new(Offset::ZERO, None, payload.clone()).to_bytes();
    assert_eq!(frame.len(), MAX_FRAME_LEN);
    let (decoded, _) = Record::from_bytes(&frame).unwrap();
    assert_eq!(decoded.payload().len(), payload.len());
}

#[test]
#[should_panic(expected = "exceeds MAX_PAYLOAD_LEN")]
fn encoding_an_oversized_payload_panics() {
    let payload = Bytes::from(vec![0u8; MAX_PAYLOAD_LEN + 1]);
    let _ = Record::new(Offset::ZERO, None, payload).to_bytes();
}

#[test]
fn uncompressed_payload_is_a_zero_copy_slice() {
    let frame = Record::new(Offset::ZERO, None, Bytes::from_static(b"shared")).to_bytes();
    let (decoded, _) = Record::from_bytes(&frame).unwrap();
    let inside = frame.as_ptr() as usize + RECORD_HEADER_LEN;
    assert_eq!(decoded.payload().as_ptr() as usize, inside);
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        proptest::option::of(any::<[u8; 32]>()),
        prop_oneof![Just(RecordKind::Data), Just(RecordKind::Restart)],
        prop_oneof![Just(CompressionKind::None), Just(CompressionKind::Lz4)],
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..512),
            (any::<u8>(), 0usize..2048).prop_map(|(b, n)| vec![b; n]),
        ],
    )
        .prop_map(|(offset, prev, kind, compression, payload)| {
            Record::with_compression(
                Offset::new(offset),
                prev.map(ChainHash::from_bytes),
                kind,
                compression,
                Bytes::from(payload),
            )
        })
}

proptest! {
    #[test]
    fn prop_round_trip(record in arb_record()) {
        let frame = record.to_bytes();
        let (decoded, consumed) = Record::from_bytes(&frame).unwrap();
        prop_assert_eq!(consumed, frame.len());
        prop_assert_eq!(decoded.offset(), record.offset());
        prop_assert_eq!(decoded.prev_hash(), record.prev_hash());
        prop_assert_eq!(decoded.kind(), record.kind());
        prop_assert_eq!(decoded.payload(), record.payload());
        prop_assert_eq!(decoded.compute_hash(), record.compute_hash());
        prop_assert!(frame.len() <= RECORD_OVERHEAD + record.payload().len());
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Record::from_bytes(&Bytes::from(bytes));
    }

    #[test]
    fn prop_corrupted_frames_never_decode_to_other_data(record in arb_record(), at in any::<prop::sample::Index>(), xor in 1u8..) {
        let mut frame = record.to_bytes().to_vec();
        let at = at.index(frame.len());
        frame[at] ^= xor;
        if let Ok((decoded, _)) = decode(frame) {
            // CRC32C detects every error burst this short; decoding must fail.
            prop_assert!(false, "corrupted frame decoded: {:?}", decoded);
        }
    }
}

/// One test vector from `docs/FORMAT.md`: a fenced block tagged `vector` of `key = value` lines.
#[derive(Debug, Default)]
struct Vector {
    offset: u64,
    prev_hash: Option<ChainHash>,
    kind: Option<RecordKind>,
    payload: Vec<u8>,
    chain_hash: Option<ChainHash>,
    frame: Vec<u8>,
}

fn parse_vectors(doc: &str) -> Vec<Vector> {
    let mut vectors = Vec::new();
    let mut current: Option<Vector> = None;
    for line in doc.lines() {
        let line = line.trim();
        if line == "```vector" {
            current = Some(Vector::default());
            continue;
        }
        let Some(vector) = current.as_mut() else {
            continue;
        };
        if line == "```" {
            vectors.push(current.take().unwrap());
            continue;
        }
        let (key, value) = line.split_once('=').expect("vector lines are key = value");
        let value = value.trim();
        match key.trim() {
            "offset" => vector.offset = value.parse().unwrap(),
            "prev_hash" if value == "none" => vector.prev_hash = None,
            "prev_hash" => vector.prev_hash = Some(value.parse().unwrap()),
            "kind" => {
                vector.kind = Some(match value {
                    "data" => RecordKind::Data,
                    "restart" => RecordKind::Restart,
                    other => panic!("unknown kind {other}"),
                })
            }
            "payload_hex" => vector.payload = hex_decode(value),
            "chain_hash" => vector.chain_hash = Some(value.parse().unwrap()),
            "frame_hex" => vector.frame.extend(hex_decode(value)),
            other => panic!("unknown vector key {other}"),
        }
    }
    vectors
}

fn hex_decode(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn format_md_test_vectors_hold() {
    let doc = include_str!("../../../docs/FORMAT.md");
    let vectors = parse_vectors(doc);
    assert!(
        vectors.len() >= 3,
        "FORMAT.md must hold at least three vectors"
    );
    for (index, vector) in vectors.iter().enumerate() {
        let record = Record::with_compression(
            Offset::new(vector.offset),
            vector.prev_hash,
            vector.kind.expect("vector has a kind"),
            CompressionKind::None,
            Bytes::from(vector.payload.clone()),
        );
        let hash = record.compute_hash();
        let frame = record.to_bytes();
        assert_eq!(
            Some(hash),
            vector.chain_hash,
            "vector {}: computed chain_hash = {hash}",
            index + 1
        );
        if !vector.frame.is_empty() {
            assert_eq!(
                frame.to_vec(),
                vector.frame,
                "vector {}: computed frame_hex = {}",
                index + 1,
                hex::encode(&frame)
            );
            let (decoded, _) = Record::from_bytes(&Bytes::from(vector.frame.clone())).unwrap();
            assert_eq!(decoded, record);
        }
    }
}

#[test]
fn peek_reads_the_header_and_fails_where_decode_fails_on_length() {
    let record = Record::with_compression(
        Offset::new(41),
        None,
        RecordKind::Data,
        CompressionKind::Lz4,
        Bytes::from(vec![7u8; 500]),
    );
    let mut frame = record.to_bytes().to_vec();
    let hint = peek_frame(&frame).unwrap();
    assert_eq!(hint.frame_len, frame.len());
    assert!(hint.frame_len < 500, "the record is stored compressed");
    assert_eq!(hint.offset, Offset::new(41));
    assert!(!hint.is_restart);
    assert_eq!(hint.payload_len, 500);
    // A hint is not a decode: a bad CRC still peeks.
    let last = frame.len() - 1;
    frame[last] ^= 1;
    assert!(peek_frame(&frame).is_ok());
    assert!(Record::from_bytes(&Bytes::from(frame.clone())).is_err());
    // A length that is out of range or past the bytes fails both ways, with the same error.
    for bytes in [&frame[..2], &frame[..frame.len() - 1], &[0u8; 60][..]] {
        let decoded = Record::from_bytes(&Bytes::copy_from_slice(bytes)).unwrap_err();
        assert_eq!(peek_frame(bytes).unwrap_err(), decoded);
    }
}

/// Frames encoded unlinked (in any order, each into its own buffer) and linked later are the
/// frames `encode_into` writes in one go.
#[test]
fn unlinked_frames_linked_later_equal_encode_into() {
    let compressions = [CompressionKind::None, CompressionKind::Lz4];
    let mut prev = None;
    let mut expected = Vec::new();
    let mut records = Vec::new();
    for i in 0..6u64 {
        let payload = Bytes::from(vec![(i * 37) as u8; 40 * i as usize]);
        let record = Record::with_compression(
            Offset::new(i),
            prev,
            RecordKind::Data,
            compressions[i as usize % 2],
            payload,
        );
        record.encode_into(&mut expected);
        prev = Some(record.compute_hash());
        records.push(record);
    }
    let mut unlinked = Vec::new();
    let mut frames = Vec::new();
    for record in &records {
        unlinked.push(encode_unlinked(
            &mut frames,
            record.offset(),
            record.kind(),
            record.compression(),
            record.prev_hash().is_some(),
            record.continues_batch(),
            record.payload(),
        ));
    }
    assert_ne!(frames, expected, "the links are not written yet");
    for (frame, record) in unlinked.iter().zip(&records).rev() {
        frame.link(&mut frames, record.prev_hash().as_ref());
        let (decoded, len) =
            Record::from_bytes(&Bytes::copy_from_slice(&frames[frame.start..])).unwrap();
        assert_eq!((&decoded, len), (record, frame.len));
        assert_eq!(
            frame.compressed,
            decoded.compression() == CompressionKind::Lz4
        );
    }
    assert_eq!(frames, expected);
}

#[test]
#[should_panic(expected = "prev_hash present = false")]
fn linking_a_frame_to_a_predecessor_it_was_not_encoded_for_panics() {
    let mut out = Vec::new();
    let frame = encode_unlinked(
        &mut out,
        Offset::ZERO,
        RecordKind::Data,
        CompressionKind::None,
        false,
        false,
        b"first",
    );
    frame.link(&mut out, Some(&hash_of(1)));
}

#[test]
#[should_panic(expected = "linked in the buffer it was encoded into")]
fn linking_a_frame_outside_its_buffer_panics() {
    let mut out = Vec::new();
    let frame = encode_unlinked(
        &mut out,
        Offset::new(3),
        RecordKind::Data,
        CompressionKind::None,
        true,
        false,
        b"event",
    );
    frame.link(&mut out[..10], Some(&hash_of(1)));
}
