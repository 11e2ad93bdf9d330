//! The sealed envelope: how an event appended for a data subject is stored (pure, no I/O).
//!
//! # Layout (`docs/FORMAT.md`, "Sealed events")
//!
//! ```text
//!  0                 7       8                24             36
//!  +-----------------+-------+----------------+--------------+------------------+
//!  | magic (7 bytes) | ver u8| key_id [u8;16] | nonce [u8;12]| ciphertext + tag |
//!  +-----------------+-------+----------------+--------------+------------------+
//! ```
//!
//! `magic` is `00 4b 42 53 45 41 4c` (`\0KBSEAL`). Version 2, which this build writes, is
//! AES-256-GCM (AES-NI and PCLMULQDQ where the CPU has them, chosen at run time) with a 12-byte
//! nonce; version 1, still read, is XChaCha20-Poly1305 with a 24-byte nonce in its place. Either
//! way the key is the subject's data key, the associated data is bytes `[0, 24)` (magic, version,
//! key id) followed by the stream id (u64 LE), so an envelope opens only under its own key id,
//! in its own stream and as its own version, and the tag is the last 16 bytes. The chain hash
//! and Merkle leaf cover these bytes as any payload's, so verifying and proving never need a
//! key.

use std::cell::RefCell;

use aes::cipher::array::Array;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use chacha20poly1305::aead::{Aead, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kimberlite_types::StreamId;
use zeroize::Zeroize;

use crate::sealed::gcm_many::{self, Block, ManyGcm};

/// The first bytes of every sealed event. A plain event may not start with them
/// ([`looks_sealed`]), so a stored payload is sealed exactly when it starts with them.
pub const MAGIC: [u8; 7] = *b"\0KBSEAL";
/// The envelope version this build writes: AES-256-GCM.
pub const VERSION: u8 = 2;
/// Envelope version 1, XChaCha20-Poly1305: read, not written.
pub const VERSION_XCHACHA: u8 = 1;
/// Size of a key id, in bytes.
pub const KEY_ID_LEN: usize = 16;
/// Size of a nonce of the version written, in bytes (AES-256-GCM).
pub const NONCE_LEN: usize = 12;
/// Size of a version 1 nonce, in bytes (XChaCha20-Poly1305).
pub const XCHACHA_NONCE_LEN: usize = 24;
/// Size of the authentication tag, in bytes (both versions).
pub const TAG_LEN: usize = 16;
/// Bytes before the key id: magic and version.
const PREFIX_LEN: usize = MAGIC.len() + 1;
/// Bytes before the nonce: what the associated data starts with.
const KEYED_LEN: usize = PREFIX_LEN + KEY_ID_LEN;
/// Bytes before the ciphertext (the version written).
pub const HEADER_LEN: usize = KEYED_LEN + NONCE_LEN;
/// What sealing adds to an event, in bytes (the version written).
pub const OVERHEAD_BYTES: usize = HEADER_LEN + TAG_LEN;

const _: () = assert!(HEADER_LEN == 36 && OVERHEAD_BYTES == 52);

/// A subject's data key ready to seal and open: its AES key schedule and GHASH key are made
/// once per key, never per event. Every key schedule is zeroed when dropped.
pub struct SubjectCipher {
    gcm: Aes256Gcm,
    /// The same key, for sealing many events at once ([`seal_all_into`]).
    many: ManyGcm,
    xchacha: XChaCha20Poly1305,
}

impl SubjectCipher {
    /// The cipher of the 32-byte data key `key`.
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            gcm: Aes256Gcm::new(&(*key).into()),
            many: ManyGcm::new(key),
            xchacha: XChaCha20Poly1305::new(key.into()),
        }
    }
}

impl std::fmt::Debug for SubjectCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectCipher(..)")
    }
}

/// A subject's data key id: 16 random bytes, drawn when the subject's key is made. It names
/// the key, never the subject (the key store maps one to the other; see `key_store.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// 32 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 32 hex digits; `None` for anything else.
    #[must_use]
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; KEY_ID_LEN];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Whether `payload` starts like a sealed event (the magic). Plain appends that do are refused,
/// so that no plain event is ever taken for a sealed one.
#[must_use]
pub fn looks_sealed(payload: &[u8]) -> bool {
    payload.starts_with(&MAGIC)
}

