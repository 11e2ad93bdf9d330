//! The hash chain, checked link by link: decoding a frame at a known position and checking
//! that it is the record the chain expects next.
//!
//! Every read path of every backend goes through [`decode_at`] and [`ChainCursor::check`], so a
//! changed, missing, reordered or inserted record is reported the same way everywhere: as a
//! [`StorageError`] naming the stream, the offset and the [`Location`] of the bytes.

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, StreamId};

use crate::error::{Location, StorageError};
use crate::record::Record;
use crate::verify::frames::VerifiedFrame;

/// Decodes the frame at the start of `bytes`, which should hold the record for `offset`;
/// returns the record and the bytes consumed.
pub fn decode_at(
    stream: StreamId,
    offset: Offset,
    bytes: &Bytes,
    location: impl FnOnce() -> Location,
) -> Result<(Record, usize), StorageError> {
    Record::from_bytes(bytes).map_err(|source| StorageError::CorruptRecord {
        stream,
        offset,
        location: location(),
        source,
    })
}

/// The expected position of the next data record in a stream: its offset and the chain hash
/// its `prev_hash` must equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainCursor {
    stream: StreamId,
    next_offset: Offset,
    prev_hash: Option<ChainHash>,
}

impl ChainCursor {
    /// A cursor at the first record of a stream.
    #[must_use]
    pub fn at_start(stream: StreamId) -> Self {
        Self::resume(stream, Offset::ZERO, None)
    }

    /// A cursor at `next_offset`, where the previous data record's chain hash is `prev_hash`
    /// (taken from a verified restart record or a trusted in-memory head).
    #[must_use]
    pub fn resume(stream: StreamId, next_offset: Offset, prev_hash: Option<ChainHash>) -> Self {
        Self {
            stream,
            next_offset,
            prev_hash,
        }
    }

