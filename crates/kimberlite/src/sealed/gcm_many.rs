//! AES-256-GCM (NIST SP 800-38D, 96-bit nonces) for many short messages under one key.
//!
//! Why not `aes-gcm` per message: a 256-byte message is 17 AES blocks, too few for the widest
//! AES path (VAES-512 takes 64 blocks at a time), and its GHASH reduces after every block. Here
//! the CTR keystream of a whole group of messages (each message's tag mask block, then its
//! counter blocks) is encrypted in one call of the block cipher; then each message, in one
//! pass, is XORed into its envelope and its blocks laid out for GHASH, which is computed as
//! POLYVAL (`polyval`: 4 blocks per reduction) from the state after the group's associated
//! data (the same for every message of a group: absorbed once) and tagged on its own, so every
//! message is still its own AEAD message with its own nonce. The bytes are `aes-gcm`'s (tests:
//! the NIST vectors, and `aes-gcm` itself over many lengths and nonces); opening stays with
//! `aes-gcm` (docs/PERFORMANCE.md, section "Design decisions").
//!
//! GHASH as POLYVAL (RFC 8452, appendix A): `GHASH(H, X_1..X_n)` is
//! `ByteReverse(POLYVAL(mulX_POLYVAL(ByteReverse(H)), ByteReverse(X_1)..ByteReverse(X_n)))`.
//! Reversing each block as the XOR writes it costs less than `ghash`'s wrapper, which copies
//! and reverses every group of blocks again inside each call.

use aes::cipher::array::Array;
use aes::cipher::consts::{U16, U32};
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use polyval::hazmat::FieldElement;
use polyval::universal_hash::UniversalHash;
use polyval::Polyval;
use zeroize::Zeroize;

/// An AES (and GHASH) block.
pub(crate) type Block = Array<u8, U16>;

/// Bytes of a block.
const BLOCK_LEN: usize = 16;

/// Blocks `polyval` takes per reduction (its `ParBlocksSize` with carry-less multiplication).
/// Only speed depends on it: the tag is the same for any value.
const GHASH_GROUP: usize = 4;

/// Size of a GCM nonce here (the 96-bit case: `J0 = nonce || 1`).
pub(crate) const NONCE_LEN: usize = 12;

/// Longest message sealed here; a longer one is sealed by `aes-gcm` alone, whose per-message
/// cost is small beside its length.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// Keystream blocks a group of messages may take at most (but a group always takes at least one
/// message): enough for whole rounds of the widest AES path, small enough to stay in cache.
pub(crate) const GROUP_BLOCKS: usize = 1024;

/// Keystream blocks message of `len` bytes takes: its tag mask, then its counter blocks.
#[must_use]
pub(crate) const fn blocks_of(len: usize) -> usize {
    1 + len.div_ceil(BLOCK_LEN)
}

// A group is never longer than GROUP_BLOCKS, even of one message: a buffer of GROUP_BLOCKS
// blocks holds any group's keystream without moving.
const _: () = assert!(blocks_of(MAX_MESSAGE) <= GROUP_BLOCKS);

/// One AES-256-GCM key, ready to seal groups of messages.
pub(crate) struct ManyGcm {
    aes: aes::Aes256,
    /// GHASH's POLYVAL, keyed with `mulX_POLYVAL(ByteReverse(H))` where `H = AES(0^128)`;
    /// never updated: cloned for each message.
    polyval: Polyval,
}

