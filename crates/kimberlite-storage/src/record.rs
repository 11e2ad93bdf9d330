//! [`Record`]: one stored event (or restart record) and its byte frame.
//!
//! # Frame layout (format version 3, all integers little-endian)
//!
//! ```text
//! offset  size  field
//!      0     4  frame_len    u32  whole frame: header + stored payload + link + crc
//!      4     1  version      u8   = 3
//!      5     1  kind         u8   0 = Data, 1 = Restart record
//!      6     1  compression  u8   0 = None, 1 = Lz4
//!      7     1  flags        u8   bit 0: prev_hash present; bit 1: the batch continues
//!                                  after this frame; other bits must be 0
//!      8     8  offset       u64
//!     16     4  payload_len  u32  uncompressed payload length
//!     20     n  payload      n = frame_len - 56 stored (possibly compressed) bytes
//!   20+n    32  prev_hash    [u8; 32], all zero when absent
//!   52+n     4  crc32c       u32  CRC32C (Castagnoli) of bytes [0, 52+n)
//! ```
//!
//! `docs/FORMAT.md` repeats this layout with worked examples. Decoding checks the length
//! prefix, then the CRC, before it trusts any other field; it never panics on arbitrary input.
//!
//! The record's chain hash ([`Record::compute_hash`]) is not stored in its own frame: the next
//! record stores it as its `prev_hash`, so each frame carries the link to its predecessor.
//!
//! Flag bit 1 marks batch boundaries: every frame of a batch but its last has it set, so a
//! batch ends at the first frame without it, and a frame with it set at the end of a segment
//! belongs to a batch that was never completely written (recovery cuts it as a torn tail,
//! `docs/INTERNALS.md`, "Recovery"). The CRC covers it; the chain hash does not (it says
//! where a batch ends, not what the stream holds). Frames without the bit are each a whole
//! batch, which is how every frame written before the bit existed reads.
//!
//! The link sits at the end of the frame, just before the CRC, for the same reason the chain
//! hash takes it last: everything before it (header, compression, payload copy and their CRC)
//! can be encoded by any thread before the predecessor's hash exists
//! ([`encode_unlinked`]); writing the link and finishing the CRC
//! ([`UnlinkedFrame::link`]) is 36 bytes of work per record for the thread that follows the
//! chain.

use bytes::Bytes;
use kimberlite_crypto::{ChainHash, CHAIN_HASH_LEN};
use kimberlite_types::{CompressionKind, Offset, RecordKind};

use crate::error::RecordError;
use crate::le::{le_u32, le_u64};

/// Format version written in every frame.
///
/// 3: the link (`prev_hash`) at the end of the frame and of the chain hash's input
/// (`kimberlite.chain.v3`, `docs/FORMAT.md`). Frames of any other version are refused as
/// `UnsupportedVersion` rather than misreported as broken chains.
pub const RECORD_FORMAT_VERSION: u8 = 3;

const FRAME_LEN_SIZE: usize = size_of::<u32>();
const VERSION_AT: usize = FRAME_LEN_SIZE;
const KIND_AT: usize = VERSION_AT + size_of::<u8>();
const COMPRESSION_AT: usize = KIND_AT + size_of::<u8>();
const FLAGS_AT: usize = COMPRESSION_AT + size_of::<u8>();
const OFFSET_AT: usize = FLAGS_AT + size_of::<u8>();
const PAYLOAD_LEN_AT: usize = OFFSET_AT + size_of::<u64>();

/// Bytes of a record frame before the payload (`docs/FORMAT.md`, "Record frame").
pub const RECORD_HEADER_LEN: usize = PAYLOAD_LEN_AT + size_of::<u32>();
/// Bytes of the CRC32C that ends a frame.
const CRC_LEN: usize = size_of::<u32>();
/// Bytes after the payload: the link (`prev_hash`) and the CRC32C.
pub const RECORD_TRAILER_LEN: usize = CHAIN_HASH_LEN + CRC_LEN;
/// Bytes a frame adds to its stored payload.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + RECORD_TRAILER_LEN;

/// Largest event payload, uncompressed (64 MiB). Larger events are refused at append.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024 * 1024;
/// Largest valid frame. A compressed payload is only stored when smaller than the original,
/// so no frame exceeds the overhead plus the largest payload.
pub const MAX_FRAME_LEN: usize = RECORD_OVERHEAD + MAX_PAYLOAD_LEN;

