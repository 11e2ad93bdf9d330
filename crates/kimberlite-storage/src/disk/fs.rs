//! [`FileSystem`]: every file access of the on-disk engine, behind one small trait.
//!
//! `Storage` never calls `std::fs` directly. It is generic over a [`FileSystem`] whose default
//! is [`OsFileSystem`] (the real operating system), so that the very same engine can run over a
//! simulated, fault-injecting file system (`kimberlite-sim`) that loses unsynced writes, tears
//! them, flips bits or fails an fsync.
//!
//! The trait is deliberately small: positional reads and writes on an open file, `set_len`,
//! `sync_data`, whole-file reads for small metadata files, `rename`, `remove_file`, directory
//! creation, listing and sync, an advisory lock, a read-only map of an immutable file, and two
//! hints that change nothing observable (allocating blocks ahead of writes, giving them back).
//!
//! # Durability contract the engine relies on
//!
//! - Bytes written with [`FileHandle::write_all_at`] may be lost or torn by a crash until a
//!   [`FileHandle::sync_data`] on that file returns `Ok`.
//! - A new or renamed directory entry may be lost by a crash until
//!   [`FileSystem::sync_dir`] on the parent directory returns `Ok`.
//! - A failed `sync_data` may have lost the data it was to persist; retrying it and seeing
//!   `Ok` proves nothing (the kernel may have dropped the dirty pages). The engine therefore
//!   latches a failed write or sync and refuses further appends until reopened.
//! - [`FileSystem::map_readonly`] is only called on files the engine no longer writes
//!   (completed segments).

use std::fs::{File, TryLockError};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::nofollow::{self, Access};
pub use super::nofollow::{EntryKind, UnexpectedEntry};

/// An open file: positional reads and writes, length, truncation and sync.
pub trait FileHandle: Send + Sync {
    /// The file's current length in bytes.
    fn len_bytes(&self) -> io::Result<u64>;

    /// Fills `buf` from the bytes at `position`; an error if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()>;

    /// Writes all of `buf` at `position` (extending the file when past its end).
    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()>;

    /// Truncates or extends the file to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    /// Makes the file's data (and its length) durable.
    fn sync_data(&mut self) -> io::Result<()>;

    /// Asks the file system to allocate the blocks of `start..end` ahead of the writes that
    /// will fill them, without changing the file's length or contents. A hint: where it is
    /// not supported or fails (no space left), nothing happens, and the write itself reports
    /// what it must. The default does nothing.
    fn allocate_ahead(&mut self, start: u64, end: u64) {
        let _ = (start, end);
    }

    /// Gives back blocks allocated past the file's end by [`Self::allocate_ahead`], once the
    /// file will not grow any more. A hint, like `allocate_ahead`; the default does nothing.
    fn release_ahead(&mut self) {}

    /// Another handle on this open file, for a sync that runs outside the store's lock
    /// (`SegmentSync`), where the file system has one that costs no system call; `None` (the
    /// default): the engine opens the file's path again, a walk of every component.
    fn share(&self) -> Option<Box<dyn FileHandle>> {
        None
    }
}

/// Replaces `path` (in directory `dir`) with `bytes` so that a crash leaves the old file or
/// the new one whole: written to `temporary` in the same directory, synced, renamed over
/// `path`, the directory synced.
pub fn replace_file<F: FileSystem + ?Sized>(
    fs: &F,
    dir: &Path,
    temporary: &Path,
    path: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    let mut file = fs.create(temporary)?;
    file.write_all_at(bytes, 0)?;
    file.sync_data()?;
    drop(file);
    fs.rename(temporary, path)?;
    fs.sync_dir(dir)
}

/// The file-system operations the on-disk engine uses. See the module docs for the
/// durability contract an implementation must honour (or, for a simulator, break on purpose).
pub trait FileSystem: Send + Sync + 'static {
    /// An open file (`'static`, so that a handle can outlive the borrow of the file system
    /// it came from, as a `SegmentSync` does).
    type File: FileHandle + 'static;
    /// A held advisory lock; dropping it releases the lock.
    type Lock: Send + Sync;

    /// Creates `path` and its missing parents; `Ok` when it already exists.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Opens an existing file for reading and writing.
    ///
    /// Every method that takes a path resolves it without following a link in any component,
    /// and refuses a link or an entry of the wrong type (an [`UnexpectedEntry`] inside the
    /// error) instead: paths come from [`Self::resolve`]d store directories, so links are
    /// only ever inside a store, where nothing is trusted (SPEC.md section 7).
    fn open(&self, path: &Path) -> io::Result<Self::File>;

    /// Opens an existing file for reading only (a read-only open: `ReadOnlyFs`, on a
    /// read-only mount or another owner's files). By default, [`Self::open`].
    fn open_readonly(&self, path: &Path) -> io::Result<Self::File> {
        self.open(path)
    }

    /// Creates a file for reading and writing, truncating any file already at `path`.
    fn create(&self, path: &Path) -> io::Result<Self::File>;

    /// Reads a whole (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Atomically replaces `to` with `from` (POSIX `rename`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// The names of the entries of a directory, in no particular order; an empty list when the
    /// directory does not exist.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;

    /// Makes the directory's entries (created, renamed, removed files) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// The store directory `path` as the other methods take it: the user's links in it
    /// resolved (they chose them), the rest appended as is. The identity by default.
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        Ok(path.to_path_buf())
    }

    /// What is at `path`, not following a link: a file, a directory, a link, something
    /// else, or nothing (`Ok(None)`). The `kimberlite`
    /// store asks before it makes a directory a store, so it never scatters one into a file's
    /// place or an unrelated directory.
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>>;

    /// Takes an exclusive advisory lock on `path` (created if missing); `Ok(None)` when
    /// another handle holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Self::Lock>>;

    /// The whole content of an immutable file, mapped read-only where the platform allows.
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes>;

    /// The first `capacity` bytes of a file that is still being appended to, mapped read-only
    /// ahead of its end, where the platform allows; `Ok(None)` where it does not (the
    /// default), and reads go through [`FileHandle::read_exact_at`] instead. Only the bytes
    /// below the file's length may be read through the map: callers slice it to the bytes
    /// they have written (on Linux, touching a page wholly past the end is `SIGBUS`).
    fn map_growing(&self, path: &Path, capacity: u64) -> io::Result<Option<Bytes>> {
        let _ = (path, capacity);
        Ok(None)
    }
}

