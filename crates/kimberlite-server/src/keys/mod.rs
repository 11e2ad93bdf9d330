//! The keys the server accepts: a key file (or, for tests and embedding, keys in memory),
//! looked at again on every request so a key added or revoked by `kimberlite key` counts
//! from the next request on. `docs/SERVER.md`, section "Keys and TLS".

mod entry;
mod file;
mod token;

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::utc_time::rfc3339;
pub use entry::KeyEntry;
pub use file::{KeyFileError, KEY_FILE_NAME};
pub use token::TOKEN_PREFIX;

use crate::principal::{Grant, Principal};
use file::Stamp;
use token::{hash_token, hashes_equal, TokenHash};

/// Why a request's credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No key matches, or the key is revoked.
    #[error("unknown or revoked key")]
    Unknown,
    /// The server has no key at all.
    #[error(
        "this server has no keys yet: add one with `kimberlite key add DIR --name NAME --allow admin:'*'`"
    )]
    NoKeys,
    /// The key file changed into something unreadable: every request is refused until it
    /// is repaired (refusing is safer than going on with keys that may have been revoked).
    #[error("the key file cannot be used, so no request is accepted: {0}")]
    KeyFileBroken(String),
}

/// Where the keys live.
#[derive(Debug)]
enum Source {
    Memory,
    File(PathBuf),
}

/// The keys as last read.
#[derive(Debug)]
struct Loaded {
    /// The file version they were read from (`None`: no file, or keys in memory).
    stamp: Option<Stamp>,
    /// The keys, or why the file could not be used.
    keys: Result<Vec<Active>, String>,
    /// Every entry, revoked ones included, for listing.
    entries: Vec<KeyEntry>,
}

/// A key not revoked, ready to compare.
#[derive(Debug)]
struct Active {
    hash: TokenHash,
    name: String,
    principal: Principal,
}

impl Loaded {
    fn of(entries: Vec<KeyEntry>, stamp: Option<Stamp>) -> Self {
        let keys = entries
            .iter()
            .filter(|entry| !entry.revoked)
            .filter_map(|entry| {
                Some(Active {
                    hash: entry.token_hash()?,
                    name: entry.name.clone(),
                    principal: entry.principal(),
                })
            })
            .collect();
        Self {
            stamp,
            keys: Ok(keys),
            entries,
        }
    }
}

/// The keys the server accepts.
#[derive(Debug)]
pub struct KeyRing {
    source: Source,
    loaded: RwLock<Loaded>,
}

impl Default for KeyRing {
    fn default() -> Self {
        Self::from_entries(Vec::new())
    }
}

/// A newly added key and its token, which exists nowhere else: show it once.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The stored entry.
    pub entry: KeyEntry,
    /// The token (`kb_...`).
    pub token: String,
}

impl KeyRing {
    /// Keys in memory holding `(token, principal)` pairs, each named after its key id: for
    /// tests and embedding. Changes through [`KeyRing::add`] and [`KeyRing::revoke`] stay in
    /// memory.
    #[must_use]
    pub fn from_tokens(keys: Vec<(String, Principal)>) -> Self {
        let entries = keys
            .into_iter()
            .map(|(token, principal)| KeyEntry {
                name: principal.key_id.clone(),
                id: principal.key_id,
                sha256: hex::encode(hash_token(&token)),
                grants: principal.grants,
                created_unix_s: 0,
                revoked: false,
            })
            .collect();
        Self::from_entries(entries)
    }

    fn from_entries(entries: Vec<KeyEntry>) -> Self {
        Self {
            source: Source::Memory,
            loaded: RwLock::new(Loaded::of(entries, None)),
        }
    }

