//! [`ReadOnlyFs`]: a store opened to look, not to change (SPEC.md section 7: read-only
//! commands write nothing and work on a read-only copy).
//!
//! It wraps the real file system: every read goes to it, every change lands in memory (a
//! copy-on-write view), so recovery runs exactly as it would on a writable open and its report
//! says what it *would* do (cut a torn tail, rebuild an index, rewrite a manifest), while the
//! files stay as they are. No lock is taken (the writer's lock file is neither created nor
//! locked), so a reader runs beside a live writer and sees the store as of what it finds: an
//! unfinished tail being written is cut in the view only. Files are opened read-only
//! ([`FileSystem::open_readonly`]), so a read-only mount or another owner's store works.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::fs::{EntryKind, FileHandle, FileSystem};

/// A file's bytes, changed in memory only.
type Shared = Arc<Mutex<Vec<u8>>>;

#[derive(Debug, Default)]
struct Overlay {
    files: BTreeMap<PathBuf, Shared>,
    removed: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

/// The file system `F`, read-only: changes are kept in memory and never reach `F`.
#[derive(Debug, Clone)]
pub struct ReadOnlyFs<F> {
    inner: F,
    overlay: Arc<Mutex<Overlay>>,
}

impl<F: FileSystem> ReadOnlyFs<F> {
    /// `inner`, read-only.
    pub fn new(inner: F) -> Self {
        Self {
            inner,
            overlay: Arc::default(),
        }
    }

    fn overlay(&self) -> MutexGuard<'_, Overlay> {
        self.overlay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn lock(bytes: &Shared) -> MutexGuard<'_, Vec<u8>> {
    bytes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

/// A file of a [`ReadOnlyFs`]: the real one until something changes it, then a copy in memory.
#[derive(Debug)]
pub struct ReadOnlyFile<H> {
    real: Option<H>,
    copy: Option<Shared>,
    overlay: Arc<Mutex<Overlay>>,
    path: PathBuf,
}

impl<H: FileHandle> ReadOnlyFile<H> {
    /// The in-memory copy, made from the real file on the first change.
    fn copy(&mut self) -> io::Result<Shared> {
        if let Some(copy) = &self.copy {
            return Ok(Arc::clone(copy));
        }
        let mut bytes = Vec::new();
        if let Some(real) = &self.real {
            let len = usize::try_from(real.len_bytes()?).map_err(io::Error::other)?;
            bytes.resize(len, 0);
            real.read_exact_at(&mut bytes, 0)?;
        }
        let copy: Shared = Arc::new(Mutex::new(bytes));
        let mut overlay = self
            .overlay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        overlay.files.insert(self.path.clone(), Arc::clone(&copy));
        overlay.removed.remove(&self.path);
        self.copy = Some(Arc::clone(&copy));
        Ok(copy)
    }
}

impl<H: FileHandle> FileHandle for ReadOnlyFile<H> {
    fn len_bytes(&self) -> io::Result<u64> {
        match (&self.copy, &self.real) {
            (Some(copy), _) => Ok(lock(copy).len() as u64),
            (None, Some(real)) => real.len_bytes(),
            (None, None) => Ok(0),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        match (&self.copy, &self.real) {
            (Some(copy), _) => {
                let bytes = lock(copy);
                let start = usize::try_from(position).unwrap_or(usize::MAX);
                let source = start
                    .checked_add(buf.len())
                    .and_then(|end| bytes.get(start..end))
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(source);
                Ok(())
            }
            (None, Some(real)) => real.read_exact_at(buf, position),
            (None, None) => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        let copy = self.copy()?;
        let mut bytes = lock(&copy);
        let start = usize::try_from(position).map_err(io::Error::other)?;
        let end = start + buf.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        if let Some(target) = bytes.get_mut(start..end) {
            target.copy_from_slice(buf);
        }
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let copy = self.copy()?;
        lock(&copy).resize(usize::try_from(len).map_err(io::Error::other)?, 0);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<F: FileSystem> FileSystem for ReadOnlyFs<F> {
    type File = ReadOnlyFile<F::File>;
    /// No lock: a reader never takes (or creates) the writer's lock file.
    type Lock = ();

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.inner.entry_kind(path)? != Some(EntryKind::Dir) {
            self.overlay().dirs.insert(path.to_path_buf());
        }
        Ok(())
    }

    fn open(&self, path: &Path) -> io::Result<Self::File> {
        let (copy, removed) = {
            let overlay = self.overlay();
            (
                overlay.files.get(path).cloned(),
                overlay.removed.contains(path),
            )
        };
        let real = match (&copy, removed) {
            (Some(_), _) => None,
            (None, true) => return Err(not_found(path)),
            (None, false) => Some(self.inner.open_readonly(path)?),
        };
        Ok(ReadOnlyFile {
            real,
            copy,
            overlay: Arc::clone(&self.overlay),
            path: path.to_path_buf(),
        })
    }

    fn open_readonly(&self, path: &Path) -> io::Result<Self::File> {
        self.open(path)
    }

    fn create(&self, path: &Path) -> io::Result<Self::File> {
        let copy: Shared = Arc::default();
        let mut overlay = self.overlay();
        overlay.files.insert(path.to_path_buf(), Arc::clone(&copy));
        overlay.removed.remove(path);
        Ok(ReadOnlyFile {
            real: None,
            copy: Some(copy),
            overlay: Arc::clone(&self.overlay),
            path: path.to_path_buf(),
        })
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        {
            let overlay = self.overlay();
            if let Some(copy) = overlay.files.get(path) {
                return Ok(lock(copy).clone());
            }
            if overlay.removed.contains(path) {
                return Err(not_found(path));
            }
        }
        self.inner.read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let bytes = self.read(from)?;
        let mut overlay = self.overlay();
        overlay.files.remove(from);
        overlay.removed.insert(from.to_path_buf());
        overlay.removed.remove(to);
        overlay
            .files
            .insert(to.to_path_buf(), Arc::new(Mutex::new(bytes)));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if self.entry_kind(path)?.is_none() {
            return Err(not_found(path));
        }
        let mut overlay = self.overlay();
        overlay.files.remove(path);
        overlay.removed.insert(path.to_path_buf());
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names: BTreeSet<String> = self.inner.list_dir(path)?.into_iter().collect();
        let overlay = self.overlay();
        let added = overlay.files.keys().chain(overlay.dirs.iter());
        for entry in added.filter(|entry| entry.parent() == Some(path)) {
            if let Some(name) = entry.file_name() {
                names.insert(name.to_string_lossy().into_owned());
            }
        }
        for entry in overlay.removed.iter().filter(|e| e.parent() == Some(path)) {
            if !overlay.files.contains_key(entry) {
                if let Some(name) = entry.file_name() {
                    names.remove(&*name.to_string_lossy());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }

    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.resolve(path)
    }

    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        {
            let overlay = self.overlay();
            if overlay.files.contains_key(path) {
                return Ok(Some(EntryKind::File));
            }
            if overlay.removed.contains(path) {
                return Ok(None);
            }
            if overlay.dirs.contains(path) {
                return Ok(Some(EntryKind::Dir));
            }
        }
        self.inner.entry_kind(path)
    }

    fn try_lock(&self, _path: &Path) -> io::Result<Option<()>> {
        Ok(Some(()))
    }

    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        if let Some(copy) = self.overlay().files.get(path) {
            return Ok(Bytes::from(lock(copy).clone()));
        }
        self.inner.map_readonly(path)
    }
}
