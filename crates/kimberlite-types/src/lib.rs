//! Core identifiers shared by every Kimberlite crate.
//!
//! - [`StreamId`]: names one append-only stream (a `u64` newtype).
//! - [`Offset`]: the position of an event inside its stream. Offsets start at 0 and are dense:
//!   a batch of `n` events advances the stream's next offset by exactly `n`.
//! - [`RecordKind`]: whether a stored record carries an event ([`RecordKind::Data`]) or is a
//!   [`RecordKind::Restart`] that lets a verified read start part-way through a stream.
//! - [`CompressionKind`]: how a record's payload is stored on disk.
//!
//! The byte values of [`RecordKind`] and [`CompressionKind`] are part of the on-disk format
//! (`docs/FORMAT.md`); they never change meaning once released.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

use std::fmt;
use std::ops::{Add, AddAssign};

/// Identifies one append-only stream of events.
///
/// # Examples
///
/// ```
/// use kimberlite_types::StreamId;
/// let id = StreamId::new(7);
/// assert_eq!(id, StreamId::from(7));
/// assert_eq!(id.as_u64(), 7);
/// assert_eq!(id.to_string(), "7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId(u64);

impl StreamId {
    /// Wraps a raw stream number.
    #[must_use]
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// Returns the raw stream number.
    #[must_use]
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl From<u64> for StreamId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl From<StreamId> for u64 {
    fn from(id: StreamId) -> Self {
        id.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The position of an event in its stream, counted from 0.
///
/// Offsets are dense: a stream holding `n` events has offsets `0..n`, and its *next offset*
/// (where the following append lands) is `n`.
///
/// # Examples
///
/// ```
/// use kimberlite_types::Offset;
/// let mut next = Offset::ZERO;
/// next += Offset::from(3u64);
/// assert_eq!(next, Offset::new(3));
/// assert_eq!((next + Offset::new(2)).as_u64(), 5);
/// assert!(Offset::new(1) < Offset::new(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(u64);

impl Offset {
    /// The first offset of every stream.
    pub const ZERO: Offset = Offset(0);

    /// Wraps a raw offset.
    #[must_use]
    pub const fn new(offset: u64) -> Self {
        Self(offset)
    }

    /// Returns the raw offset.
    #[must_use]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Returns `self + count`, or `None` if that would overflow `u64`.
    #[must_use]
    pub const fn checked_add(self, count: u64) -> Option<Offset> {
        match self.0.checked_add(count) {
            Some(sum) => Some(Offset(sum)),
            None => None,
        }
    }
}

impl From<u64> for Offset {
    fn from(offset: u64) -> Self {
        Self(offset)
    }
}

impl From<Offset> for u64 {
    fn from(offset: Offset) -> Self {
        offset.0
    }
}

/// Adds two offsets.
///
/// # Panics
///
/// Panics if the sum overflows `u64` (2^64 events in one stream cannot be stored; reaching it
/// is a bug in the caller). Use [`Offset::checked_add`] to handle it.
impl Add for Offset {
    type Output = Offset;

    fn add(self, rhs: Offset) -> Offset {
        Offset(
            self.0
                .checked_add(rhs.0)
                .expect("offset overflow: a stream cannot hold 2^64 events"),
        )
    }
}

/// See [`Add`] for the overflow rule.
impl AddAssign for Offset {
    fn add_assign(&mut self, rhs: Offset) {
        *self = *self + rhs;
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a stored record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// An application event; consumes one offset and one link of the hash chain.
    Data = 0,
    /// A restart record: consumes no offset and does not change the chain hash of any
    /// data record. It repeats the chain head at its position so that a verified read can start
    /// there instead of at the stream's first record.
    Restart = 1,
}

impl RecordKind {
    /// The byte written to disk for this kind.
    #[must_use]
    pub const fn as_byte(self) -> u8 {
        self as u8
    }

    /// Parses an on-disk kind byte; `None` for a value no version of the format defines.
    #[must_use]
    pub const fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            0 => Some(RecordKind::Data),
            1 => Some(RecordKind::Restart),
            _ => None,
        }
    }
}

/// How a record's payload is stored. The chain hash always covers the *uncompressed* payload,
/// so compression is a storage detail that never changes a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum CompressionKind {
    /// Stored as given.
    #[default]
    None = 0,
    /// LZ4 block format (`lz4_flex`), used for a record only when it makes the record smaller.
    Lz4 = 1,
}

impl CompressionKind {
    /// The byte written to disk for this codec.
    #[must_use]
    pub const fn as_byte(self) -> u8 {
        self as u8
    }

    /// Parses an on-disk codec byte; `None` for a value no version of the format defines.
    #[must_use]
    pub const fn from_byte(byte: u8) -> Option<CompressionKind> {
        match byte {
            0 => Some(CompressionKind::None),
            1 => Some(CompressionKind::Lz4),
            _ => None,
        }
    }
}

impl fmt::Display for CompressionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompressionKind::None => "none",
            CompressionKind::Lz4 => "lz4",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_bytes_round_trip_and_reject_unknown() {
        for kind in [RecordKind::Data, RecordKind::Restart] {
            assert_eq!(RecordKind::from_byte(kind.as_byte()), Some(kind));
        }
        for compression in [CompressionKind::None, CompressionKind::Lz4] {
            assert_eq!(
                CompressionKind::from_byte(compression.as_byte()),
                Some(compression)
            );
        }
        for byte in 2..=u8::MAX {
            assert_eq!(RecordKind::from_byte(byte), None);
            assert_eq!(CompressionKind::from_byte(byte), None);
        }
    }

    #[test]
    fn offset_arithmetic_and_order() {
        let mut offset = Offset::new(10);
        offset += Offset::from(5u64);
        assert_eq!(offset.as_u64(), 15);
        assert!(Offset::ZERO < offset);
        assert_eq!(Offset::new(u64::MAX).checked_add(1), None);
        assert_eq!(Offset::new(1).checked_add(1), Some(Offset::new(2)));
        assert_eq!(u64::from(StreamId::new(9)), 9);
    }

    #[test]
    #[should_panic(expected = "offset overflow")]
    fn offset_add_overflow_panics() {
        let _ = Offset::new(u64::MAX) + Offset::new(1);
    }
}
