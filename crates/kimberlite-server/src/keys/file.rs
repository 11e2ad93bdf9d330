//! The key file on disk: read whole and checked, changed only under a lock by writing a
//! temporary file, syncing it and renaming it over the old one, so the CLI and a running
//! server never lose each other's changes and a crash leaves the old file or the new one.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::entry::{check_doc, KeyFileDoc};

/// The key file's name in a store directory when `--keys` does not name another.
pub const KEY_FILE_NAME: &str = "server-keys.json";

/// Largest key file read, in bytes: far above any real set of keys, and a bound on what a
/// damaged or hostile file can make the server allocate.
const KEY_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Why the key file could not be read, checked or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading, writing, locking or syncing failed.
    #[error("{action} key file {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a key file this server reads (garbage, a hand edit gone wrong, a
    /// field out of shape); nothing in it is used.
    #[error("key file {path} is damaged or not a key file: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key or field.
        reason: String,
    },
    /// A requested change is not allowed (a name in use, a bad pattern).
    #[error("{0}")]
    Invalid(String),
    /// No key has this id.
    #[error("no key has id {0:?}")]
    UnknownKey(String),
    /// No random bytes for a token.
    #[error(transparent)]
    Random(#[from] super::token::RandomError),
}

/// What a file's metadata says about its version: any change of contents through
/// [`update`] changes it (a new inode, and a modification time moved strictly forward).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: (metadata.dev(), metadata.ino()),
        }
    }
}

/// The stamp of the file at `path` now, `None` when there is none.
pub fn stamp(path: &Path) -> Result<Option<Stamp>, KeyFileError> {
    match std::fs::metadata(path) {
        Ok(metadata) => Ok(Some(Stamp::of(&metadata))),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io("reading", path, source)),
    }
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> KeyFileError {
    KeyFileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and checks the key file: an empty document and no stamp when there is no file. The
/// stamp is of the very file read (taken from the open handle), so a rename between the
/// look and the read cannot pair old contents with a new stamp.
pub fn read(path: &Path) -> Result<(KeyFileDoc, Option<Stamp>), KeyFileError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Ok((KeyFileDoc::default(), None))
        }
        Err(source) => return Err(io("opening", path, source)),
    };
    let metadata = file.metadata().map_err(|e| io("reading", path, e))?;
    let damaged = |reason: String| KeyFileError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    if !metadata.is_file() {
        return Err(damaged("it is not a regular file".into()));
    }
    if metadata.len() > KEY_FILE_BYTES_MAX {
        return Err(damaged(format!(
            "{} bytes, over the {KEY_FILE_BYTES_MAX}-byte limit",
            metadata.len()
        )));
    }
    let mut bytes = Vec::new();
    std::io::Read::by_ref(&mut file)
        .take(KEY_FILE_BYTES_MAX)
        .read_to_end(&mut bytes)
        .map_err(|e| io("reading", path, e))?;
    let doc: KeyFileDoc = serde_json::from_slice(&bytes)
        .map_err(|error| damaged(format!("not a key file's JSON ({error})")))?;
    check_doc(&doc).map_err(damaged)?;
    Ok((doc, Some(Stamp::of(&metadata))))
}

/// Applies `change` to the key file under its lock (`<file>.lock`, an OS advisory lock held
/// by whichever of the CLI or the server writes), then writes the result atomically. When
/// `change` fails nothing is written.
pub fn update<T>(
    path: &Path,
    change: impl FnOnce(&mut KeyFileDoc) -> Result<T, KeyFileError>,
) -> Result<T, KeyFileError> {
    let lock_path = sibling(path, "lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io("opening the lock of", path, e))?;
    lock.lock().map_err(|e| io("locking", path, e))?;
    let (mut doc, _) = read(path)?;
    let previous_modified = std::fs::metadata(path)
        .ok()
        .and_then(|metadata| metadata.modified().ok());
    let out = change(&mut doc)?;
    check_doc(&doc).map_err(KeyFileError::Invalid)?;
    write_atomically(path, &doc, previous_modified)?;
    drop(lock);
    Ok(out)
}

/// `path` with `.suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// Temporary file, written and synced, its modification time moved strictly past the old
/// file's (so a running server's stat sees a change even within one clock tick), renamed
/// over the file, the directory synced.
fn write_atomically(
    path: &Path,
    doc: &KeyFileDoc,
    previous_modified: Option<SystemTime>,
) -> Result<(), KeyFileError> {
    let temp = sibling(path, "tmp");
    let mut bytes = serde_json::to_vec_pretty(doc)
        .map_err(|error| KeyFileError::Invalid(format!("cannot encode the key file: {error}")))?;
    bytes.push(b'\n');
    let mut options = OpenOptions::new();
    options.create(true).truncate(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp).map_err(|e| io("creating", &temp, e))?;
    file.write_all(&bytes)
        .map_err(|e| io("writing", &temp, e))?;
    let now = SystemTime::now();
    let modified = match previous_modified {
        Some(previous) if previous >= now => previous + Duration::from_micros(1),
        _ => now,
    };
    file.set_modified(modified)
        .map_err(|e| io("setting the time of", &temp, e))?;
    file.sync_all().map_err(|e| io("syncing", &temp, e))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(|e| io("renaming into place", path, e))?;
    sync_parent(path)
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> Result<(), KeyFileError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io("syncing the directory of", path, e))
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> Result<(), KeyFileError> {
    Ok(())
}