const FLAG_HAS_PREV_HASH: u8 = 0b0000_0001;
/// Flag bit 1: the frame is not the last of its batch.
const FLAG_BATCH_CONTINUES: u8 = 0b0000_0010;
/// Every flag bit a frame may have set.
const KNOWN_FLAGS: u8 = FLAG_HAS_PREV_HASH | FLAG_BATCH_CONTINUES;

const _: () = {
    assert!(RECORD_HEADER_LEN == 20);
    assert!(RECORD_TRAILER_LEN == 36);
    assert!(RECORD_OVERHEAD == 56);
    // The length prefix and the payload length are u32 fields.
    assert!(MAX_FRAME_LEN <= u32::MAX as usize);
};

/// One stored record: an event (or restart record) with its position and chain link.
///
/// The payload held here is always the original, uncompressed bytes; `compression` is the
/// codec used (or requested) for the stored frame. Encoding falls back to
/// [`CompressionKind::None`] when the codec does not make the payload smaller, so a decoded
/// record reports the codec actually stored.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use kimberlite_storage::Record;
/// use kimberlite_types::Offset;
///
/// let record = Record::new(Offset::ZERO, None, Bytes::from_static(b"patient 17 viewed"));
/// let frame = record.to_bytes();
/// let (decoded, consumed) = Record::from_bytes(&frame).unwrap();
/// assert_eq!(consumed, frame.len());
/// assert_eq!(decoded.payload(), record.payload());
/// assert_eq!(decoded.compute_hash(), record.compute_hash());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    offset: Offset,
    prev_hash: Option<ChainHash>,
    kind: RecordKind,
    compression: CompressionKind,
    payload: Bytes,
    continues_batch: bool,
}

impl Record {
    /// A data record stored uncompressed.
    #[must_use]
    pub fn new(offset: Offset, prev_hash: Option<ChainHash>, payload: Bytes) -> Self {
        Self::with_compression(
            offset,
            prev_hash,
            RecordKind::Data,
            CompressionKind::None,
            payload,
        )
    }

    /// A record of any kind, to be stored with `compression` when that makes it smaller.
    #[must_use]
    pub fn with_compression(
        offset: Offset,
        prev_hash: Option<ChainHash>,
        kind: RecordKind,
        compression: CompressionKind,
        payload: Bytes,
    ) -> Self {
        Self {
            offset,
            prev_hash,
            kind,
            compression,
            payload,
            continues_batch: false,
        }
    }

    /// The same record, marked as not the last frame of its batch (`continues`) or as the
    /// last one. Not covered by the chain hash (flag bit 1, `docs/FORMAT.md`).
    #[must_use]
    pub fn with_batch_continues(mut self, continues: bool) -> Self {
        self.continues_batch = continues;
        self
    }

    /// Whether more frames of this record's batch follow it (flag bit 1); false for the last
    /// frame of a batch, and for every frame written before batches were marked.
    #[must_use]
    pub fn continues_batch(&self) -> bool {
        self.continues_batch
    }

    /// The record's offset. A restart record carries the offset of the next data record.
    #[must_use]
    pub fn offset(&self) -> Offset {
        self.offset
    }

    /// Chain hash of the stream's previous data record; `None` at the start of the stream.
    #[must_use]
    pub fn prev_hash(&self) -> Option<ChainHash> {
        self.prev_hash
    }

    /// Data or restart record.
    #[must_use]
    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// True for [`RecordKind::Restart`] records.
    #[must_use]
    pub fn is_restart(&self) -> bool {
        self.kind == RecordKind::Restart
    }

    /// The codec requested (before encoding) or stored (after decoding).
    #[must_use]
    pub fn compression(&self) -> CompressionKind {
        self.compression
    }

    /// The original, uncompressed payload.
    #[must_use]
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The payload, by value (no reference-count round trip when the record is dropped).
    #[must_use]
    pub fn into_payload(self) -> Bytes {
        self.payload
    }

    /// This record's chain hash: over its offset, `prev_hash`, kind and uncompressed payload.
    /// See [`ChainHash::compute`].
    #[must_use]
    pub fn compute_hash(&self) -> ChainHash {
        ChainHash::compute(
            self.prev_hash.as_ref(),
            self.offset,
            self.kind,
            &self.payload,
        )
    }

