//! One key as the key file stores it, and the checks every loaded key file passes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::token::TokenHash;
use crate::principal::{Grant, Principal};

/// The key file's format version (`"kimberlite_server_keys": 1`).
pub const KEY_FILE_VERSION: u64 = 1;

/// Longest key name, in bytes: names are labels, and client-certificate common names map to
/// them (`docs/SERVER.md`, section "Keys and TLS").
pub const KEY_NAME_BYTES_MAX: usize = 128;

/// One key: who it is, what it may do, and the hash of its token (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Stable id (`kid_` + 16 hex digits): what the access log records and `revoke` takes.
    pub id: String,
    /// A label chosen by whoever added the key; a verified client certificate whose subject
    /// common name equals it authenticates as this key.
    pub name: String,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// What the key may do.
    pub grants: Vec<Grant>,
    /// When the key was added, seconds since the Unix epoch (UTC).
    pub created_unix_s: u64,
    /// A revoked key is refused; it stays in the file so its id keeps meaning something.
    pub revoked: bool,
}

impl KeyEntry {
    /// The principal this key authenticates as.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal {
            key_id: self.id.clone(),
            grants: self.grants.clone(),
        }
    }

    /// The token hash as bytes (checked by `check_entries`, so `None` only for an entry
    /// that never passed it).
    #[must_use]
    pub fn token_hash(&self) -> Option<TokenHash> {
        let mut hash = [0_u8; 32];
        hex::decode_to_slice(&self.sha256, &mut hash).ok()?;
        Some(hash)
    }
}

/// The key file as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFileDoc {
    /// Always [`KEY_FILE_VERSION`].
    pub kimberlite_server_keys: u64,
    /// Every key ever added, revoked ones included.
    pub keys: Vec<KeyEntry>,
}

impl Default for KeyFileDoc {
    fn default() -> Self {
        Self {
            kimberlite_server_keys: KEY_FILE_VERSION,
            keys: Vec::new(),
        }
    }
}

/// Checks a key name: not empty, at most [`KEY_NAME_BYTES_MAX`] bytes, no control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a key name must not be empty".into());
    }
    if name.len() > KEY_NAME_BYTES_MAX {
        return Err(format!(
            "key name of {} bytes: at most {KEY_NAME_BYTES_MAX}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("key name {name:?} holds a control character"));
    }
    Ok(())
}

/// Checks a grant's pattern: not empty, no control characters.
pub fn check_grant(grant: &Grant) -> Result<(), String> {
    if grant.pattern.is_empty() || grant.pattern.chars().any(char::is_control) {
        return Err(format!(
            "grant {}:{:?}: a pattern is a non-empty stream name in which `*` matches any run of characters",
            grant.permission.as_str(),
            grant.pattern
        ));
    }
    Ok(())
}

/// Checks everything a loaded or about-to-be-written key file must hold, so a hand edit or a
/// damaged file is refused by name instead of half-used: the version, each entry's id, name,
/// hash and grants, unique ids, and unique names among keys not revoked (a certificate's
/// common name must map to one key).
pub fn check_doc(doc: &KeyFileDoc) -> Result<(), String> {
    if doc.kimberlite_server_keys != KEY_FILE_VERSION {
        return Err(format!(
            "key file version {}: this server reads version {KEY_FILE_VERSION}",
            doc.kimberlite_server_keys
        ));
    }
    check_entries(&doc.keys)
}

fn check_entries(keys: &[KeyEntry]) -> Result<(), String> {
    let mut ids = BTreeSet::new();
    let mut names = BTreeSet::new();
    for key in keys {
        let well_formed_id = key
            .id
            .strip_prefix("kid_")
            .is_some_and(|rest| rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_hexdigit()));
        if !well_formed_id {
            return Err(format!(
                "key id {:?} is not `kid_` and 16 hex digits",
                key.id
            ));
        }
        if !ids.insert(key.id.as_str()) {
            return Err(format!("key id {} appears twice", key.id));
        }
        check_name(&key.name).map_err(|reason| format!("key {}: {reason}", key.id))?;
        let well_formed_hash = key.sha256.len() == 64
            && key
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed_hash {
            return Err(format!(
                "key {}: sha256 is not 64 lowercase hex digits",
                key.id
            ));
        }
        for grant in &key.grants {
            check_grant(grant).map_err(|reason| format!("key {}: {reason}", key.id))?;
        }
        if !key.revoked && !names.insert(key.name.as_str()) {
            return Err(format!(
                "two keys not revoked are named {:?}; names must be unique among active keys",
                key.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Permission;

    fn entry(id: &str, name: &str) -> KeyEntry {
        KeyEntry {
            id: id.into(),
            name: name.into(),
            sha256: "ab".repeat(32),
            grants: vec![Grant {
                permission: Permission::Read,
                pattern: "*".into(),
            }],
            created_unix_s: 0,
            revoked: false,
        }
    }

    fn doc(keys: Vec<KeyEntry>) -> KeyFileDoc {
        KeyFileDoc {
            kimberlite_server_keys: KEY_FILE_VERSION,
            keys,
        }
    }

    #[test]
    fn every_malformed_entry_is_refused_by_name() {
        const A: &str = "kid_0123456789abcdef";
        const B: &str = "kid_fedcba9876543210";
        assert_eq!(check_doc(&doc(vec![entry(A, "a"), entry(B, "b")])), Ok(()));
        let mut bad_hash = entry(A, "a");
        bad_hash.sha256 = "AB".repeat(32);
        let mut short_hash = entry(A, "a");
        short_hash.sha256.pop();
        let mut empty_pattern = entry(A, "a");
        empty_pattern.grants[0].pattern.clear();
        let mut revoked_twin = entry(B, "a");
        revoked_twin.revoked = true;
        assert_eq!(
            check_doc(&doc(vec![entry(A, "a"), revoked_twin])),
            Ok(()),
            "a revoked key's name may be reused"
        );
        for (keys, needle) in [
            (vec![entry("kid_01", "a")], "16 hex digits"),
            (vec![entry("key_0123456789abcdef", "a")], "16 hex digits"),
            (vec![entry(A, "a"), entry(A, "b")], "appears twice"),
            (vec![entry(A, "")], "must not be empty"),
            (vec![entry(A, "a\nb")], "control character"),
            (vec![entry(A, &"n".repeat(129))], "at most 128"),
            (vec![bad_hash], "lowercase hex"),
            (vec![short_hash], "lowercase hex"),
            (vec![empty_pattern], "non-empty"),
            (vec![entry(A, "a"), entry(B, "a")], "unique among active"),
        ] {
            let error = check_doc(&doc(keys)).expect_err(needle);
            assert!(error.contains(needle), "{error} lacks {needle}");
        }
        let mut future = doc(Vec::new());
        future.kimberlite_server_keys = 2;
        assert!(check_doc(&future)
            .expect_err("version")
            .contains("version 2"));
    }
}
