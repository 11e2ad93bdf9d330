//! The hash chain that makes a Kimberlite stream tamper-evident.
//!
//! Every record's [`ChainHash`] is SHA-256 over a domain-separation prefix, the record's
//! offset, its predecessor's chain hash, its kind and its *uncompressed* payload
//! ([`ChainHash::compute`]). The hash of a stream's last record therefore commits to the whole
//! stream: changing, dropping, reordering or inserting any event changes every later hash.
//!
//! The exact bytes hashed are specified in `docs/FORMAT.md` ("Chain hash"), with test vectors
//! that this crate's tests check. This is a pure crate: no I/O, no state.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use kimberlite_types::{Offset, RecordKind};
use sha2::{Digest, Sha256};

/// Prefix of every chain-hash input: `b"kimberlite.chain.v2\0"` padded with zeros to one
/// SHA-256 block (64 bytes).
///
/// It keeps a chain hash from ever equalling a SHA-256 computed for another purpose over the
/// same bytes, and the version number lets a future format hash differently without
/// ambiguity. It fills exactly one block so that its compression is done once per process
/// ([`ChainHash::compute`] starts from the saved state after it): the domain separation costs
/// no hashing per record. (Format 1 used a 20-byte prefix that every record paid for; at
/// 256-byte payloads that was a sixth SHA-256 block per record.)
pub const CHAIN_HASH_DOMAIN: &[u8; 64] =
    b"kimberlite.chain.v2\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// The SHA-256 state after [`CHAIN_HASH_DOMAIN`], computed once; cloning it is a copy of
/// 32 bytes of state and a counter.
static AFTER_DOMAIN: LazyLock<Sha256> =
    LazyLock::new(|| Sha256::new_with_prefix(CHAIN_HASH_DOMAIN));

/// Bytes hashed after the domain block and before the payload: offset (8), presence (1),
/// previous hash (32), kind (1), payload length (8).
const CHAIN_HEADER_LEN: usize = 8 + 1 + CHAIN_HASH_LEN + 1 + 8;

/// Length of a [`ChainHash`] in bytes.
pub const CHAIN_HASH_LEN: usize = 32;

/// A SHA-256 chain hash (32 bytes).
///
/// Displayed and parsed as 64 lowercase hex digits.
///
/// # Examples
///
/// ```
/// use kimberlite_crypto::ChainHash;
/// use kimberlite_types::{Offset, RecordKind};
///
/// let first = ChainHash::compute(None, Offset::ZERO, RecordKind::Data, b"hello");
/// let second = ChainHash::compute(Some(&first), Offset::new(1), RecordKind::Data, b"world");
/// assert_ne!(first, second);
/// let parsed: ChainHash = second.to_string().parse().unwrap();
/// assert_eq!(parsed, second);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainHash([u8; CHAIN_HASH_LEN]);

impl ChainHash {
    /// Wraps 32 raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; CHAIN_HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; CHAIN_HASH_LEN] {
        &self.0
    }

    /// Computes the chain hash of one record (see the module docs and `docs/FORMAT.md`).
    ///
    /// `prev` is the chain hash of the stream's previous *data* record, `None` only for the
    /// record at offset 0. The payload is the original, uncompressed event.
    #[must_use]
    pub fn compute(
        prev: Option<&ChainHash>,
        offset: Offset,
        kind: RecordKind,
        payload: &[u8],
    ) -> ChainHash {
        let mut header = [0u8; CHAIN_HEADER_LEN];
        let (offset_bytes, rest) = header.split_at_mut(8);
        offset_bytes.copy_from_slice(&offset.as_u64().to_le_bytes());
        let (presence, rest) = rest.split_at_mut(1);
        let (prev_bytes, rest) = rest.split_at_mut(CHAIN_HASH_LEN);
        if let Some(prev) = prev {
            presence.fill(1);
            prev_bytes.copy_from_slice(&prev.0);
        }
        let (kind_byte, len_bytes) = rest.split_at_mut(1);
        kind_byte.fill(kind.as_byte());
        len_bytes.copy_from_slice(&(payload.len() as u64).to_le_bytes());

        let mut hasher = AFTER_DOMAIN.clone();
        hasher.update(header);
        hasher.update(payload);
        ChainHash(hasher.finalize().into())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

/// Why a string is not a [`ChainHash`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseChainHashError {
    reason: String,
}

impl fmt::Display for ParseChainHashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a chain hash (expected 64 hex digits): {}",
            self.reason
        )
    }
}

impl std::error::Error for ParseChainHashError {}

impl FromStr for ChainHash {
    type Err = ParseChainHashError;

    /// Parses 64 hex digits (either case).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; CHAIN_HASH_LEN];
        hex::decode_to_slice(text, &mut bytes).map_err(|error| ParseChainHashError {
            reason: error.to_string(),
        })?;
        Ok(ChainHash(bytes))
    }
}

#[cfg(test)]
mod tests;
