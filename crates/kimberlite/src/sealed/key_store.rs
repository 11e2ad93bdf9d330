//! The key store: each data subject's wrapped data key, in `keys/` of the store directory.
//!
//! # Files (`docs/FORMAT.md`, "Key store")
//!
//! - `keys/master.check`: `kimberlite-key-store-1 <64 hex digits>`, a MAC of a fixed label
//!   under the master key: opening with another master key fails before anything is read.
//! - `keys/<tag>.<key id>.key`, one per subject, named by the subject's *tag* (a MAC of the
//!   subject under the master key: 64 hex digits), never by the subject itself, and its key id
//!   (32 hex digits): JSON `{"wrapped":"<hex>","events":N,"generation":G}`, the data key
//!   wrapped by the master key and the number of events sealed under it as last saved (by the
//!   save of generation `G`: `counts.rs`). Names only are listed at open (an index both ways);
//!   a file is read when its key is first needed.
//! - `keys/counted.json`: which part of the log the saved counts cover (`counts.rs`).
//!
//! Every file is written whole: a temporary file (`<name>.tmp`), synced, renamed over the
//! name, and the directory synced, so a crash leaves the old or the new file. Erasing removes
//! the subject's file (and any temporary one) and syncs the directory: the store directory
//! keeps no copy of the key. Temporary files left by a crash are removed at the next writable
//! open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sealed::counts::Counted;
use crate::sealed::envelope::KeyId;
use crate::sealed::error::SealError;
use crate::sealed::master::KeyWrapper;
use crate::store_fs::{replace_file, Files, StoreFs};

/// The key store's directory in a store.
pub const KEYS_DIR: &str = "keys";
const CHECK_FILE: &str = "master.check";
const CHECK_LABEL: &str = "kimberlite-key-store-1";
const COUNTED_FILE: &str = "counted.json";

/// A subject's tag: a MAC of its name under the master key.
pub(crate) type Tag = [u8; 32];

/// One subject's key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyEntry {
    pub(crate) wrapped: String,
    pub(crate) events: u64,
    /// The save that wrote `events` (`counts.rs`); 0 in files written before counts had
    /// generations.
    #[serde(default)]
    pub(crate) generation: u64,
}

/// Where the key files are: a directory on the store's file system, or memory (an in-memory
/// store).
pub(crate) enum KeyStore {
    Files {
        fs: std::sync::Arc<dyn StoreFs>,
        dir: PathBuf,
    },
    Memory(Mutex<HashMap<(Tag, KeyId), KeyEntry>>),
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyStore::Files { dir, .. } => write!(f, "KeyStore({})", dir.display()),
            KeyStore::Memory(_) => f.write_str("KeyStore(memory)"),
        }
    }
}

fn damaged(path: &Path, reason: impl Into<String>) -> Error {
    Error::Sealed(SealError::KeyStore {
        path: path.to_path_buf(),
        reason: reason.into(),
    })
}

fn io(path: &Path, what: &str, error: &std::io::Error) -> Error {
    damaged(path, format!("{what}: {error}"))
}

