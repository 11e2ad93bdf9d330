//! [`NodeFs`]: the file system a node's files go through (the Raft log, the saved state, the
//! snapshot, the store), any [`FileSystem`] behind one type, so that [`crate::Node`] and its
//! configuration need no type parameter. The real one by default; a simulated one
//! (`kimberlite-sim`) in the tests that crash a node (docs/TESTING.md, section "Replication").

use std::any::Any;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kimberlite_storage::{EntryKind, FileHandle, FileSystem, OsFileSystem};

/// Any file system, shared: clones are the same file system.
#[derive(Clone)]
pub struct NodeFs {
    inner: Arc<dyn ErasedFs>,
}

impl std::fmt::Debug for NodeFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.inner.is_os() {
            "NodeFs(os)"
        } else {
            "NodeFs(other)"
        })
    }
}

impl Default for NodeFs {
    fn default() -> Self {
        Self::os()
    }
}

impl NodeFs {
    /// The real file system.
    #[must_use]
    pub fn os() -> Self {
        Self {
            inner: Arc::new(Erased {
                fs: OsFileSystem,
                os: true,
            }),
        }
    }

    /// `fs`, whatever its type (a simulated one, a wrapper that counts or fails).
    #[must_use]
    pub fn new<F>(fs: F) -> Self
    where
        F: FileSystem + Clone,
        F::Lock: 'static,
    {
        Self {
            inner: Arc::new(Erased { fs, os: false }),
        }
    }

    /// The whole file at `path`, or `None` when there is none.
    pub(crate) fn read_if_exists(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match self.inner.read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Replaces `dir/name` by `bytes` so that a crash leaves the old file or the new one:
    /// written beside it, synced, renamed over it, the directory synced (with `sync`).
    pub(crate) fn replace(
        &self,
        dir: &Path,
        name: &str,
        bytes: &[u8],
        sync: bool,
    ) -> io::Result<()> {
        let temporary = dir.join(format!("{name}.tmp"));
        let mut file = self.inner.create(&temporary)?;
        file.write_all_at(bytes, 0)?;
        if sync {
            file.sync_data()?;
        }
        drop(file);
        self.inner.rename(&temporary, &dir.join(name))?;
        if sync {
            self.inner.sync_dir(dir)?;
        }
        Ok(())
    }

    /// Removes the directory `path` and everything in it (nothing when it does not exist).
    /// The storage trait removes files only: on another file system, emptied directories
    /// stay (a new store never reuses one, `crate::store_dir`).
    pub(crate) fn remove_tree(&self, path: &Path) -> io::Result<()> {
        if self.inner.is_os() {
            return match std::fs::remove_dir_all(path) {
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            };
        }
        for name in self.inner.list_dir(path)? {
            let child = path.join(name);
            match self.inner.entry_kind(&child)? {
                Some(EntryKind::Dir) => self.remove_tree(&child)?,
                Some(_) => self.inner.remove_file(&child)?,
                None => {}
            }
        }
        Ok(())
    }
}

/// An open file of a [`NodeFs`].
pub struct NodeFile(Box<dyn FileHandle>);

impl FileHandle for NodeFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.0.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, position)
    }
    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        self.0.write_all_at(buf, position)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn allocate_ahead(&mut self, start: u64, end: u64) {
        self.0.allocate_ahead(start, end);
    }
    fn release_ahead(&mut self) {
        self.0.release_ahead();
    }
    fn share(&self) -> Option<Box<dyn FileHandle>> {
        self.0.share()
    }
}

/// A held lock of a [`NodeFs`]; dropping it releases the lock.
pub struct NodeLock(#[expect(dead_code, reason = "held for its drop")] Box<dyn Any + Send + Sync>);

/// [`FileSystem`] without its associated types, so that it can be a trait object.
trait ErasedFs: Send + Sync {
    fn is_os(&self) -> bool;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn open(&self, path: &Path) -> io::Result<NodeFile>;
    fn open_readonly(&self, path: &Path) -> io::Result<NodeFile>;
    fn create(&self, path: &Path) -> io::Result<NodeFile>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    fn resolve(&self, path: &Path) -> io::Result<PathBuf>;
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>>;
    fn try_lock(&self, path: &Path) -> io::Result<Option<NodeLock>>;
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes>;
    fn map_growing(&self, path: &Path, capacity: u64) -> io::Result<Option<Bytes>>;
}

struct Erased<F> {
    fs: F,
    /// Whether `fs` is the real file system (directories removed through `std::fs`).
    os: bool,
}

impl<F> ErasedFs for Erased<F>
where
    F: FileSystem,
    F::Lock: 'static,
{
    fn is_os(&self) -> bool {
        self.os
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.fs.create_dir_all(path)
    }
    fn open(&self, path: &Path) -> io::Result<NodeFile> {
        Ok(NodeFile(Box::new(self.fs.open(path)?)))
    }
    fn open_readonly(&self, path: &Path) -> io::Result<NodeFile> {
        Ok(NodeFile(Box::new(self.fs.open_readonly(path)?)))
    }
    fn create(&self, path: &Path) -> io::Result<NodeFile> {
        Ok(NodeFile(Box::new(self.fs.create(path)?)))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.fs.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.fs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.fs.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.fs.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.fs.sync_dir(path)
    }
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        self.fs.resolve(path)
    }
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        self.fs.entry_kind(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<NodeLock>> {
        Ok(self.fs.try_lock(path)?.map(|lock| NodeLock(Box::new(lock))))
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        self.fs.map_readonly(path)
    }
    fn map_growing(&self, path: &Path, capacity: u64) -> io::Result<Option<Bytes>> {
        self.fs.map_growing(path, capacity)
    }
}

impl FileSystem for NodeFs {
    type File = NodeFile;
    type Lock = NodeLock;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn open(&self, path: &Path) -> io::Result<NodeFile> {
        self.inner.open(path)
    }
    fn open_readonly(&self, path: &Path) -> io::Result<NodeFile> {
        self.inner.open_readonly(path)
    }
    fn create(&self, path: &Path) -> io::Result<NodeFile> {
        self.inner.create(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        self.inner.resolve(path)
    }
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        self.inner.entry_kind(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<NodeLock>> {
        self.inner.try_lock(path)
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        self.inner.map_readonly(path)
    }
    fn map_growing(&self, path: &Path, capacity: u64) -> io::Result<Option<Bytes>> {
        self.inner.map_growing(path, capacity)
    }
}
