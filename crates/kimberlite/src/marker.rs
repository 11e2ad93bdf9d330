//! The marker file ([`MARKER_FILE`]) that says "this directory is a Kimberlite store", so that
//! read-only tools can refuse a wrong path instead of creating a store there, and the checks
//! of a directory before a store opens in it. Every access goes through the store's file
//! system ([`StoreFs`]).

use std::path::Path;

use kimberlite_storage::disk::STREAMS_DIR;
use kimberlite_storage::{EntryKind, StorageError, UnexpectedEntry};

use crate::error::{Error, Result};
use crate::store_fs::{replace_file, StoreFs};

/// Name of the marker file that makes a directory a Kimberlite store.
pub const MARKER_FILE: &str = "kimberlite.json";

/// Store format version written in the marker.
const STORE_FORMAT_VERSION: u64 = 1;

/// Checks `dir` before the backend opens it: exists (or may be created) and is a store (or
/// may become one). Writes the marker for a new store.
pub(crate) fn prepare_dir(fs: &dyn StoreFs, dir: &Path, create: bool) -> Result<()> {
    let marker = dir.join(MARKER_FILE);
    match fs.entry_kind(&marker) {
        Ok(Some(EntryKind::File)) => return check_marker(fs, dir, &marker),
        // A link is never followed, a special file never read: damage, named.
        Ok(Some(found @ (EntryKind::Link | EntryKind::Other | EntryKind::Dir))) => {
            let entry = UnexpectedEntry {
                path: marker,
                found,
                expected: EntryKind::File,
            };
            return Err(Error::storage(None, StorageError::UnexpectedEntry(entry)));
        }
        _ => {}
    }
    let kind = fs
        .entry_kind(dir)
        .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    match kind {
        None => {
            if !create {
                return Err(Error::StoreNotFound {
                    path: dir.to_path_buf(),
                });
            }
            fs.create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        Some(EntryKind::File | EntryKind::Link | EntryKind::Other) => {
            return Err(Error::NotAStore {
                path: dir.to_path_buf(),
            })
        }
        Some(EntryKind::Dir) => {
            let entries = fs
                .list_dir(dir)
                .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
            // Markers being written right now by other processes creating the store (or left
            // by ones that crashed before their rename) do not make the directory someone
            // else's: without this, of several processes creating the same store at once,
            // those that looked during a write would be refused as "not a store".
            let crowded = entries.iter().any(|name| !is_marker_temp(name));
            if crowded && is_file(fs, &marker) {
                // Created meanwhile by another process.
                return check_marker(fs, dir, &marker);
            }
            if entries.iter().any(|name| name == STREAMS_DIR) {
                return Err(Error::MarkerDamaged {
                    path: marker,
                    reason: format!("it is missing, but the directory holds {STREAMS_DIR}/"),
                });
            }
            if !create || crowded {
                return Err(Error::NotAStore {
                    path: dir.to_path_buf(),
                });
            }
        }
    }
    write_marker(fs, dir, &marker)
}

/// Whether `path` is a file; false when it cannot be told (as `Path::is_file`: a path under
/// a file is no file).
fn is_file(fs: &dyn StoreFs, path: &Path) -> bool {
    matches!(fs.entry_kind(path), Ok(Some(EntryKind::File)))
}

/// Checks that the marker names a store format this version reads.
fn check_marker(fs: &dyn StoreFs, dir: &Path, marker: &Path) -> Result<()> {
    let bytes = fs
        .read(marker)
        .map_err(|e| Error::io(format!("reading {}", marker.display()), e))?;
    let damaged = |reason: String| Error::MarkerDamaged {
        path: marker.to_path_buf(),
        reason,
    };
    let value = serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|error| {
        damaged(format!(
            "not JSON ({error}); it holds {} bytes",
            bytes.len()
        ))
    })?;
    let version = value
        .get("kimberlite_store")
        .ok_or_else(|| damaged(format!("no \"kimberlite_store\" field in {value}")))?;
    match version.as_u64() {
        Some(STORE_FORMAT_VERSION) => Ok(()),
        Some(version) => Err(Error::UnsupportedStore {
            path: dir.to_path_buf(),
            version,
        }),
        None => Err(damaged(format!(
            "\"kimberlite_store\" is {version}, not a format version"
        ))),
    }
}

/// Whether `name` is a temporary marker [`write_marker`] writes (`kimberlite.json.<pid>.tmp`).
fn is_marker_temp(name: &str) -> bool {
    name.strip_prefix(MARKER_FILE)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .is_some_and(|pid| pid.bytes().all(|byte| byte.is_ascii_digit()))
}

/// Writes the marker atomically: temporary file, sync, rename, sync the directory. The
/// temporary file is named after the process, so that processes creating the same store at
/// once each rename their own (the same contents) instead of one renaming another's away.
fn write_marker(fs: &dyn StoreFs, dir: &Path, marker: &Path) -> Result<()> {
    let temp = dir.join(format!("{MARKER_FILE}.{}.tmp", std::process::id()));
    let context = |what: &str| format!("{what} {}", temp.display());
    let contents = format!("{{\"kimberlite_store\":{STORE_FORMAT_VERSION}}}\n");
    replace_file(fs, dir, &temp, marker, contents.as_bytes())
        .map_err(|e| Error::io(context("writing and renaming"), e))
}
