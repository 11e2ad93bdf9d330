//! [`StoreFs`]: the file access of the store's own files (the marker, the Merkle tree levels,
//! the listing of kept torn tails), over the same [`FileSystem`] as the storage backend, so
//! that a simulated file system's crashes and faults reach them too.
//!
//! `FileSystem` has associated types, so it cannot be a trait object; this is its object-safe
//! face, implemented for every `FileSystem`, which keeps [`crate::Kimberlite`] one type
//! whatever file system it runs on.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kimberlite_storage::{EntryKind, FileHandle, FileSystem};

/// The [`FileSystem`] calls the store makes itself; see each method there.
pub(crate) trait StoreFs: Send + Sync {
    /// [`FileSystem::create_dir_all`].
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// [`FileSystem::open`].
    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
    /// [`FileSystem::create`].
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;
    /// [`FileSystem::read`].
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// [`FileSystem::rename`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// [`FileSystem::remove_file`].
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// [`FileSystem::list_dir`].
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// [`FileSystem::sync_dir`].
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// [`FileSystem::entry_kind`].
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>>;
}

impl<F: FileSystem> StoreFs for F {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        FileSystem::create_dir_all(self, path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(FileSystem::open(self, path)?))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(FileSystem::create(self, path)?))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        FileSystem::read(self, path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        FileSystem::rename(self, from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        FileSystem::remove_file(self, path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        FileSystem::list_dir(self, path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        FileSystem::sync_dir(self, path)
    }

    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        FileSystem::entry_kind(self, path)
    }
}

/// Opens the file at `path`, creating it empty if there is none (never truncating).
pub(crate) fn open_or_create(fs: &dyn StoreFs, path: &Path) -> io::Result<Box<dyn FileHandle>> {
    match fs.open(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => fs.create(path),
        other => other,
    }
}

/// `kimberlite_storage::disk::replace_file` over a [`StoreFs`]: `path` replaced by `bytes`
/// through `temporary` (written, synced, renamed over it, the directory synced), so a crash
/// leaves the old file or the new one whole.
pub(crate) fn replace_file(
    fs: &dyn StoreFs,
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

/// The length of the file at `path`; `None` when there is no file there.
pub(crate) fn file_len(fs: &dyn StoreFs, path: &Path) -> io::Result<Option<u64>> {
    if fs.entry_kind(path)? != Some(EntryKind::File) {
        return Ok(None);
    }
    fs.open(path)?.len_bytes().map(Some)
}

impl std::fmt::Debug for dyn StoreFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreFs")
    }
}

/// Where an on-disk store's own files are: its directory, on its file system.
pub(crate) struct Files {
    pub(crate) fs: Arc<dyn StoreFs>,
    pub(crate) dir: PathBuf,
    /// Entries found at open where the store keeps evidence, of a type it never writes there
    /// (`lost::refused_entries`): never followed, reported with the recovery report.
    pub(crate) refused: Vec<PathBuf>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}