    /// Encodes the frame into a new buffer. See [`Record::encode_into`].
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(RECORD_OVERHEAD + self.payload.len());
        self.encode_into(&mut out);
        Bytes::from(out)
    }

    /// Appends the frame to `out` and returns its length in bytes.
    ///
    /// # Panics
    ///
    /// Panics if the payload is longer than [`MAX_PAYLOAD_LEN`]; backends check lengths and
    /// return [`crate::StorageError::PayloadTooLarge`] before they encode.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> usize {
        let frame = encode_unlinked(
            out,
            self.offset,
            self.kind,
            self.compression,
            self.prev_hash.is_some(),
            self.continues_batch,
            &self.payload,
        );
        frame.link(out, self.prev_hash.as_ref());
        frame.len
    }

    /// Decodes the frame at the start of `bytes`; returns the record and the bytes consumed.
    ///
    /// Bytes after the frame are ignored. An uncompressed payload is a zero-copy slice of
    /// `bytes`. Never panics: any malformed input is a [`RecordError`].
    pub fn from_bytes(bytes: &Bytes) -> Result<(Record, usize), RecordError> {
        Self::from_bytes_at(bytes, 0)
    }

    /// [`Self::from_bytes`] of the frame that starts `start` bytes into `source` (nothing
    /// when `start` is past its end): the payload is a slice of `source`, and nothing else
    /// of it is copied or counted.
    pub fn from_bytes_at(source: &Bytes, start: usize) -> Result<(Record, usize), RecordError> {
        let bytes = source.get(start..).unwrap_or_default();
        let frame_len = read_frame_len(bytes)?;
        let frame = bytes.get(..frame_len).ok_or(RecordError::Truncated {
            needed: frame_len as u64,
            available: bytes.len() as u64,
        })?;
        let link_at = frame_len - RECORD_TRAILER_LEN;
        let crc_at = frame_len - CRC_LEN;
        let stored_crc = le_u32(frame, crc_at);
        let computed_crc = crc32c::crc32c(frame.get(..crc_at).unwrap_or_default());
        if stored_crc != computed_crc {
            return Err(RecordError::ChecksumMismatch {
                stored: stored_crc,
                computed: computed_crc,
            });
        }
        let version = byte_at(frame, VERSION_AT);
        if version != RECORD_FORMAT_VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        let kind_byte = byte_at(frame, KIND_AT);
        let kind = RecordKind::from_byte(kind_byte).ok_or(RecordError::UnknownKind(kind_byte))?;
        let compression_byte = byte_at(frame, COMPRESSION_AT);
        let compression = CompressionKind::from_byte(compression_byte)
            .ok_or(RecordError::UnknownCompression(compression_byte))?;
        let flags = byte_at(frame, FLAGS_AT);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(RecordError::UnknownFlags(flags));
        }
        let offset = Offset::new(le_u64(frame, OFFSET_AT));
        let prev_hash = (flags & FLAG_HAS_PREV_HASH != 0).then(|| {
            let mut hash = [0u8; CHAIN_HASH_LEN];
            if let Some(src) = frame.get(link_at..crc_at) {
                hash.copy_from_slice(src);
            }
            ChainHash::from_bytes(hash)
        });
        let payload_len = le_u32(frame, PAYLOAD_LEN_AT) as usize;
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(RecordError::PayloadTooLarge {
                len: payload_len as u64,
                max: MAX_PAYLOAD_LEN as u64,
            });
        }
        let stored = source.slice(start + RECORD_HEADER_LEN..start + link_at);
        let payload = decode_payload(compression, stored, payload_len)?;
        let record = Record {
            offset,
            prev_hash,
            kind,
            compression,
            payload,
            continues_batch: flags & FLAG_BATCH_CONTINUES != 0,
        };
        Ok((record, frame_len))
    }
}

/// A frame encoded by [`encode_unlinked`] up to its link: the header, the stored payload and
/// the CRC32C of both are there; the 36 bytes of `prev_hash` and CRC are zeros until
/// [`UnlinkedFrame::link`] writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlinkedFrame {
    /// Where the frame starts in the buffer it was encoded into.
    pub start: usize,
    /// The whole frame's length.
    pub len: usize,
    /// Whether the payload is stored compressed.
    pub compressed: bool,
    has_prev: bool,
    /// CRC32C of the frame's bytes before the link.
    crc_before_link: u32,
}