impl ManyGcm {
    /// The key `key`'s schedule and GHASH key. Both are zeroed when dropped, as are the
    /// temporaries they are made from.
    #[must_use]
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let mut key_block: Array<u8, U32> = Array::from(*key);
        let aes = aes::Aes256::new(&key_block);
        key_block.as_mut_slice().zeroize();
        let mut h = Block::default();
        aes.encrypt_block(&mut h);
        // RFC 8452, appendix A: POLYVAL's key is mulX_POLYVAL(ByteReverse(H)).
        let mut polyval_key = FieldElement::from(&h).reverse().mulx();
        let polyval = Polyval::new(&Block::from(polyval_key));
        h.as_mut_slice().zeroize();
        polyval_key.zeroize();
        Self { aes, polyval }
    }

    /// Makes in `keystream` (its contents replaced) the keystream of `messages`, each given by
    /// its nonce and length: for each, in order, [`blocks_of`] its length blocks, `E(J0)` then
    /// `E(inc32(J0))`, `E(inc32^2(J0))`, ... (SP 800-38D, 7.1).
    pub(crate) fn keystream(
        &self,
        messages: impl IntoIterator<Item = ([u8; NONCE_LEN], usize)>,
        keystream: &mut Vec<Block>,
    ) {
        keystream.clear();
        for (nonce, len) in messages {
            let j0 = nonce
                .iter()
                .fold(0u128, |wide, byte| wide << 8 | u128::from(*byte))
                << 32;
            // Counter 1 is J0 (the tag mask); the text's blocks start at 2. `inc32` wraps in
            // the low 32 bits, never carrying into the nonce.
            keystream.extend(
                (1..)
                    .take(blocks_of(len))
                    .map(|counter: u32| Block::from((j0 | u128::from(counter)).to_be_bytes())),
            );
        }
        self.aes.encrypt_blocks(keystream);
    }

    /// GHASH's state after the associated data `aad`, where every message sealed with this
    /// AAD starts: absorbed once for a group of messages rather than once for each.
    #[must_use]
    pub(crate) fn after_aad(&self, aad: &[u8]) -> AfterAad {
        // Zero blocks first, so that the AAD is whole groups of GHASH_GROUP blocks (POLYVAL
        // from its zero state is unchanged by leading zero blocks: (0 + 0) * H = 0).
        let (whole, tail) = Array::<u8, U16>::slice_as_chunks(aad);
        let blocks = whole.len() + usize::from(!tail.is_empty());
        let mut input = vec![Block::default(); blocks.next_multiple_of(GHASH_GROUP) - blocks];
        input.extend(whole.iter().map(reversed));
        if !tail.is_empty() {
            input.push(reversed(&padded(tail)));
        }
        let mut polyval = self.polyval.clone();
        polyval.update(&input);
        AfterAad {
            polyval,
            aad_bits: bits(aad.len()),
        }
    }

    /// Appends to `out` the ciphertext of `text` under `keystream` (its message's
    /// [`blocks_of`] `text.len()` blocks, as [`Self::keystream`] made them) and returns the
    /// tag over the associated data `aad` was made from and the ciphertext. `scratch` is
    /// working memory. A keystream of another length is refused, `out` untouched.
    pub(crate) fn seal_onto(
        &self,
        keystream: &[Block],
        aad: &AfterAad,
        text: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut Vec<Block>,
    ) -> Result<[u8; BLOCK_LEN], WrongKeystream> {
        let Some((mask, counters)) = keystream
            .split_first()
            .filter(|_| keystream.len() == blocks_of(text.len()))
        else {
            return Err(WrongKeystream);
        };
        // GHASH's input past the AAD, as POLYVAL blocks: the ciphertext, then the lengths.
        let (whole, tail) = Array::<u8, U16>::slice_as_chunks(text);
        let start = out.len();
        out.resize(start + whole.len() * BLOCK_LEN, 0);
        scratch.clear();
        scratch.resize(whole.len(), Block::default());
        let (sealed, _) =
            Array::<u8, U16>::slice_as_chunks_mut(out.get_mut(start..).unwrap_or_default());
        for (((block, key), sealed), hashed) in whole
            .iter()
            .zip(counters)
            .zip(sealed)
            .zip(scratch.iter_mut())
        {
            *sealed = xored(block, key);
            *hashed = reversed(sealed);
        }
        if let Some(key) = counters.get(whole.len()).filter(|_| !tail.is_empty()) {
            let last = xored(&padded(tail), key);
            // Past the text, `last` holds keystream, not ciphertext: GHASH pads with zeros.
            let sealed = last.get(..tail.len()).unwrap_or_default();
            out.extend_from_slice(sealed);
            scratch.push(reversed(&padded(sealed)));
        }
        let lengths = u128::from(aad.aad_bits) << 64 | u128::from(bits(text.len()));
        scratch.push(Block::from(lengths.to_le_bytes()));
        let mut polyval = aad.polyval.clone();
        polyval.update(scratch);
        let ghash = u128::from_le_bytes(polyval.finalize().0);
        Ok((ghash ^ u128::from_be_bytes(mask.0)).to_be_bytes())
    }

    /// One message sealed in place: its tag.
    #[cfg(test)]
    pub(crate) fn seal_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        text: &mut [u8],
    ) -> [u8; BLOCK_LEN] {
        let mut keystream = Vec::new();
        self.keystream([(*nonce, text.len())], &mut keystream);
        let mut sealed = Vec::new();
        let tag = self
            .seal_onto(
                &keystream,
                &self.after_aad(aad),
                text,
                &mut sealed,
                &mut Vec::new(),
            )
            .unwrap();
        text.copy_from_slice(&sealed);
        tag
    }
}

/// GHASH's state after a message's associated data ([`ManyGcm::after_aad`]); zeroed when
/// dropped, like the key it holds.
pub(crate) struct AfterAad {
    polyval: Polyval,
    aad_bits: u64,
}

/// A keystream that is not its message's: a bug in the caller, refused rather than leave any
/// of the text unencrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongKeystream;

/// `block` with its bytes in reverse order: a GHASH block as POLYVAL takes it.
fn reversed(block: &Block) -> Block {
    Block::from(u128::from_be_bytes(block.0).to_le_bytes())
}

/// `block` XOR `key`.
fn xored(block: &Block, key: &Block) -> Block {
    Block::from((u128::from_ne_bytes(block.0) ^ u128::from_ne_bytes(key.0)).to_ne_bytes())
}

/// `bytes` (at most a block's; any more are left out) padded with zeros to a block.
fn padded(bytes: &[u8]) -> Block {
    let mut block = Block::default();
    for (slot, byte) in block.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    block
}

/// Length in bits, as GCM's length block holds it.
fn bits(len: usize) -> u64 {
    (len as u64).wrapping_mul(8)
}

#[cfg(test)]
#[path = "gcm_many_tests.rs"]
mod tests;