/// A stored payload read as an envelope: its key id, when it is one. `None` for a plain event;
/// `Some(Err(..))` for one that starts with the magic but is not a valid envelope (an unknown
/// version, too short).
#[must_use]
pub fn key_id_of(payload: &[u8]) -> Option<Result<KeyId, &'static str>> {
    if !looks_sealed(payload) {
        return None;
    }
    Some(parse(payload).map(|parsed| parsed.key_id))
}

/// An envelope's parts.
struct Parsed<'a> {
    version: u8,
    key_id: KeyId,
    nonce: &'a [u8],
    /// The ciphertext and the tag after it.
    sealed: &'a [u8],
}

const TOO_SHORT: &str = "a sealed envelope too short to hold its header and tag";

fn parse(payload: &[u8]) -> Result<Parsed<'_>, &'static str> {
    if !looks_sealed(payload) {
        return Err("not a sealed envelope");
    }
    let version = payload.get(MAGIC.len()).copied().unwrap_or_default();
    let nonce_len = match version {
        VERSION => NONCE_LEN,
        VERSION_XCHACHA => XCHACHA_NONCE_LEN,
        _ => return Err("a sealed envelope of an unknown version"),
    };
    let (keyed, rest) = payload.split_at_checked(KEYED_LEN).ok_or(TOO_SHORT)?;
    let key_id = keyed
        .get(PREFIX_LEN..)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(TOO_SHORT)?;
    let (nonce, sealed) = rest.split_at_checked(nonce_len).ok_or(TOO_SHORT)?;
    if sealed.len() < TAG_LEN {
        return Err(TOO_SHORT);
    }
    Ok(Parsed {
        version,
        key_id: KeyId(key_id),
        nonce,
        sealed,
    })
}

/// The associated data: magic, version and key id (the envelope's first bytes), then the
/// stream id.
fn associated_data(version: u8, key_id: KeyId, stream: StreamId) -> [u8; KEYED_LEN + 8] {
    let mut aad = [0u8; KEYED_LEN + 8];
    let stream = stream.as_u64().to_le_bytes();
    let bytes = MAGIC
        .iter()
        .chain(std::iter::once(&version))
        .chain(&key_id.0)
        .chain(&stream);
    for (slot, byte) in aad.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    aad
}

/// Appends to `out` the envelope of `plaintext` sealed for stream `stream` under `cipher` (the
/// data key of `key_id`) with `nonce`, which must never have been used under this key (the
/// nonce rule is in `docs/FORMAT.md`, "Sealed events"). Nothing but the envelope is
/// allocated or copied. Fails only for an event past AES-GCM's message limit (64 GiB), far
/// above the largest event the store takes; `out` is then as it was.
pub fn seal_into(
    cipher: &SubjectCipher,
    key_id: KeyId,
    nonce: &[u8; NONCE_LEN],
    stream: StreamId,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), &'static str> {
    let start = out.len();
    out.reserve(plaintext.len() + OVERHEAD_BYTES);
    push_header(out, key_id, nonce);
    let body = out.len();
    out.extend_from_slice(plaintext);
    let aad = associated_data(VERSION, key_id, stream);
    let sealed = cipher.gcm.encrypt_inout_detached(
        &Nonce::from(*nonce),
        &aad,
        out.get_mut(body..).unwrap_or_default().into(),
    );
    match sealed {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            Ok(())
        }
        Err(_) => {
            out.truncate(start);
            Err("an event too large to seal")
        }
    }
}

/// The envelope's bytes before the ciphertext: magic, version, key id, nonce.
fn push_header(out: &mut Vec<u8>, key_id: KeyId, nonce: &[u8; NONCE_LEN]) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&key_id.0);
    out.extend_from_slice(nonce);
}