impl UnlinkedFrame {
    /// Writes the link to the record's predecessor (`prev`, `None` only when the frame was
    /// encoded without one) and the frame's CRC32C into `buffer`, the buffer (or a copy of
    /// it, at the same positions) that [`encode_unlinked`] wrote into.
    ///
    /// # Panics
    ///
    /// Panics if `prev`'s presence differs from what the frame's flags say, or if the frame
    /// is not inside `buffer`: both are bugs of the caller, which would otherwise write a
    /// frame that does not decode or links wrongly.
    pub fn link(&self, buffer: &mut [u8], prev: Option<&ChainHash>) {
        assert_eq!(
            prev.is_some(),
            self.has_prev,
            "frame encoded with prev_hash present = {}, linked with {prev:?}",
            self.has_prev
        );
        let link_at = self.start + self.len - RECORD_TRAILER_LEN;
        let trailer = buffer
            .get_mut(link_at..self.start + self.len)
            .expect("an unlinked frame is linked in the buffer it was encoded into");
        let (link, crc) = trailer.split_at_mut(CHAIN_HASH_LEN);
        link.copy_from_slice(prev.map_or(&[0u8; CHAIN_HASH_LEN], |prev| prev.as_bytes()));
        let crc_value = crc32c::crc32c_append(self.crc_before_link, link);
        crc.copy_from_slice(&crc_value.to_le_bytes());
    }
}

/// Appends the frame of a record to `out`, all but its link ([`UnlinkedFrame::link`] writes
/// that): the part of encoding that does not need the predecessor's chain hash, so any thread
/// can do it ahead of the chain. `has_prev` is whether the record will have a predecessor
/// (every data record but the one at offset 0); `continues_batch` whether it is not the last
/// frame of its batch. The payload is stored LZ4-compressed when `compression` asks for it
/// and that makes it smaller.
///
/// # Panics
///
/// Panics if the payload is longer than [`MAX_PAYLOAD_LEN`]; backends check lengths and
/// return [`crate::StorageError::PayloadTooLarge`] before they encode.
pub fn encode_unlinked(
    out: &mut Vec<u8>,
    offset: Offset,
    kind: RecordKind,
    compression: CompressionKind,
    has_prev: bool,
    continues_batch: bool,
    payload: &[u8],
) -> UnlinkedFrame {
    assert!(
        payload.len() <= MAX_PAYLOAD_LEN,
        "record payload of {} bytes exceeds MAX_PAYLOAD_LEN",
        payload.len()
    );
    let start = out.len();
    out.reserve(RECORD_OVERHEAD + payload.len());
    // The header, with a zero length prefix and `None` as the codec until the stored payload
    // is known.
    out.extend_from_slice(&[0u8; FRAME_LEN_SIZE]);
    out.push(RECORD_FORMAT_VERSION);
    out.push(kind.as_byte());
    out.push(CompressionKind::None.as_byte());
    let prev_flag = if has_prev { FLAG_HAS_PREV_HASH } else { 0 };
    let batch_flag = if continues_batch {
        FLAG_BATCH_CONTINUES
    } else {
        0
    };
    out.push(prev_flag | batch_flag);
    out.extend_from_slice(&offset.as_u64().to_le_bytes());
    out.extend_from_slice(&len_u32(payload.len()).to_le_bytes());
    let payload_at = out.len();
    // Compressed straight into `out` (no buffer per record), kept only when smaller.
    let compressed =
        compression == CompressionKind::Lz4 && compress_lz4_into(payload, out, payload_at);
    if compressed {
        if let Some(byte) = out.get_mut(start + COMPRESSION_AT) {
            *byte = CompressionKind::Lz4.as_byte();
        }
    } else {
        out.extend_from_slice(payload);
    }
    let len = out.len() - start + RECORD_TRAILER_LEN;
    if let Some(prefix) = out.get_mut(start..start + FRAME_LEN_SIZE) {
        prefix.copy_from_slice(&len_u32(len).to_le_bytes());
    }
    let crc_before_link = crc32c::crc32c(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&[0u8; RECORD_TRAILER_LEN]);
    UnlinkedFrame {
        start,
        len,
        compressed,
        has_prev,
        crc_before_link,
    }
}