impl KeyStore {
    /// Opens the key store of a store (`files`, or memory), checking `master` against its
    /// check file; a writable open creates the directory and check file when missing and
    /// removes temporary files a crash left.
    pub(crate) fn open(
        files: Option<&Files>,
        master: &dyn KeyWrapper,
        writable: bool,
    ) -> Result<Self> {
        let Some(files) = files else {
            return Ok(KeyStore::Memory(Mutex::new(HashMap::new())));
        };
        let fs = files.fs.clone();
        let dir = files.dir.join(KEYS_DIR);
        let check = dir.join(CHECK_FILE);
        let expected = format!(
            "{CHECK_LABEL} {}\n",
            hex::encode(master.mac("key-store-check", b""))
        );
        match fs.read(&check) {
            Ok(found) => {
                if found != expected.as_bytes() {
                    return Err(Error::Sealed(SealError::WrongMasterKey {
                        path: dir,
                        reason: format!("{CHECK_FILE} does not match this master key"),
                    }));
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if writable {
                    fs.create_dir_all(&dir)
                        .map_err(|e| io(&dir, "creating the directory", &e))?;
                    write_whole(&*fs, &dir, CHECK_FILE, expected.as_bytes())?;
                }
            }
            Err(error) => return Err(io(&check, "reading", &error)),
        }
        let store = KeyStore::Files { fs, dir };
        if writable {
            store.remove_temporaries()?;
        }
        Ok(store)
    }

    fn file_name(tag: &Tag, key_id: KeyId) -> String {
        format!("{}.{key_id}.key", hex::encode(tag))
    }

    /// Every key file's subject tag and key id (names only).
    pub(crate) fn list(&self) -> Result<Vec<(Tag, KeyId)>> {
        match self {
            KeyStore::Memory(map) => Ok(lock(map).keys().copied().collect()),
            KeyStore::Files { fs, dir } => {
                let names = match fs.list_dir(dir) {
                    Ok(names) => names,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(error) => return Err(io(dir, "listing", &error)),
                };
                Ok(names.iter().filter_map(|name| parse_name(name)).collect())
            }
        }
    }

    /// The key file of `tag`, if there is one.
    pub(crate) fn get(&self, tag: &Tag, key_id: KeyId) -> Result<Option<KeyEntry>> {
        match self {
            KeyStore::Memory(map) => Ok(lock(map).get(&(*tag, key_id)).cloned()),
            KeyStore::Files { fs, dir } => {
                let path = dir.join(Self::file_name(tag, key_id));
                match fs.read(&path) {
                    Ok(bytes) => serde_json::from_slice(&bytes)
                        .map(Some)
                        .map_err(|error| damaged(&path, format!("not a key file: {error}"))),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(error) => Err(io(&path, "reading", &error)),
                }
            }
        }
    }

    /// Writes the key file of `tag` whole (durable when this returns).
    pub(crate) fn put(&self, tag: &Tag, key_id: KeyId, entry: &KeyEntry) -> Result<()> {
        match self {
            KeyStore::Memory(map) => {
                lock(map).insert((*tag, key_id), entry.clone());
                Ok(())
            }
            KeyStore::Files { fs, dir } => {
                let bytes = serde_json::to_vec(entry).unwrap_or_default();
                write_whole(&**fs, dir, &Self::file_name(tag, key_id), &bytes)
            }
        }
    }

    /// Removes the key file of `tag` and any temporary copy of it, durably; `Ok(false)` when
    /// there was none.
    pub(crate) fn remove(&self, tag: &Tag, key_id: KeyId) -> Result<bool> {
        match self {
            KeyStore::Memory(map) => Ok(lock(map).remove(&(*tag, key_id)).is_some()),
            KeyStore::Files { fs, dir } => {
                let name = Self::file_name(tag, key_id);
                let mut removed = false;
                for file in [name.clone(), format!("{name}.tmp")] {
                    let path = dir.join(&file);
                    match fs.remove_file(&path) {
                        Ok(()) => removed |= file == name,
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                        Err(error) => return Err(io(&path, "removing", &error)),
                    }
                }
                fs.sync_dir(dir).map_err(|e| io(dir, "syncing", &e))?;
                Ok(removed)
            }
        }
    }

    /// `keys/counted.json`, if there is one (never in memory: an in-memory store cannot
    /// crash and keep its keys).
    pub(crate) fn get_counted(&self) -> Result<Option<Counted>> {
        let KeyStore::Files { fs, dir } = self else {
            return Ok(None);
        };
        let path = dir.join(COUNTED_FILE);
        match fs.read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|error| damaged(&path, format!("not a counted file: {error}"))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(io(&path, "reading", &error)),
        }
    }

    /// Writes `keys/counted.json` whole (durable when this returns).
    pub(crate) fn put_counted(&self, counted: &Counted) -> Result<()> {
        let KeyStore::Files { fs, dir } = self else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(counted).unwrap_or_default();
        write_whole(&**fs, dir, COUNTED_FILE, &bytes)
    }

    fn remove_temporaries(&self) -> Result<()> {
        let KeyStore::Files { fs, dir } = self else {
            return Ok(());
        };
        let names = fs.list_dir(dir).map_err(|e| io(dir, "listing", &e))?;
        let temporaries: Vec<&String> = names.iter().filter(|n| n.ends_with(".tmp")).collect();
        for name in &temporaries {
            let path = dir.join(name);
            fs.remove_file(&path)
                .map_err(|e| io(&path, "removing", &e))?;
        }
        if !temporaries.is_empty() {
            fs.sync_dir(dir).map_err(|e| io(dir, "syncing", &e))?;
        }
        Ok(())
    }
}

/// A key file's name read back: `<tag>.<key id>.key`.
fn parse_name(name: &str) -> Option<(Tag, KeyId)> {
    let (tag_hex, key_hex) = name.strip_suffix(".key")?.split_once('.')?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(tag_hex, &mut tag).ok()?;
    Some((tag, KeyId::from_hex(key_hex)?))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Writes `dir/name` whole: temporary file, sync, rename, directory sync.
fn write_whole(fs: &dyn StoreFs, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let temp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    replace_file(fs, dir, &temp, &path, bytes).map_err(|e| io(&path, "replacing", &e))
}