/// The real file system, through `std::fs` and, for [`FileSystem::map_readonly`], `memmap2`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFileSystem;

/// An open OS file, shared by its handles ([`FileHandle::share`]).
#[derive(Debug)]
pub struct OsFile {
    file: Arc<File>,
}

/// A held OS advisory lock (`flock`-style, via `File::try_lock`), released on drop.
#[derive(Debug)]
pub struct OsLock {
    _file: File,
    _path: PathBuf,
}

impl FileHandle for OsFile {
    fn len_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&*self.file, buf, position)
    }

    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&*self.file, buf, position)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// `fallocate(FALLOC_FL_KEEP_SIZE)`: writes into blocks allocated ahead are cheaper than
    /// writes that extend the file, where each written page reserves its block on the way in
    /// (docs/PERFORMANCE.md, section "Design decisions").
    #[cfg(target_os = "linux")]
    fn allocate_ahead(&mut self, start: u64, end: u64) {
        if end > start {
            let flags = rustix::fs::FallocateFlags::KEEP_SIZE;
            // A hint: the write reports what matters (`ENOSPC`), unsupported file systems
            // (`EOPNOTSUPP`) simply write as before.
            let _ = rustix::fs::fallocate(&self.file, flags, start, end - start);
        }
    }

    /// Truncating to the same length frees the blocks past the end.
    fn release_ahead(&mut self) {
        if let Ok(len) = self.len_bytes() {
            let _ = self.file.set_len(len);
        }
    }

    /// The same descriptor: a group commit's sync opens nothing (docs/PERFORMANCE.md,
    /// section "Design decisions").
    fn share(&self) -> Option<Box<dyn FileHandle>> {
        Some(Box::new(Self {
            file: Arc::clone(&self.file),
        }))
    }
}

impl FileSystem for OsFileSystem {
    type File = OsFile;
    type Lock = OsLock;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        nofollow::create_dir_all(path)
    }

    fn open(&self, path: &Path) -> io::Result<OsFile> {
        let file = nofollow::open_file(path, Access::ReadWrite)?;
        Ok(OsFile {
            file: Arc::new(file),
        })
    }

    fn open_readonly(&self, path: &Path) -> io::Result<OsFile> {
        let file = nofollow::open_file(path, Access::Read)?;
        Ok(OsFile {
            file: Arc::new(file),
        })
    }

    fn create(&self, path: &Path) -> io::Result<OsFile> {
        let file = nofollow::open_file(path, Access::Create)?;
        Ok(OsFile {
            file: Arc::new(file),
        })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        nofollow::open_file(path, Access::Read)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        nofollow::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        nofollow::remove_file(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        nofollow::list_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        Ok(rustix::fs::fsync(nofollow::open_dir(path)?)?)
    }

    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        nofollow::resolve(path)
    }

    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        nofollow::entry_kind(path)
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<OsLock>> {
        let file = nofollow::open_file(path, Access::OpenOrCreate)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(OsLock {
                _file: file,
                _path: path.to_path_buf(),
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => Err(error),
        }
    }

    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        let file = nofollow::open_file(path, Access::Read)?;
        if file.metadata()?.len() == 0 {
            return Ok(Bytes::new());
        }
        let map = map_file(&file)?;
        Ok(Bytes::from_owner(map))
    }

    fn map_growing(&self, path: &Path, capacity: u64) -> io::Result<Option<Bytes>> {
        let file = nofollow::open_file(path, Access::Read)?;
        let Ok(len) = usize::try_from(capacity) else {
            return Ok(None);
        };
        Ok(Some(Bytes::from_owner(map_file_ahead(&file, len)?)))
    }
}

/// Maps `file` read-only.
#[allow(unsafe_code)]
fn map_file(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: `memmap2::Mmap::map` is unsafe because the mapped bytes may change under us if
    // the file is modified or truncated while mapped. The engine only maps *completed*
    // segments, which it never writes, truncates or removes again, and the store's directory
    // is held under an exclusive advisory lock (`LOCK`), so no other Kimberlite handle writes
    // it either. A change by an outside program is outside the engine's contract (as is any
    // tampering), and every byte read from the map is still CRC- and chain-checked before use.
    unsafe { memmap2::Mmap::map(file) }
}

/// Maps the first `len` bytes of `file` read-only, however long the file is now.
#[allow(unsafe_code)]
fn map_file_ahead(file: &File, len: usize) -> io::Result<memmap2::Mmap> {
    // SAFETY: as for `map_file`, the bytes must not change while mapped. The engine maps the
    // *active* segment this way, and writes it, but only past the bytes it has already
    // written: a frame, once written, is never rewritten; a failed batch is cut back to where
    // it began, past every byte already written; giving back blocks allocated ahead truncates
    // to the same length (`release_ahead`), changing no byte; and recovery cuts a torn tail at
    // open, before any map. Readers slice the map to the written length before touching it
    // (`StreamState::view`), so no page past the end of the file is ever accessed. The
    // directory lock and the checks on every byte read hold as for `map_file`.
    unsafe { memmap2::MmapOptions::new().len(len).map(file) }
}