/// Appends to `out` the envelopes of `events`, event `i` sealed with `nonce(i)` (each must never
/// have been used under this key), back to back, exactly as [`seal_into`] makes each (each
/// [`OVERHEAD_BYTES`] longer than its event). Faster than [`seal_into`] per event for many
/// short events: the keystream of a group of them is made at once (`gcm_many`). Errors: the
/// index of an event past AES-GCM's message limit; `out` then holds the envelopes before it.
pub(crate) fn seal_all_into<T: AsRef<[u8]>>(
    cipher: &SubjectCipher,
    key_id: KeyId,
    stream: StreamId,
    events: &[T],
    nonce: impl Fn(usize) -> [u8; NONCE_LEN],
    out: &mut Vec<u8>,
) -> Result<(), usize> {
    WORK.with_borrow_mut(|work| {
        // Room for the largest group before the first: the keystream never moves to a new
        // allocation, which would leave the old one's bytes behind in freed memory.
        work.0.clear();
        work.0.reserve(gcm_many::GROUP_BLOCKS);
        let sealed = seal_groups(cipher, key_id, stream, events, nonce, out, work);
        // The keystream would open the envelopes just written: none is kept past the call,
        // neither the last group's nor, past its end, an earlier group's.
        let keystream = &mut work.0;
        keystream.resize(keystream.capacity(), Block::default());
        Array::slice_as_flattened_mut(keystream).zeroize();
        sealed
    })
}

thread_local! {
    /// This thread's keystream and GHASH input buffers, kept from chunk to chunk so that
    /// sealing a chunk allocates nothing but its envelopes.
    static WORK: RefCell<(Vec<Block>, Vec<Block>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// [`seal_all_into`] with its working memory: the keystream's and the GHASH input's buffers.
fn seal_groups<T: AsRef<[u8]>>(
    cipher: &SubjectCipher,
    key_id: KeyId,
    stream: StreamId,
    events: &[T],
    nonce: impl Fn(usize) -> [u8; NONCE_LEN],
    out: &mut Vec<u8>,
    (keystream, scratch): &mut (Vec<Block>, Vec<Block>),
) -> Result<(), usize> {
    let aad = cipher
        .many
        .after_aad(&associated_data(VERSION, key_id, stream));
    let mut first = 0;
    while let Some(event) = events.get(first) {
        if event.as_ref().len() > gcm_many::MAX_MESSAGE {
            seal_into(cipher, key_id, &nonce(first), stream, event.as_ref(), out)
                .map_err(|_| first)?;
            first += 1;
            continue;
        }
        // A group: the short events from `first` whose keystream fits in GROUP_BLOCKS.
        let (mut end, mut blocks) = (first, 0);
        while let Some(next) = events.get(end) {
            let (len, more) = (
                next.as_ref().len(),
                gcm_many::blocks_of(next.as_ref().len()),
            );
            if len > gcm_many::MAX_MESSAGE
                || (end > first && blocks + more > gcm_many::GROUP_BLOCKS)
            {
                break;
            }
            blocks += more;
            end += 1;
        }
        let group = events.get(first..end).unwrap_or_default();
        let lens = group.iter().map(|event| event.as_ref().len());
        let nonces = (first..end).map(&nonce);
        cipher.many.keystream(nonces.zip(lens), keystream);
        let mut at = 0;
        for (index, event) in (first..).zip(group) {
            let (start, event) = (out.len(), event.as_ref());
            push_header(out, key_id, &nonce(index));
            let blocks = gcm_many::blocks_of(event.len());
            let own = keystream.get(at..at + blocks).unwrap_or_default();
            let Ok(tag) = cipher.many.seal_onto(own, &aad, event, out, scratch) else {
                out.truncate(start);
                return Err(index);
            };
            out.extend_from_slice(&tag);
            at += blocks;
        }
        first = end;
    }
    Ok(())
}

/// [`seal_into`] a new buffer.
pub fn seal(
    cipher: &SubjectCipher,
    key_id: KeyId,
    nonce: &[u8; NONCE_LEN],
    stream: StreamId,
    plaintext: &[u8],
) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    seal_into(cipher, key_id, nonce, stream, plaintext, &mut out)?;
    Ok(out)
}

/// Opens an envelope (either version) of stream `stream` with `cipher`: the plaintext, or why
/// not (the key or stream is not the envelope's, or its bytes were changed).
pub fn open(
    cipher: &SubjectCipher,
    stream: StreamId,
    envelope: &[u8],
) -> Result<Vec<u8>, &'static str> {
    let parsed = parse(envelope)?;
    let aad = associated_data(parsed.version, parsed.key_id, stream);
    let opened = if parsed.version == VERSION_XCHACHA {
        let payload = Payload {
            msg: parsed.sealed,
            aad: &aad,
        };
        cipher
            .xchacha
            .decrypt(XNonce::from_slice(parsed.nonce), payload)
            .map_err(|_| ())
    } else {
        let (ciphertext, tag) = parsed
            .sealed
            .split_at_checked(parsed.sealed.len() - TAG_LEN)
            .ok_or(TOO_SHORT)?;
        let nonce = Nonce::try_from(parsed.nonce).map_err(|_| TOO_SHORT)?;
        let tag = Tag::try_from(tag).map_err(|_| TOO_SHORT)?;
        let mut plain = ciphertext.to_vec();
        cipher
            .gcm
            .decrypt_inout_detached(&nonce, &aad, plain.as_mut_slice().into(), &tag)
            .map(|()| plain)
            .map_err(|_| ())
    };
    opened.map_err(|_| {
        "the envelope does not open with its key: wrong key, wrong stream, or changed bytes"
    })
}

