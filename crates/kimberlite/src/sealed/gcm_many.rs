//! AES-256-GCM (NIST SP 800-38D, 96-bit nonces) for many short messages under one key.
//!
//! Why not `aes-gcm` per message: a 256-byte message is 17 AES blocks, too few for the widest
//! AES path (VAES-512 takes 64 blocks at a time), and its GHASH reduces after every block. Here
//! the CTR keystream of a whole group of messages (each message's tag mask block, then its
//! counter blocks) is encrypted in one call of the block cipher, then each message is XORed
//! into its envelope, GHASHed there (`ghash`: whole groups of 4 blocks per reduction) and
//! tagged on its own, so every message is still
//! its own AEAD message with its own nonce. The bytes are `aes-gcm`'s (tests below: the NIST
//! vectors, and `aes-gcm` itself over many lengths and nonces); opening stays with `aes-gcm`
//! (docs/PERFORMANCE.md, section "Design decisions").

use aes09::cipher::array::Array;
use aes09::cipher::{BlockCipherEncrypt, KeyInit};
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use zeroize::Zeroize;

/// An AES (and GHASH) block.
pub(crate) type Block = Array<u8, aes09::cipher::consts::U16>;

/// Bytes of a block.
const BLOCK_LEN: usize = 16;

/// Blocks `ghash` takes per reduction (its backend's `ParBlocksSize` with carry-less
/// multiplication). Only speed depends on it: the tag is the same for any value.
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
pub(crate) fn blocks_of(len: usize) -> usize {
    1 + len.div_ceil(BLOCK_LEN)
}

/// One AES-256-GCM key, ready to seal groups of messages.
pub(crate) struct ManyGcm {
    aes: aes09::Aes256,
    /// GHASH keyed with `H = AES(0^128)`, never updated: cloned for each message.
    ghash: GHash,
}

impl ManyGcm {
    /// The key `key`'s schedule and GHASH key. Both are zeroed when dropped.
    #[must_use]
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        let mut key_block: Array<u8, aes09::cipher::consts::U32> = Array::from(*key);
        let aes = aes09::Aes256::new(&key_block);
        key_block.as_mut_slice().zeroize();
        let mut h = Block::default();
        aes.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        h.as_mut_slice().zeroize();
        Self { aes, ghash }
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

    /// Appends to `out` the ciphertext of `text` under `keystream` (its message's
    /// [`blocks_of`] `text.len()` blocks, as [`Self::keystream`] made them) and returns the
    /// tag over `aad` and the ciphertext. `scratch` is working memory. A keystream of another
    /// length is refused, `out` untouched.
    pub(crate) fn seal_onto(
        &self,
        keystream: &[Block],
        aad: &[u8],
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
        let start = out.len();
        let stream = Array::slice_as_flattened(counters);
        out.extend(text.iter().zip(stream).map(|(byte, key)| byte ^ key));
        let sealed = out.get(start..).unwrap_or_default();
        let mut ghash = self.ghash.clone();
        ghash_groups(&mut ghash, aad, sealed, scratch);
        let mut tag = [0u8; BLOCK_LEN];
        for ((out, hashed), mask) in tag.iter_mut().zip(ghash.finalize()).zip(mask) {
            *out = hashed ^ mask;
        }
        Ok(tag)
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
            .seal_onto(&keystream, aad, text, &mut sealed, &mut Vec::new())
            .unwrap();
        text.copy_from_slice(&sealed);
        tag
    }
}

/// A keystream that is not its message's: a bug in the caller, refused rather than leave any
/// of the text unencrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongKeystream;

/// Feeds `ghash` GCM's GHASH input of `aad` and `sealed` (each padded, then their lengths)
/// in whole groups of [`GHASH_GROUP`] blocks, so that no block is reduced on its own:
/// GHASH from its zero state is unchanged by leading zero blocks (`(0 + 0) * H = 0`), so
/// enough of them make the input whole groups. The ciphertext's whole blocks are hashed
/// where they are, but for the few that fill the first and last groups.
fn ghash_groups(ghash: &mut GHash, aad: &[u8], sealed: &[u8], scratch: &mut Vec<Block>) {
    let blocks = aad.len().div_ceil(BLOCK_LEN) + sealed.len().div_ceil(BLOCK_LEN) + 1;
    scratch.clear();
    scratch.resize(
        blocks.next_multiple_of(GHASH_GROUP) - blocks,
        Block::default(),
    );
    push_padded(scratch, aad);
    let (mut whole, tail) = Array::slice_as_chunks(sealed);
    let fill = ((GHASH_GROUP - scratch.len() % GHASH_GROUP) % GHASH_GROUP).min(whole.len());
    let (filling, rest) = whole.split_at(fill);
    scratch.extend_from_slice(filling);
    whole = rest;
    let middle = whole.len() / GHASH_GROUP * GHASH_GROUP;
    if middle > 0 {
        // `scratch` is whole groups here: `whole` had more than `fill` blocks.
        ghash.update(scratch);
        scratch.clear();
        let (groups, rest) = whole.split_at(middle);
        ghash.update(groups);
        whole = rest;
    }
    scratch.extend_from_slice(whole);
    push_padded(scratch, tail);
    let lengths = u128::from(bits(aad.len())) << 64 | u128::from(bits(sealed.len()));
    scratch.push(Block::from(lengths.to_be_bytes()));
    ghash.update(scratch);
}

/// Length in bits, as GCM's length block holds it.
fn bits(len: usize) -> u64 {
    (len as u64).wrapping_mul(8)
}

/// `bytes` as blocks, the last padded with zeros.
fn push_padded(blocks: &mut Vec<Block>, bytes: &[u8]) {
    let (whole, tail) = Array::slice_as_chunks(bytes);
    blocks.extend_from_slice(whole);
    if !tail.is_empty() {
        let mut last = Block::default();
        for (slot, byte) in last.iter_mut().zip(tail) {
            *slot = *byte;
        }
        blocks.push(last);
    }
}

#[cfg(test)]
#[path = "gcm_many_tests.rs"]
mod tests;
