//! The master key: what wraps every data key, derives subject tags and authenticates erasure
//! records. [`KeyWrapper`] is the interface (a KMS implements it); [`MasterKey`] is the key
//! file the operator provides (`--master-key FILE`).
//!
//! A master key file is one line: `kimberlite-master-key-1 ` and 64 hex digits (32 random
//! bytes). Three keys are derived from it with HMAC-SHA-256 under distinct labels, so no key
//! serves two purposes: one wraps data keys (XChaCha20-Poly1305), one tags subjects, one
//! authenticates erasure records and the key store's check value.

use std::path::Path;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::sealed::envelope::{KeyId, SubjectCipher, XCHACHA_NONCE_LEN as NONCE_LEN};

/// The first word of a master key file.
pub const MASTER_KEY_LABEL: &str = "kimberlite-master-key-1";
/// Size of a data key and of the master key, in bytes.
pub const KEY_LEN: usize = 32;

/// A subject's data key (AES-256-GCM; XChaCha20-Poly1305 for version 1 envelopes), zeroed
/// when dropped.
pub struct DataKey(pub(crate) Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh key from the operating system's generator.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(&mut *bytes);
        Self(bytes)
    }

    pub(crate) fn cipher(&self) -> SubjectCipher {
        SubjectCipher::new(&self.0)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Why a master key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyWrapError(pub String);

/// What the key store asks of a master key. [`MasterKey`] implements it from a file; a KMS
/// client implements it with the KMS's encrypt, decrypt and MAC calls, and the data keys
/// never leave the process unwrapped.
pub trait KeyWrapper: Send + Sync + std::fmt::Debug {
    /// `data_key` encrypted for storage, bound to `key_id`.
    fn wrap(&self, key_id: KeyId, data_key: &DataKey) -> Result<Vec<u8>, KeyWrapError>;
    /// The data key [`KeyWrapper::wrap`] gave `wrapped` for `key_id`; an error when it was
    /// not wrapped by this master key for this id.
    fn unwrap(&self, key_id: KeyId, wrapped: &[u8]) -> Result<DataKey, KeyWrapError>;
    /// A keyed hash of `data` for `purpose` (a short label): the same inputs always give the
    /// same value under one master key, and nobody without it can compute or invert it.
    fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32];
}

/// A master key read from a file (`docs/COMPLIANCE.md`, "Erasure").
pub struct MasterKey {
    wrap: XChaCha20Poly1305,
    mac_key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn derive(master: &[u8; KEY_LEN], label: &str) -> Zeroizing<[u8; KEY_LEN]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(label.as_bytes());
    Zeroizing::new(mac.finalize().into_bytes().into())
}

impl MasterKey {
    /// The master key of these 32 bytes.
    #[must_use]
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        let wrap = derive(bytes, "kimberlite.master.wrap.v1");
        Self {
            wrap: XChaCha20Poly1305::new(&(*wrap).into()),
            mac_key: derive(bytes, "kimberlite.master.mac.v1"),
        }
    }

    /// A new random master key and its file text.
    #[must_use]
    pub fn generate() -> (Self, String) {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(&mut *bytes);
        let text = format!("{MASTER_KEY_LABEL} {}\n", hex::encode(*bytes));
        (Self::from_bytes(&bytes), text)
    }

    /// Parses a master key file's text.
    pub fn from_text(text: &str) -> Result<Self, KeyWrapError> {
        let bad = || {
            KeyWrapError(format!(
                "not a master key: expected one line \"{MASTER_KEY_LABEL} <64 hex digits>\""
            ))
        };
        let mut words = text.split_whitespace();
        if words.next() != Some(MASTER_KEY_LABEL) {
            return Err(bad());
        }
        let hex_text = words.next().ok_or_else(bad)?;
        if words.next().is_some() {
            return Err(bad());
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(hex_text, &mut *bytes).map_err(|_| bad())?;
        Ok(Self::from_bytes(&bytes))
    }

    /// Reads a master key file.
    pub fn from_file(path: &Path) -> Result<Self, KeyWrapError> {
        let mut text = std::fs::read_to_string(path).map_err(|error| {
            KeyWrapError(format!(
                "cannot read master key {}: {error}",
                path.display()
            ))
        })?;
        let key = Self::from_text(&text)
            .map_err(|error| KeyWrapError(format!("{}: {error}", path.display())));
        text.zeroize();
        key
    }
}

fn wrap_aad(key_id: KeyId) -> Vec<u8> {
    [b"kimberlite.data-key.v1".as_slice(), &key_id.0].concat()
}

impl KeyWrapper for MasterKey {
    fn wrap(&self, key_id: KeyId, data_key: &DataKey) -> Result<Vec<u8>, KeyWrapError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let aad = wrap_aad(key_id);
        let payload = Payload {
            msg: &data_key.0[..],
            aad: &aad,
        };
        let sealed = self
            .wrap
            .encrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| KeyWrapError("cannot wrap a data key".to_owned()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    fn unwrap(&self, key_id: KeyId, wrapped: &[u8]) -> Result<DataKey, KeyWrapError> {
        let wrong = || {
            KeyWrapError(format!(
                "data key {key_id} does not unwrap with this master key (a wrong master key, or \
                 a changed key file)"
            ))
        };
        let nonce = wrapped.get(..NONCE_LEN).ok_or_else(wrong)?;
        let aad = wrap_aad(key_id);
        let payload = Payload {
            msg: wrapped.get(NONCE_LEN..).unwrap_or_default(),
            aad: &aad,
        };
        let plain = Zeroizing::new(
            self.wrap
                .decrypt(XNonce::from_slice(nonce), payload)
                .map_err(|_| wrong())?,
        );
        let bytes: [u8; KEY_LEN] = plain.as_slice().try_into().map_err(|_| wrong())?;
        Ok(DataKey(Zeroizing::new(bytes)))
    }

    fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        // The purpose is length-prefixed so that (purpose, data) pairs never collide.
        mac.update(&(purpose.len() as u64).to_le_bytes());
        mac.update(purpose.as_bytes());
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_round_trips_and_garbage_is_refused() {
        let (key, text) = MasterKey::generate();
        let again = MasterKey::from_text(&text).unwrap();
        assert_eq!(key.mac("t", b"x"), again.mac("t", b"x"));
        assert_ne!(key.mac("t", b"x"), key.mac("u", b"x"));
        for bad in [
            "",
            "kimberlite-master-key-1",
            "kimberlite-master-key-1 zz",
            "other 00",
        ] {
            assert!(MasterKey::from_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn data_keys_unwrap_only_with_their_master_and_id() {
        let (key, _) = MasterKey::generate();
        let (other, _) = MasterKey::generate();
        let data = DataKey::generate();
        let id = KeyId([1; 16]);
        let wrapped = key.wrap(id, &data).unwrap();
        assert_eq!(*key.unwrap(id, &wrapped).unwrap().0, *data.0);
        assert!(other.unwrap(id, &wrapped).is_err());
        assert!(key.unwrap(KeyId([2; 16]), &wrapped).is_err());
        assert!(key.unwrap(id, &wrapped[..10]).is_err());
    }
}