    /// The stream this cursor walks.
    #[must_use]
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// The offset the next data record must have.
    #[must_use]
    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }

    /// The chain hash the next data record's `prev_hash` must equal.
    #[must_use]
    pub fn prev_hash(&self) -> Option<ChainHash> {
        self.prev_hash
    }

    /// Checks that `record` is the next data record of the chain, then advances past it;
    /// returns its chain hash.
    ///
    /// Restart records are not links of the chain: pass them to
    /// [`ChainCursor::check_restart`] instead.
    pub fn check(
        &mut self,
        record: &Record,
        location: impl FnOnce() -> Location,
    ) -> Result<ChainHash, StorageError> {
        debug_assert!(!record.is_restart());
        self.check_position(record, location)?;
        let hash = record.compute_hash();
        self.next_offset += Offset::new(1);
        self.prev_hash = Some(hash);
        Ok(hash)
    }

    /// [`ChainCursor::check`] or [`ChainCursor::check_restart`] of a frame decoded (and,
    /// for a data record, hashed) by [`crate::verify::decode_frames`], possibly on another
    /// thread: the same checks in the same order, with the hash already computed. Returns the
    /// data record's chain hash (`None` for a restart record, which does not advance the cursor).
    pub fn check_frame(
        &mut self,
        frame: &VerifiedFrame,
        location: impl FnOnce() -> Location,
    ) -> Result<Option<ChainHash>, StorageError> {
        self.check_position(frame.record(), location)?;
        if let Some(hash) = frame.hash() {
            self.next_offset += Offset::new(1);
            self.prev_hash = Some(hash);
        }
        Ok(frame.hash())
    }

    /// Checks that a restart record sits where the cursor is and repeats the chain head
    /// there. Does not advance.
    pub fn check_restart(
        &self,
        record: &Record,
        location: impl FnOnce() -> Location,
    ) -> Result<(), StorageError> {
        debug_assert!(record.is_restart());
        self.check_position(record, location)
    }

    fn check_position(
        &self,
        record: &Record,
        location: impl FnOnce() -> Location,
    ) -> Result<(), StorageError> {
        if record.offset() != self.next_offset {
            return Err(StorageError::OffsetMismatch {
                stream: self.stream,
                offset: self.next_offset,
                found: record.offset(),
                location: location(),
            });
        }
        if record.prev_hash() != self.prev_hash {
            return Err(StorageError::ChainVerificationFailed {
                stream: self.stream,
                offset: self.next_offset,
                location: location(),
                expected: self.prev_hash,
                actual: record.prev_hash(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kimberlite_types::{CompressionKind, RecordKind};

    fn here() -> Location {
        Location {
            segment: 0,
            position: 0,
            file: None,
        }
    }

    fn chain(payloads: &[&'static str]) -> Vec<Record> {
        let mut prev = None;
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let record = Record::new(
                    Offset::new(i as u64),
                    prev,
                    Bytes::from_static(p.as_bytes()),
                );
                prev = Some(record.compute_hash());
                record
            })
            .collect()
    }

    #[test]
    fn accepts_an_intact_chain() {
        let records = chain(&["a", "b", "c"]);
        let mut cursor = ChainCursor::at_start(StreamId::new(1));
        for record in &records {
            assert_eq!(cursor.check(record, here).unwrap(), record.compute_hash());
        }
        assert_eq!(cursor.next_offset(), Offset::new(3));
        assert_eq!(cursor.prev_hash(), Some(records[2].compute_hash()));
    }

    #[test]
    fn rejects_dropped_reordered_and_altered_records() {
        let records = chain(&["a", "b", "c"]);
        let stream = StreamId::new(1);

        let mut dropped = ChainCursor::at_start(stream);
        dropped.check(&records[0], here).unwrap();
        let error = dropped.check(&records[2], here).unwrap_err();
        assert!(
            matches!(error, StorageError::OffsetMismatch { offset, found, .. }
            if offset == Offset::new(1) && found == Offset::new(2))
        );

        let altered = Record::new(
            Offset::new(1),
            records[1].prev_hash(),
            Bytes::from_static(b"B"),
        );
        let mut cursor = ChainCursor::at_start(stream);
        cursor.check(&records[0], here).unwrap();
        cursor.check(&altered, here).unwrap();
        let error = cursor.check(&records[2], here).unwrap_err();
        assert!(
            matches!(error, StorageError::ChainVerificationFailed { offset, .. }
            if offset == Offset::new(2))
        );
        assert!(error.is_corruption());
    }

    #[test]
    fn check_frame_agrees_with_check() {
        let mut records = chain(&["a", "b", "c"]);
        records[2] = Record::new(Offset::new(2), None, Bytes::from_static(b"c"));
        let frames: Vec<_> = records
            .iter()
            .map(|r| crate::verify::verify_frame(&r.to_bytes()).unwrap())
            .collect();
        let mut one = ChainCursor::at_start(StreamId::new(1));
        let mut other = one;
        for (record, frame) in records.iter().zip(&frames) {
            let expected = one.check(record, here);
            let got = other.check_frame(frame, here);
            assert_eq!(
                format!("{expected:?}"),
                format!("{:?}", got.map(Option::unwrap))
            );
            assert_eq!(one, other);
        }
        let restart = Record::with_compression(
            Offset::new(2),
            records[1].prev_hash(),
            RecordKind::Restart,
            CompressionKind::None,
            Bytes::new(),
        );
        let frame = crate::verify::verify_frame(&restart.to_bytes()).unwrap();
        let mut cursor =
            ChainCursor::resume(StreamId::new(1), Offset::new(2), records[1].prev_hash());
        assert_eq!(cursor.check_frame(&frame, here).unwrap(), None);
        assert_eq!(cursor.next_offset(), Offset::new(2));
    }

    #[test]
    fn restart_record_must_repeat_the_head() {
        let records = chain(&["a"]);
        let mut cursor = ChainCursor::at_start(StreamId::new(1));
        let head = cursor.check(&records[0], here).unwrap();
        let good = Record::with_compression(
            Offset::new(1),
            Some(head),
            RecordKind::Restart,
            CompressionKind::None,
            Bytes::new(),
        );
        cursor.check_restart(&good, here).unwrap();
        let stale = Record::with_compression(
            Offset::new(1),
            None,
            RecordKind::Restart,
            CompressionKind::None,
            Bytes::new(),
        );
        assert!(cursor.check_restart(&stale, here).is_err());
        assert_eq!(cursor.next_offset(), Offset::new(1));
    }

    #[test]
    fn decode_errors_name_stream_and_offset() {
        let error = decode_at(
            StreamId::new(9),
            Offset::new(4),
            &Bytes::from_static(b"xx"),
            here,
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("stream 9") && text.contains("offset 4"),
            "{text}"
        );
        assert!(text.contains("segment 0, byte 0"), "{text}");
    }
}
