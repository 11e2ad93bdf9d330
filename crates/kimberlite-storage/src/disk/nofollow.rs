//! Paths resolved one component at a time, never through a symbolic link: what
//! [`super::fs::OsFileSystem`] opens, creates, renames, lists or removes is the entry the path
//! names, inside the directories the path names, or an [`UnexpectedEntry`] error.
//!
//! A store's directory is resolved once, when it opens (`FileSystem::resolve`): the user may
//! name it through links. Everything below it is untrusted (SPEC.md section 7): a link there
//! would send writes (a Merkle level, a cut torn tail, a rewritten index) to a file outside the
//! store, so each component is opened with `O_NOFOLLOW` from the previous one's descriptor,
//! which also leaves no window between a check and a use.

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

/// What a path names ([`crate::FileSystem::entry_kind`]), the entry itself (a link is not
/// followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link: never followed inside a store (this module).
    Link,
    /// A fifo, a socket or a device.
    Other,
}

/// A link or an entry of the wrong type (a fifo, a socket, a device, a directory where a file
/// belongs) inside the store, refused instead of followed or opened. Carried inside the
/// `io::Error` the file system returns; `StorageError::UnexpectedEntry` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is {}, where the store expects {}; refused, not followed", path.display(), describe(*found), describe(*expected))]
pub struct UnexpectedEntry {
    /// The entry.
    pub path: PathBuf,
    /// What it is.
    pub found: EntryKind,
    /// What the store expected there.
    pub expected: EntryKind,
}

fn describe(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::File => "a regular file",
        EntryKind::Dir => "a directory",
        EntryKind::Link => "a symbolic link",
        EntryKind::Other => "a special file (fifo, socket or device)",
    }
}

impl UnexpectedEntry {
    /// The [`UnexpectedEntry`] an `io::Error` carries, if any.
    #[must_use]
    pub fn in_error(error: &io::Error) -> Option<&UnexpectedEntry> {
        error.get_ref()?.downcast_ref::<UnexpectedEntry>()
    }

    /// The `io::Error` a [`super::fs::FileSystem`] returns for it.
    #[must_use]
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// What the `lstat` mode says an entry is.
pub(super) fn kind_of(file_type: FileType) -> EntryKind {
    match file_type {
        FileType::RegularFile => EntryKind::File,
        FileType::Directory => EntryKind::Dir,
        FileType::Symlink => EntryKind::Link,
        _ => EntryKind::Other,
    }
}

/// Descriptor flags for a directory walked through: `O_PATH` needs only search permission.
fn walk_flags() -> OFlags {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = OFlags::PATH;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = OFlags::RDONLY;
    flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The error for `name` in `dir` (at `path`) that could not be opened as `expected`: an
/// [`UnexpectedEntry`] when it is something else, else the call's own error.
fn refusal(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
    expected: EntryKind,
    errno: Errno,
) -> io::Error {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => {
            let found = kind_of(FileType::from_raw_mode(stat.st_mode));
            if found == expected {
                errno.into()
            } else {
                UnexpectedEntry {
                    path: path.to_path_buf(),
                    found,
                    expected,
                }
                .into_io()
            }
        }
        Err(_) => errno.into(),
    }
}

/// The directory `path` names, opened without following a link in any component; with
/// `create`, missing components are created (`mkdir -p`).
fn walk(path: &Path, create: bool) -> io::Result<OwnedFd> {
    let start = if path.is_absolute() { "/" } else { "." };
    let mut dir = rustix::fs::openat(CWD, start, walk_flags(), Mode::empty())?;
    let mut so_far = PathBuf::from(start);
    for component in path.components() {
        let name = match component {
            Component::Normal(name) => name,
            Component::ParentDir => OsStr::new(".."),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
        };
        so_far.push(name);
        dir = step(&dir, name, &so_far, create)?;
    }
    Ok(dir)
}

/// The sub-directory `name` of `dir`, opened no-follow (created first if missing and asked).
fn step(dir: &OwnedFd, name: &OsStr, path: &Path, create: bool) -> io::Result<OwnedFd> {
    match rustix::fs::openat(dir, name, walk_flags(), Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOENT) if create => {
            match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o777)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(errno) => return Err(errno.into()),
            }
            rustix::fs::openat(dir, name, walk_flags(), Mode::empty())
                .map_err(|errno| refusal(dir, name, path, EntryKind::Dir, errno))
        }
        Err(errno @ (Errno::LOOP | Errno::NOTDIR)) => {
            Err(refusal(dir, name, path, EntryKind::Dir, errno))
        }
        Err(errno) => Err(errno.into()),
    }
}

