//! The hash chain that makes a Kimberlite stream tamper-evident.
//!
//! Every record's [`ChainHash`] is SHA-256 over a domain-separation prefix, the record's
//! offset, its kind, its *uncompressed* payload and, last, its predecessor's chain hash
//! ([`ChainHash::compute`]). The hash of a stream's last record therefore commits to the whole
//! stream: changing, dropping, reordering or inserting any event changes every later hash.
//!
//! The predecessor comes last (format 3) so that a chain can be built on several cores: the
//! bulk of a record's hash (the domain, its fields and its payload) does not depend on the
//! record before it and can be computed by any thread, in any order ([`UnlinkedHash::new`]);
//! only the last block or two, which take in the predecessor's hash, are computed one after
//! another ([`UnlinkedHash::link`]). With the predecessor first, the whole hash of every record
//! would wait for the one before and a chain would be built on one core.
//!
//! The exact bytes hashed are specified in `docs/FORMAT.md` ("Chain hash"), with test vectors
//! that this crate's tests check. This is a pure crate: no I/O, no state.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use kimberlite_types::{Offset, RecordKind};
use sha2::{Digest, Sha256};

/// Prefix of every chain-hash input: `b"kimberlite.chain.v3\0"` padded with zeros to one
/// SHA-256 block (64 bytes).
///
/// It keeps a chain hash from ever equalling a SHA-256 computed for another purpose over the
/// same bytes, and the version number lets a future format hash differently without
/// ambiguity. It fills exactly one block so that its compression is done once per process
/// ([`UnlinkedHash::new`] starts from the saved state after it): the domain separation costs
/// no hashing per record.
pub const CHAIN_HASH_DOMAIN: &[u8; 64] =
    b"kimberlite.chain.v3\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// The SHA-256 state after [`CHAIN_HASH_DOMAIN`], computed once; cloning it is a copy of
/// 32 bytes of state and a counter.
static AFTER_DOMAIN: LazyLock<Sha256> =
    LazyLock::new(|| Sha256::new_with_prefix(CHAIN_HASH_DOMAIN));

/// Bytes hashed after the domain block and before the payload: offset (8), kind (1),
/// payload length (8).
const CHAIN_FIELDS_LEN: usize = 8 + 1 + 8;

/// Bytes hashed after the payload: presence (1), previous hash (32).
const CHAIN_LINK_LEN: usize = 1 + CHAIN_HASH_LEN;

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
    /// record at offset 0. The payload is the original, uncompressed event. The same as
    /// [`UnlinkedHash::new`] followed by [`UnlinkedHash::link`].
    #[must_use]
    pub fn compute(
        prev: Option<&ChainHash>,
        offset: Offset,
        kind: RecordKind,
        payload: &[u8],
    ) -> ChainHash {
        UnlinkedHash::new(offset, kind, payload).link(prev)
    }
}

/// A record's chain hash with everything absorbed but the link to its predecessor: the part
/// that any thread can compute ahead, in any order (see the module docs).
///
/// Holds a SHA-256 state (about 100 bytes) and no reference to the payload.
///
/// # Examples
///
/// ```
/// use kimberlite_crypto::{ChainHash, UnlinkedHash};
/// use kimberlite_types::{Offset, RecordKind};
///
/// // Both records' payloads are hashed before the first hash is known...
/// let first = UnlinkedHash::new(Offset::ZERO, RecordKind::Data, b"hello");
/// let second = UnlinkedHash::new(Offset::new(1), RecordKind::Data, b"world");
/// // ...and linked in order.
/// let first = first.link(None);
/// let second = second.link(Some(&first));
/// assert_eq!(second, ChainHash::compute(Some(&first), Offset::new(1), RecordKind::Data, b"world"));
/// ```
#[derive(Clone)]
pub struct UnlinkedHash(Sha256);

impl UnlinkedHash {
    /// Absorbs the domain, `offset`, `kind` and `payload` (the uncompressed event).
    #[must_use]
    pub fn new(offset: Offset, kind: RecordKind, payload: &[u8]) -> Self {
        let mut fields = [0u8; CHAIN_FIELDS_LEN];
        let (offset_bytes, rest) = fields.split_at_mut(8);
        offset_bytes.copy_from_slice(&offset.as_u64().to_le_bytes());
        let (kind_byte, len_bytes) = rest.split_at_mut(1);
        kind_byte.fill(kind.as_byte());
        len_bytes.copy_from_slice(&(payload.len() as u64).to_le_bytes());

        let mut hasher = AFTER_DOMAIN.clone();
        hasher.update(fields);
        hasher.update(payload);
        UnlinkedHash(hasher)
    }

    /// Absorbs the link to the predecessor (`None` only at offset 0) and returns the record's
    /// chain hash. Costs one SHA-256 block when at most 22 bytes of the record are left over
    /// from whole blocks (256-byte payloads: 17 + 256 = 273 = 4 x 64 + 17), else two.
    #[must_use]
    pub fn link(self, prev: Option<&ChainHash>) -> ChainHash {
        let mut link = [0u8; CHAIN_LINK_LEN];
        let (presence, prev_bytes) = link.split_at_mut(1);
        if let Some(prev) = prev {
            presence.fill(1);
            prev_bytes.copy_from_slice(&prev.0);
        }
        let mut hasher = self.0;
        hasher.update(link);
        ChainHash(hasher.finalize().into())
    }
}

impl fmt::Debug for UnlinkedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlinkedHash(..)")
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
