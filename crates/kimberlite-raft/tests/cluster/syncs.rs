//! What one acknowledged append costs a node in device flushes: one sync of the Raft log for
//! its entry, one of the store's segment and one of the applied state, nothing else (no
//! committed-id sync, no index, manifest or directory syncs of the store): the syncs are most
//! of a batch's time (docs/PERFORMANCE.md, section "Why the unmet targets are not met").

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kimberlite_raft::{Cluster, NodeFs, APPLIED_FILE, LOG_FILE};
use kimberlite_storage::{EntryKind, FileHandle, FileSystem, OsFileSystem};

use crate::common::{options, request, WAIT};

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// What a synced path is, for counting: the Raft log, the applied state, a store segment,
/// a directory, or the file's name.
fn kind(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == LOG_FILE || name == APPLIED_FILE {
        name
    } else if name.ends_with(".seg") {
        "segment".to_string()
    } else {
        format!("other {name}")
    }
}

fn count(counts: &Counts, key: String) {
    *counts.lock().unwrap().entry(key).or_default() += 1;
}

/// The real file system, counting syncs by [`kind`].
#[derive(Clone, Default)]
struct SyncCounting {
    counts: Counts,
}

struct CountingFile {
    file: <OsFileSystem as FileSystem>::File,
    path: PathBuf,
    counts: Counts,
}

impl FileHandle for CountingFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.file.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, position)
    }
    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        self.file.write_all_at(buf, position)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        count(&self.counts, kind(&self.path));
        self.file.sync_data()
    }
}

impl SyncCounting {
    fn wrap(&self, file: <OsFileSystem as FileSystem>::File, path: &Path) -> CountingFile {
        CountingFile {
            file,
            path: path.to_owned(),
            counts: self.counts.clone(),
        }
    }

    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

impl FileSystem for SyncCounting {
    type File = CountingFile;
    type Lock = <OsFileSystem as FileSystem>::Lock;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsFileSystem.create_dir_all(path)
    }
    fn open(&self, path: &Path) -> io::Result<CountingFile> {
        Ok(self.wrap(OsFileSystem.open(path)?, path))
    }
    fn open_readonly(&self, path: &Path) -> io::Result<CountingFile> {
        Ok(self.wrap(OsFileSystem.open_readonly(path)?, path))
    }
    fn create(&self, path: &Path) -> io::Result<CountingFile> {
        Ok(self.wrap(OsFileSystem.create(path)?, path))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsFileSystem.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsFileSystem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        OsFileSystem.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        OsFileSystem.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        count(&self.counts, "directory".to_string());
        OsFileSystem.sync_dir(path)
    }
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        OsFileSystem.resolve(path)
    }
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        OsFileSystem.entry_kind(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Self::Lock>> {
        OsFileSystem.try_lock(path)
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        OsFileSystem.map_readonly(path)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_costs_each_node_one_log_one_segment_and_one_applied_state_sync() {
    let dir = tempfile::tempdir().unwrap();
    let fs = SyncCounting::default();
    let mut options = options(0);
    options.file_systems.insert(1, NodeFs::new(fs.clone()));
    let cluster = Cluster::start(dir.path(), &[1], options).await.unwrap();
    cluster.leader(WAIT).await.unwrap();
    let stream = cluster.create_stream(request(1, 0), "audit").await.unwrap();
    // The first append to a stream creates its files (segment, manifest: synced, as any new
    // file is); the appends after it are what a running stream costs.
    for seq in 1..=6u64 {
        let events: Vec<Bytes> = (0..100).map(|i| Bytes::from(vec![i as u8; 256])).collect();
        fs.take();
        cluster
            .append(request(1, seq), stream, events)
            .await
            .unwrap();
        if seq == 1 {
            continue;
        }
        let expected: BTreeMap<String, u64> = [
            (LOG_FILE.to_string(), 1),
            (APPLIED_FILE.to_string(), 1),
            ("segment".to_string(), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(fs.take(), expected, "append {seq}");
    }
    cluster.shutdown().await;
}
