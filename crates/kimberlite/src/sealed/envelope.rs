//! The sealed envelope: how an event appended for a data subject is stored (pure, no I/O).
//!
//! # Layout (`docs/FORMAT.md`, "Sealed events")
//!
//! ```text
//!  0                 7       8                24                        48
//!  +-----------------+-------+----------------+-------------------------+------------------+
//!  | magic (7 bytes) | ver u8| key_id [u8;16] | nonce [u8;24]           | ciphertext + tag |
//!  +-----------------+-------+----------------+-------------------------+------------------+
//! ```
//!
//! `magic` is `00 4b 42 53 45 41 4c` (`\0KBSEAL`), `ver` is 1. The ciphertext is
//! XChaCha20-Poly1305 of the event under the subject's data key, with the 24-byte nonce and, as
//! associated data, bytes `[0, 24)` (magic, version, key id) followed by the stream id (u64 LE):
//! an envelope opens only under its own key id and in its own stream. The tag is the last 16
//! bytes. The chain hash and Merkle leaf cover these bytes as any payload's, so verifying and
//! proving never need a key.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kimberlite_types::StreamId;

/// The first bytes of every sealed event. A plain event may not start with them
/// ([`looks_sealed`]), so a stored payload is sealed exactly when it starts with them.
pub const MAGIC: [u8; 7] = *b"\0KBSEAL";
/// The envelope version this build writes and reads.
pub const VERSION: u8 = 1;
/// Size of a key id, in bytes.
pub const KEY_ID_LEN: usize = 16;
/// Size of a nonce, in bytes (XChaCha20-Poly1305).
pub const NONCE_LEN: usize = 24;
/// Size of the authentication tag, in bytes.
pub const TAG_LEN: usize = 16;
/// Bytes before the key id: magic and version.
const PREFIX_LEN: usize = MAGIC.len() + 1;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = PREFIX_LEN + KEY_ID_LEN + NONCE_LEN;
/// What sealing adds to an event, in bytes.
pub const OVERHEAD_BYTES: usize = HEADER_LEN + TAG_LEN;

const _: () = assert!(HEADER_LEN == 48 && OVERHEAD_BYTES == 64);

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
/// `Some(Err(..))` for one that starts with the magic but is not a valid envelope (another
/// version, too short).
#[must_use]
pub fn key_id_of(payload: &[u8]) -> Option<Result<KeyId, &'static str>> {
    if !looks_sealed(payload) {
        return None;
    }
    Some(parse_header(payload).map(|(key_id, _)| key_id))
}

fn parse_header(payload: &[u8]) -> Result<(KeyId, &[u8]), &'static str> {
    if payload.get(MAGIC.len()) != Some(&VERSION) {
        return Err("a sealed envelope of an unknown version");
    }
    if payload.len() < OVERHEAD_BYTES {
        return Err("a sealed envelope too short to hold its header and tag");
    }
    let mut key_id = [0u8; KEY_ID_LEN];
    key_id.copy_from_slice(
        payload
            .get(PREFIX_LEN..PREFIX_LEN + KEY_ID_LEN)
            .unwrap_or_default(),
    );
    Ok((
        KeyId(key_id),
        payload.get(PREFIX_LEN + KEY_ID_LEN..).unwrap_or_default(),
    ))
}

fn associated_data(header: &[u8], stream: StreamId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(PREFIX_LEN + KEY_ID_LEN + 8);
    aad.extend_from_slice(header.get(..PREFIX_LEN + KEY_ID_LEN).unwrap_or_default());
    aad.extend_from_slice(&stream.as_u64().to_le_bytes());
    aad
}

/// Seals `plaintext` for stream `stream` under `cipher` (the data key of `key_id`) with
/// `nonce`, which must never have been used under this key (callers draw it at random:
/// 192 bits, so two draws collide with negligible probability).
#[must_use]
pub fn seal(
    cipher: &XChaCha20Poly1305,
    key_id: KeyId,
    nonce: &[u8; NONCE_LEN],
    stream: StreamId,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD_BYTES);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&key_id.0);
    out.extend_from_slice(nonce);
    let aad = associated_data(&out, stream);
    let payload = Payload {
        msg: plaintext,
        aad: &aad,
    };
    // Encryption into a Vec fails only past the cipher's length limit (256 GiB), far above
    // the largest event.
    let sealed = cipher
        .encrypt(XNonce::from_slice(nonce), payload)
        .unwrap_or_default();
    out.extend_from_slice(&sealed);
    out
}

/// Opens an envelope of stream `stream` with `cipher`: the plaintext, or why not (the key or
/// stream is not the envelope's, or its bytes were changed).
pub fn open(
    cipher: &XChaCha20Poly1305,
    stream: StreamId,
    envelope: &[u8],
) -> Result<Vec<u8>, &'static str> {
    let (_, rest) = parse_header(envelope)?;
    let nonce = rest
        .get(..NONCE_LEN)
        .ok_or("a sealed envelope without its nonce")?;
    let sealed = rest.get(NONCE_LEN..).unwrap_or_default();
    let aad = associated_data(envelope, stream);
    let payload = Payload {
        msg: sealed,
        aad: &aad,
    };
    cipher
        .decrypt(XNonce::from_slice(nonce), payload)
        .map_err(|_| {
            "the envelope does not open with its key: wrong key, wrong stream, or changed bytes"
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::KeyInit;

    fn cipher(byte: u8) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&[byte; 32].into())
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
        );
        assert_eq!(sealed.len(), 6 + OVERHEAD_BYTES);
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
    fn plain_and_malformed_payloads_are_told_apart() {
        assert_eq!(key_id_of(b"{\"plain\":1}"), None);
        assert_eq!(key_id_of(b""), None);
        assert!(matches!(key_id_of(b"\0KBSEAL\x01short"), Some(Err(_))));
        assert!(matches!(
            key_id_of(&[b"\0KBSEAL\x02".as_slice(), &[0; 80]].concat()),
            Some(Err(_))
        ));
        assert!(open(&cipher(1), StreamId::new(1), b"\0KBSEAL").is_err());
    }
}