    /// The keys of the key file at `path` (none yet when it does not exist). A damaged file
    /// is an error here, so a server never starts on keys it cannot read.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, KeyFileError> {
        let path = path.into();
        let (doc, stamp) = file::read(&path)?;
        Ok(Self {
            loaded: RwLock::new(Loaded::of(doc.keys, stamp)),
            source: Source::File(path),
        })
    }

    /// The key file of the store in `dir` unless `keys` names another.
    #[must_use]
    pub fn default_path(dir: &Path) -> PathBuf {
        dir.join(KEY_FILE_NAME)
    }

    /// The key file, when the keys live in one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            Source::File(path) => Some(path),
            Source::Memory => None,
        }
    }

    /// The principal whose token is `token`. Every active key is compared (in constant
    /// time), so the time taken says nothing about which key, if any, came close.
    pub fn authenticate(&self, token: &str) -> Result<Principal, AuthFailure> {
        let presented = hash_token(token);
        self.find(|key| hashes_equal(&key.hash, &presented))
    }

    /// The principal of the active key named `name`: for a verified client certificate whose
    /// subject common name is `name`.
    pub fn authenticate_name(&self, name: &str) -> Result<Principal, AuthFailure> {
        self.find(|key| key.name == name)
    }

    fn find(&self, matches: impl Fn(&Active) -> bool) -> Result<Principal, AuthFailure> {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let keys = loaded
            .keys
            .as_ref()
            .map_err(|reason| AuthFailure::KeyFileBroken(reason.clone()))?;
        if keys.is_empty() {
            return Err(AuthFailure::NoKeys);
        }
        let mut found = None;
        for key in keys {
            if matches(key) && found.is_none() {
                found = Some(key.principal.clone());
            }
        }
        found.ok_or(AuthFailure::Unknown)
    }

    /// Rereads the key file when its stamp changed since the last read: a stat per call, a
    /// read only after a change. An unreadable file refuses every key until repaired.
    fn refresh(&self) {
        let Source::File(path) = &self.source else {
            return;
        };
        let current = file::stamp(path);
        {
            let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            if matches!(&current, Ok(stamp) if *stamp == loaded.stamp) {
                return;
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        *loaded = match file::read(path) {
            Ok((doc, stamp)) => Loaded::of(doc.keys, stamp),
            Err(error) => {
                tracing::error!(%error, "the key file cannot be used: refusing every key");
                Loaded {
                    stamp: None,
                    keys: Err(error.to_string()),
                    entries: Vec::new(),
                }
            }
        };
    }

    /// Every key, revoked ones included (never a token: only hashes are kept).
    pub fn list(&self) -> Result<Vec<KeyEntry>, KeyFileError> {
        if let Source::File(path) = &self.source {
            return Ok(file::read(path)?.0.keys);
        }
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        Ok(loaded.entries.clone())
    }

    /// Adds a key named `name` with `grants`; its token is in the answer and nowhere else.
    pub fn add(&self, name: &str, grants: Vec<Grant>) -> Result<NewKey, KeyFileError> {
        entry::check_name(name).map_err(KeyFileError::Invalid)?;
        for grant in &grants {
            entry::check_grant(grant).map_err(KeyFileError::Invalid)?;
        }
        let token = token::new_token()?;
        let id = token::new_key_id()?;
        let entry = KeyEntry {
            id,
            name: name.to_owned(),
            sha256: hex::encode(hash_token(&token)),
            grants,
            created_unix_s: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
            revoked: false,
        };
        let added = entry.clone();
        self.change(move |keys| {
            if keys.iter().any(|key| key.id == entry.id) {
                return Err(KeyFileError::Invalid(format!(
                    "key id {} is taken; try again",
                    entry.id
                )));
            }
            if keys
                .iter()
                .any(|key| !key.revoked && key.name == entry.name)
            {
                return Err(KeyFileError::Invalid(format!(
                    "a key named {:?} exists; revoke it first or pick another name",
                    entry.name
                )));
            }
            keys.push(entry);
            Ok(())
        })?;
        Ok(NewKey {
            entry: added,
            token,
        })
    }

    /// Revokes the key `id`: from the next request on it is refused. Revoking a revoked key
    /// changes nothing and is not an error.
    pub fn revoke(&self, id: &str) -> Result<KeyEntry, KeyFileError> {
        self.change(|keys| {
            let key = keys
                .iter_mut()
                .find(|key| key.id == id)
                .ok_or_else(|| KeyFileError::UnknownKey(id.to_owned()))?;
            key.revoked = true;
            Ok(key.clone())
        })
    }

    /// Applies `change` to the keys: in the file under its lock, or in memory.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut Vec<KeyEntry>) -> Result<T, KeyFileError>,
    ) -> Result<T, KeyFileError> {
        match &self.source {
            Source::File(path) => {
                let out = file::update(path, |doc| change(&mut doc.keys))?;
                self.refresh();
                Ok(out)
            }
            Source::Memory => {
                let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
                let mut entries = loaded.entries.clone();
                let out = change(&mut entries)?;
                *loaded = Loaded::of(entries, None);
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests;