/// The directory holding `path`'s last component (walked no-follow) and that component.
pub(super) fn parent(path: &Path) -> io::Result<(OwnedFd, &OsStr)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no file name", path.display()),
        )
    })?;
    let parent = path.parent().unwrap_or(Path::new(""));
    Ok((walk(parent, false)?, name))
}

/// Creates `path` and its missing parents, following no link.
pub(super) fn create_dir_all(path: &Path) -> io::Result<()> {
    walk(path, true).map(drop)
}

/// The directory at `path`, opened for reading its entries (or syncing it).
pub(super) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let (dir, name) = parent(path)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(&dir, name, flags, Mode::empty()).map_err(|errno| match errno {
        Errno::LOOP | Errno::NOTDIR => refusal(&dir, name, path, EntryKind::Dir, errno),
        errno => errno.into(),
    })
}

/// How [`open_file`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write, created if missing, never truncated.
    OpenOrCreate,
    /// Read and write, created if missing, truncated.
    Create,
}

/// The regular file at `path`, opened without following a link; anything else there (a link,
/// a directory, a fifo, a socket, a device) is refused before it is opened or written.
pub(super) fn open_file(path: &Path, access: Access) -> io::Result<std::fs::File> {
    let (dir, name) = parent(path)?;
    let refuse = |found| {
        UnexpectedEntry {
            path: path.to_path_buf(),
            found,
            expected: EntryKind::File,
        }
        .into_io()
    };
    // A special file is refused before `open`, which could block (a fifo) or, with
    // `O_TRUNC`, act on it; the type is checked again on the descriptor, against a swap.
    match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => match kind_of(FileType::from_raw_mode(stat.st_mode)) {
            EntryKind::File => {}
            found => return Err(refuse(found)),
        },
        Err(Errno::NOENT) if matches!(access, Access::Create | Access::OpenOrCreate) => {}
        Err(errno) => return Err(errno.into()),
    }
    let mut flags = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    flags |= match access {
        Access::Read => OFlags::RDONLY,
        Access::ReadWrite => OFlags::RDWR,
        Access::OpenOrCreate => OFlags::RDWR | OFlags::CREATE,
        Access::Create => OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC,
    };
    let fd =
        rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(0o666)).map_err(|errno| {
            match errno {
                Errno::LOOP => refuse(EntryKind::Link),
                errno => errno.into(),
            }
        })?;
    let found = kind_of(FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode));
    if found != EntryKind::File {
        return Err(refuse(found));
    }
    Ok(std::fs::File::from(fd))
}

/// What is at `path`, not following a link in any component; `None` when nothing is.
pub(super) fn entry_kind(path: &Path) -> io::Result<Option<EntryKind>> {
    let (dir, name) = match parent(path) {
        Ok(found) => found,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(kind_of(FileType::from_raw_mode(stat.st_mode)))),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(errno.into()),
    }
}

/// `renameat`: moves the entry itself (a link is moved, not followed), between directories
/// walked no-follow.
pub(super) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let (from_dir, from_name) = parent(from)?;
    let (to_dir, to_name) = parent(to)?;
    rustix::fs::renameat(&from_dir, from_name, &to_dir, to_name).map_err(|errno| match errno {
        // A directory where the file goes: damage to name, not a bare I/O failure.
        Errno::ISDIR | Errno::NOTEMPTY | Errno::EXIST | Errno::NOTDIR => {
            refusal(&to_dir, to_name, to, EntryKind::File, errno)
        }
        errno => errno.into(),
    })
}

/// `unlinkat`: removes the entry itself, in a directory walked no-follow.
pub(super) fn remove_file(path: &Path) -> io::Result<()> {
    let (dir, name) = parent(path)?;
    Ok(rustix::fs::unlinkat(&dir, name, AtFlags::empty())?)
}

/// The names in the directory at `path` (walked no-follow); an empty list when there is none.
/// A name that is not UTF-8 is converted lossily (with U+FFFD, which no name the engine writes
/// holds), so it still counts as an entry and is never mistaken for one of the store's.
pub(super) fn list_dir(path: &Path) -> io::Result<Vec<String>> {
    let fd = match open_dir(path) {
        Ok(fd) => fd,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::new(fd)? {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// `path` with every link resolved: the existing part canonicalised (the user's links, above
/// and at the store's directory, are theirs to choose), the missing rest appended as is.
pub(super) fn resolve(path: &Path) -> io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(resolved) => Ok(resolved),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(error);
            };
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            Ok(resolve(parent)?.join(name))
        }
        Err(error) => Err(error),
    }
}
