//! AES-256-GCM (NIST SP 800-38D, 96-bit nonces) for many short messages under one key.
//!
//! Why not `aes-gcm` per message: a 256-byte message is 17 AES blocks, too few for the widest
//! AES path (VAES-512 takes 64 blocks at a time), and its GHASH reduces after every block. Here
//! the CTR keystream of a whole group of messages (each message's tag mask block, then its
//! counter blocks) is encrypted in one call of the block cipher, then each message is XORed
//! into its envelope, GHASHed there (as POLYVAL, whole groups of 4 blocks per reduction) and
//! tagged on its own, so every message is still its own AEAD message with its
//! own nonce. The bytes are `aes-gcm`'s (tests below: the NIST vectors, and `aes-gcm` itself
//! over many lengths and nonces); opening stays with `aes-gcm` (docs/PERFORMANCE.md, section
//! "Design decisions").

use aes09::cipher::array::Array;
use aes09::cipher::{BlockCipherEncrypt, KeyInit};
use polyval::hazmat::FieldElement;
use polyval::universal_hash::{UhfBackend, UniversalHash};
use polyval::{ParBlocks, Polyval};
use zeroize::Zeroize;

/// An AES (and GHASH) block.
pub(crate) type Block = Array<u8, aes09::cipher::consts::U16>;

/// Bytes of a block.
const BLOCK_LEN: usize = 16;

/// Blocks POLYVAL takes per reduction (its backend's `ParBlocksSize` with carry-less
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
    /// GHASH as POLYVAL (RFC 8452, appendix A): keyed with `mulX(ByteReverse(H))`, fed each
    /// block byte-reversed, its result byte-reversed. Never updated: cloned for each message.
    /// Why not `ghash`, which does the same: its reversals are byte shuffles without SSSE3, here
    /// two `bswap`s per block as it is read, and no copy of the blocks into a buffer first.
    polyval: Polyval,
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
        let mut polyval_key = FieldElement::from(h).reverse().mulx();
        h.as_mut_slice().zeroize();
        let polyval = Polyval::new(&polyval_key.into());
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
            // `nonce || 0^32` read little-endian: the counter's big-endian bytes are then its
            // top 32 bits, set with one 32-bit byte swap per block.
            let mut j0 = [0u8; BLOCK_LEN];
            j0[..NONCE_LEN].copy_from_slice(&nonce);
            let j0 = u128::from_le_bytes(j0);
            // Counter 1 is J0 (the tag mask); the text's blocks start at 2. `inc32` wraps in
            // the low 32 bits, never carrying into the nonce.
            keystream.extend((1..).take(blocks_of(len)).map(|counter: u32| {
                let counter = u128::from(counter.swap_bytes()) << 96;
                Block::from((j0 | counter).to_le_bytes())
            }));
        }
        self.aes.encrypt_blocks(keystream);
    }

    /// Appends to `out` the ciphertext of `text` under `keystream` (its message's
    /// [`blocks_of`] `text.len()` blocks, as [`Self::keystream`] made them) and returns the
    /// tag over `aad` and the ciphertext. A keystream of another length is refused, `out`
    /// untouched.
    pub(crate) fn seal_onto(
        &self,
        keystream: &[Block],
        aad: &[u8],
        text: &[u8],
        out: &mut Vec<u8>,
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
        let blocks = aad.len().div_ceil(BLOCK_LEN) + sealed.len().div_ceil(BLOCK_LEN) + 1;
        let mut polyval = self.polyval.clone();
        let mut feed = Feed::new(&mut polyval, blocks);
        feed.push_padded(aad);
        feed.push_padded(sealed);
        feed.push(u128::from(bits(aad.len())) << 64 | u128::from(bits(sealed.len())));
        feed.finish();
        // POLYVAL's result is GHASH's byte-reversed: read little-endian, it is GHASH's value.
        let hashed = u128::from_le_bytes(polyval.finalize().into());
        Ok((hashed ^ u128::from_be_bytes((*mask).into())).to_be_bytes())
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
        let tag = self.seal_onto(&keystream, aad, text, &mut sealed).unwrap();
        text.copy_from_slice(&sealed);
        tag
    }
}

/// A keystream that is not its message's: a bug in the caller, refused rather than leave any
/// of the text unencrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongKeystream;

/// GHASH's input fed to POLYVAL in whole groups of [`GHASH_GROUP`] blocks, each block
/// byte-reversed on its way in, so that no block is reduced on its own: POLYVAL from its zero
/// state is unchanged by leading zero blocks (`(0 + 0) * H = 0`), so enough of them make the
/// input whole groups. A last group left short (not when the count given is right) is hashed
/// block by block: the same value, only slower.
struct Feed<'a> {
    polyval: &'a mut Polyval,
    group: ParBlocks,
    filled: usize,
}

impl<'a> Feed<'a> {
    /// A feed of `blocks` blocks into `polyval` (in its zero state), its zero blocks in front.
    fn new(polyval: &'a mut Polyval, blocks: usize) -> Self {
        Self {
            polyval,
            group: ParBlocks::default(),
            filled: blocks.next_multiple_of(GHASH_GROUP) - blocks,
        }
    }

    /// One block of GHASH's input, read as a big-endian integer.
    fn push(&mut self, block: u128) {
        if let Some(slot) = self.group.get_mut(self.filled) {
            *slot = Block::from(block.to_le_bytes());
        }
        self.filled += 1;
        if self.filled == GHASH_GROUP {
            self.polyval.proc_par_blocks(&self.group);
            self.filled = 0;
        }
    }

    /// `bytes` as blocks, the last padded with zeros.
    fn push_padded(&mut self, bytes: &[u8]) {
        let (whole, tail) = bytes.as_chunks::<BLOCK_LEN>();
        for block in whole {
            self.push(u128::from_be_bytes(*block));
        }
        if !tail.is_empty() {
            let mut last = [0u8; BLOCK_LEN];
            for (slot, byte) in last.iter_mut().zip(tail) {
                *slot = *byte;
            }
            self.push(u128::from_be_bytes(last));
        }
    }

    /// Hashes what is left of a group.
    fn finish(self) {
        for block in self.group.iter().take(self.filled) {
            self.polyval.proc_block(block);
        }
    }
}

/// Length in bits, as GCM's length block holds it.
fn bits(len: usize) -> u64 {
    (len as u64).wrapping_mul(8)
}

#[cfg(test)]
#[path = "gcm_many_tests.rs"]
mod tests;