/// LZ4-compresses `payload` into `out` from `at` (where `out` ends) and returns true when
/// the result is smaller than `payload`; otherwise leaves `out` as it was and returns false.
fn compress_lz4_into(payload: &[u8], out: &mut Vec<u8>, at: usize) -> bool {
    debug_assert_eq!(out.len(), at);
    out.resize(
        at + lz4_flex::block::get_maximum_output_size(payload.len()),
        0,
    );
    let written = out
        .get_mut(at..)
        .and_then(|room| lz4_flex::block::compress_into(payload, room).ok());
    match written {
        Some(len) if len < payload.len() => {
            out.truncate(at + len);
            true
        }
        _ => {
            out.truncate(at);
            false
        }
    }
}

/// What a frame's header claims, read **without** checking its CRC ([`peek_frame`]).
///
/// Only a hint, for deciding how many frames a read should hand to its verifying threads;
/// nothing is returned or trusted on its strength (every frame is still fully decoded and
/// linked before its payload is returned). A wrong hint costs work, never correctness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHint {
    /// The frame's length as stored (bounds-checked, and within the bytes given).
    pub frame_len: usize,
    /// The offset the header claims.
    pub offset: Offset,
    /// Whether the header claims a restart record.
    pub is_restart: bool,
    /// Whether the header claims more frames of its batch follow (flag bit 1).
    pub continues_batch: bool,
    /// The uncompressed payload length the header claims.
    pub payload_len: u64,
}

/// Reads the header of the frame at the start of `bytes` without checking its CRC. Fails
/// exactly when [`Record::from_bytes`] fails on the frame's length (too small, too large,
/// or past the end of `bytes`), i.e. when the next frame's position is unknowable.
pub fn peek_frame(bytes: &[u8]) -> Result<FrameHint, RecordError> {
    let frame_len = read_frame_len(bytes)?;
    if frame_len > bytes.len() {
        return Err(RecordError::Truncated {
            needed: frame_len as u64,
            available: bytes.len() as u64,
        });
    }
    Ok(FrameHint {
        frame_len,
        offset: Offset::new(le_u64(bytes, OFFSET_AT)),
        is_restart: RecordKind::from_byte(byte_at(bytes, KIND_AT)) == Some(RecordKind::Restart),
        continues_batch: byte_at(bytes, FLAGS_AT) & FLAG_BATCH_CONTINUES != 0,
        payload_len: u64::from(le_u32(bytes, PAYLOAD_LEN_AT)),
    })
}

/// Reads and bounds-checks the length prefix at the start of `bytes`.
fn read_frame_len(bytes: &[u8]) -> Result<usize, RecordError> {
    let prefix = bytes.get(..FRAME_LEN_SIZE).ok_or(RecordError::Truncated {
        needed: FRAME_LEN_SIZE as u64,
        available: bytes.len() as u64,
    })?;
    let frame_len = le_u32(prefix, 0) as usize;
    if frame_len < RECORD_OVERHEAD {
        return Err(RecordError::FrameTooSmall {
            len: frame_len as u64,
            min: RECORD_OVERHEAD as u64,
        });
    }
    if frame_len > MAX_FRAME_LEN {
        return Err(RecordError::FrameTooLarge {
            len: frame_len as u64,
            max: MAX_FRAME_LEN as u64,
        });
    }
    Ok(frame_len)
}

/// Turns the stored payload bytes back into the original payload of `payload_len` bytes.
fn decode_payload(
    compression: CompressionKind,
    stored: Bytes,
    payload_len: usize,
) -> Result<Bytes, RecordError> {
    match compression {
        CompressionKind::None => {
            if stored.len() != payload_len {
                return Err(RecordError::PayloadLengthMismatch {
                    declared: payload_len as u64,
                    actual: stored.len() as u64,
                });
            }
            Ok(stored)
        }
        CompressionKind::Lz4 => {
            let mut payload = vec![0u8; payload_len];
            let written = lz4_flex::block::decompress_into(&stored, &mut payload)
                .map_err(|error| RecordError::Decompression(error.to_string()))?;
            if written != payload_len {
                return Err(RecordError::PayloadLengthMismatch {
                    declared: payload_len as u64,
                    actual: written as u64,
                });
            }
            Ok(Bytes::from(payload))
        }
    }
}

/// Converts a length already bounded by [`MAX_FRAME_LEN`] to its `u32` field.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("lengths are bounded by MAX_FRAME_LEN, which fits in u32")
}

// The readers below are only called at positions inside a frame whose length was checked to be
// at least RECORD_OVERHEAD; a short slice reads as zeros rather than panicking.

fn byte_at(frame: &[u8], at: usize) -> u8 {
    frame.get(at).copied().unwrap_or_default()
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