/// A version 1 envelope: for tests that a store holding them still reads them.
#[cfg(test)]
pub(crate) fn seal_version_1(
    cipher: &SubjectCipher,
    key_id: KeyId,
    nonce: &[u8; XCHACHA_NONCE_LEN],
    stream: StreamId,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = [MAGIC.as_slice(), &[VERSION_XCHACHA], &key_id.0].concat();
    let aad = associated_data(VERSION_XCHACHA, key_id, stream);
    out.extend_from_slice(nonce);
    let payload = Payload {
        msg: plaintext,
        aad: &aad,
    };
    out.extend(
        cipher
            .xchacha
            .encrypt(XNonce::from_slice(nonce), payload)
            .unwrap(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(byte: u8) -> SubjectCipher {
        SubjectCipher::new(&[byte; 32])
    }

    #[test]
    fn seals_and_opens_only_under_its_key_and_stream() {
        let key_id = KeyId([7; KEY_ID_LEN]);
        let sealed = seal(
            &cipher(1),
            key_id,
            &[9; NONCE_LEN],
            StreamId::new(3),
            b"secret",
        )
        .unwrap();
        assert_eq!(sealed.len(), 6 + OVERHEAD_BYTES);
        assert_eq!(sealed[MAGIC.len()], VERSION);
        assert!(looks_sealed(&sealed));
        assert_eq!(key_id_of(&sealed), Some(Ok(key_id)));
        assert_eq!(
            open(&cipher(1), StreamId::new(3), &sealed).unwrap(),
            b"secret"
        );
        assert!(
            open(&cipher(2), StreamId::new(3), &sealed).is_err(),
            "wrong key"
        );
        assert!(
            open(&cipher(1), StreamId::new(4), &sealed).is_err(),
            "wrong stream"
        );
        assert!(
            !sealed.windows(6).any(|window| window == b"secret"),
            "no plaintext in the envelope"
        );
        for at in 0..sealed.len() {
            let mut changed = sealed.clone();
            changed[at] ^= 1;
            assert!(
                open(&cipher(1), StreamId::new(3), &changed).is_err(),
                "byte {at}"
            );
        }
    }

    #[test]
    fn seal_into_appends_envelopes_back_to_back() {
        let key_id = KeyId([7; KEY_ID_LEN]);
        let mut out = b"before".to_vec();
        for (n, event) in [b"one".as_slice(), b"", b"three"].into_iter().enumerate() {
            let start = out.len();
            seal_into(
                &cipher(1),
                key_id,
                &[n as u8; NONCE_LEN],
                StreamId::new(3),
                event,
                &mut out,
            )
            .unwrap();
            assert_eq!(out.len() - start, event.len() + OVERHEAD_BYTES);
            assert_eq!(
                open(&cipher(1), StreamId::new(3), &out[start..]).unwrap(),
                event
            );
        }
        assert!(out.starts_with(b"before"));
    }

    /// A version 1 envelope as a store holds it: key `[1; 32]`, key id `[7; 16]`, nonce
    /// `00 01 .. 17`, stream 3. Made apart from this crate (HChaCha20 and the IETF
    /// ChaCha20-Poly1305 of Python's `cryptography`).
    const VERSION_1_ENVELOPE: &str = "004b425345414c010707070707070707070707070707070700010203\
        0405060708090a0b0c0d0e0f10111213141516170bb5bae9f8f5f7ea9a661c2d66411fdf9b96ad7fac18\
        6eded68e7d065d369e5bf0ca26";

    #[test]
    fn a_version_1_envelope_still_opens() {
        let envelope = hex::decode(VERSION_1_ENVELOPE).unwrap();
        assert_eq!(envelope[MAGIC.len()], VERSION_XCHACHA);
        assert_eq!(key_id_of(&envelope), Some(Ok(KeyId([7; KEY_ID_LEN]))));
        assert_eq!(
            open(&cipher(1), StreamId::new(3), &envelope).unwrap(),
            b"sealed by version 1"
        );
        assert!(open(&cipher(2), StreamId::new(3), &envelope).is_err());
        assert!(open(&cipher(1), StreamId::new(4), &envelope).is_err());
        for at in 0..envelope.len() {
            let mut changed = envelope.clone();
            changed[at] ^= 1;
            assert!(
                open(&cipher(1), StreamId::new(3), &changed).is_err(),
                "byte {at}"
            );
        }
        let mut relabelled = envelope.clone();
        relabelled[MAGIC.len()] = VERSION;
        assert!(
            open(&cipher(1), StreamId::new(3), &relabelled).is_err(),
            "read as the other version"
        );
    }

    #[test]
    fn the_test_sealer_of_version_1_makes_the_known_envelope() {
        let nonce: [u8; XCHACHA_NONCE_LEN] = std::array::from_fn(|n| n as u8);
        let sealed = seal_version_1(
            &cipher(1),
            KeyId([7; KEY_ID_LEN]),
            &nonce,
            StreamId::new(3),
            b"sealed by version 1",
        );
        assert_eq!(hex::encode(sealed), VERSION_1_ENVELOPE);
    }

    #[test]
    fn plain_and_malformed_payloads_are_told_apart() {
        assert_eq!(key_id_of(b"{\"plain\":1}"), None);
        assert_eq!(key_id_of(b""), None);
        assert!(matches!(key_id_of(b"\0KBSEAL\x01short"), Some(Err(_))));
        assert!(matches!(key_id_of(b"\0KBSEAL\x02short"), Some(Err(_))));
        assert!(matches!(
            key_id_of(&[b"\0KBSEAL\x03".as_slice(), &[0; 80]].concat()),
            Some(Err(_))
        ));
        for version in [VERSION_XCHACHA, VERSION] {
            assert!(matches!(
                key_id_of(&[b"\0KBSEAL".as_slice(), &[version], &[0; 80]].concat()),
                Some(Ok(_))
            ));
        }
        assert!(open(&cipher(1), StreamId::new(1), b"\0KBSEAL").is_err());
    }

    /// Every cipher a data key is expanded into zeroes its key material when dropped (an
    /// erasure drops them): checked when this test compiles, so a dependency built without its
    /// `zeroize` feature fails the build. `ManyGcm` holds `aes::Aes256` and `polyval::Polyval`,
    /// the latter zeroed by its own `Drop` (its `zeroize` feature; no marker trait to check).
    #[test]
    fn every_cipher_of_a_data_key_is_zeroed_when_dropped() {
        fn zeroed_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroed_on_drop::<Aes256Gcm>();
        zeroed_on_drop::<aes::Aes256>();
        zeroed_on_drop::<XChaCha20Poly1305>();
    }

    /// The thread's working memory is reused from call to call, but holds no keystream after
    /// one, success or failure (a keystream would open the envelopes just written).
    #[test]
    fn no_keystream_is_left_in_the_working_memory() {
        let events = vec![vec![5u8; 300]; 70];
        let mut out = Vec::new();
        let nonce = |index: usize| [index as u8; NONCE_LEN];
        let key_id = KeyId([2; KEY_ID_LEN]);
        seal_all_into(
            &cipher(4),
            key_id,
            StreamId::new(1),
            &events,
            nonce,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), events.len() * (300 + OVERHEAD_BYTES));
        // More than one group: the last group's keystream is shorter than the first's.
        let blocks = events.len() * gcm_many::blocks_of(300);
        assert!(blocks > gcm_many::GROUP_BLOCKS && blocks < 2 * gcm_many::GROUP_BLOCKS);
        WORK.with_borrow(|(keystream, _)| {
            assert!(
                keystream.len() >= gcm_many::GROUP_BLOCKS,
                "kept for the next call"
            );
            assert_eq!(keystream.len(), keystream.capacity(), "all of it in view");
            assert!(keystream
                .iter()
                .all(|block| block.iter().all(|byte| *byte == 0)));
        });
    }
}
